// Package peercred identifies the process at the other end of a unix
// socket connection from the kernel's SO_PEERCRED (and SO_PEERGROUPS)
// record, and offers that as gRPC transport credentials: a check runs in
// the connection handshake, before any RPC, and the identity travels with
// every call as its AuthInfo.
//
// It is transport only: what identities are allowed is the caller's
// decision. It must not import the daemon, pkcs11key or any command.
package peercred

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Cred is a peer's identity as the kernel recorded it when it connected.
type Cred struct {
	UID    uint32
	GID    uint32
	PID    int32
	Groups []uint32 // supplementary groups; nil if the kernel does not say
	Exe    string   // the peer's executable (/proc/PID/exe); "" if unreadable
}

func (c *Cred) String() string {
	s := "uid " + strconv.FormatUint(uint64(c.UID), 10) + ", gid " + strconv.FormatUint(uint64(c.GID), 10) + ", pid " + strconv.FormatInt(int64(c.PID), 10)
	if c.Exe != "" {
		s += " (" + c.Exe + ")"
	}
	return s
}

// Read returns the credentials of conn's peer; conn must be a unix socket.
func Read(conn net.Conn) (*Cred, error) {
	c, err := read(conn)
	if err != nil {
		return nil, err
	}
	// Best effort: a peer of another user may hide its executable from us.
	c.Exe, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", c.PID))
	return c, nil
}

// Self is this process's own identity, for peers known by construction
// (a parent that launched us over a private channel).
func Self() *Cred {
	c := &Cred{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), PID: int32(os.Getpid())}
	if gs, err := os.Getgroups(); err == nil {
		for _, g := range gs {
			c.Groups = append(c.Groups, uint32(g))
		}
	}
	c.Exe, _ = os.Executable()
	return c
}

// AuthInfo carries a peer's Cred through gRPC.
type AuthInfo struct {
	credentials.CommonAuthInfo
	Cred Cred
	// Conn is the connection as the server uses it (wrapped by WrapConn),
	// for what else it carries, such as passed files.
	Conn net.Conn
}

// AuthType implements credentials.AuthInfo.
func (AuthInfo) AuthType() string { return "peercred" }

// FromContext returns the Cred of the peer of a gRPC call served with
// these credentials.
func FromContext(ctx context.Context) (*Cred, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, false
	}
	ai, ok := p.AuthInfo.(AuthInfo)
	if !ok {
		return nil, false
	}
	c := ai.Cred
	return &c, true
}

// NewServerCredentials returns gRPC server transport credentials that read
// each connection's peer credentials and pass them to check; a connection
// check refuses is closed before any RPC is read from it. The connection
// itself is not encrypted: it is a local unix socket.
func NewServerCredentials(check func(*Cred) error, opts ...Option) credentials.TransportCredentials {
	c := &creds{check: check}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Option shapes NewServerCredentials.
type Option func(*creds)

// WrapConn makes the server use wrap(conn) for every admitted connection.
func WrapConn(wrap func(net.Conn) net.Conn) Option { return func(c *creds) { c.wrap = wrap } }

type creds struct {
	check func(*Cred) error
	wrap  func(net.Conn) net.Conn
}

func (c *creds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cr, err := Read(conn)
	if err != nil {
		return nil, nil, err
	}
	if c.check != nil {
		if err := c.check(cr); err != nil {
			return nil, nil, err
		}
	}
	if c.wrap != nil {
		conn = c.wrap(conn)
	}
	// A local socket gives what TLS would: nobody else can read or alter it.
	return conn, AuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}, Cred: *cr, Conn: conn}, nil
}

func (c *creds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("peercred credentials are for servers only")
}

func (c *creds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}

func (c *creds) Clone() credentials.TransportCredentials { return &creds{check: c.check, wrap: c.wrap} }

func (c *creds) OverrideServerName(string) error { return nil }
