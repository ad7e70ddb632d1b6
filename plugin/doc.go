// Package plugin is the transport between mcusign and mcusignd, the daemon
// that owns the PKCS#11 token: the gRPC contract (package pb), the
// hashicorp/go-plugin handshake and plugin map, the server adapter (gRPC to
// the Service interface), the client adapter (a signer.Key that signs
// through the daemon, plus PublicKey/ListKeys/GenerateKey/Status calls),
// and attaching to a standing daemon or launching one on demand.
//
// It carries requests and nothing else: who may connect, limits, URI rules
// and the audit trail are the daemon's policy (package daemon), which sees
// only the Service interface. This package must not import pkcs11key,
// daemon or any command.
package plugin
