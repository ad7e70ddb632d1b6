// Package pkcs11key owns mcusign's PKCS#11 keys: signing keys that never
// leave a token (an HSM, a smart card or SoftHSM2), addressed by RFC 7512
// URIs such as
//
//	pkcs11:token=mcusign-dev;object=ecdsa-p256?pin-source=/home/me/.config/mcusign/pin
//
// It parses those URIs strictly, loads the module (module-path, else
// MCUSIGN_PKCS11_MODULE, else the system SoftHSM2), finds the token and the
// one key the URI names, logs in once per process, and implements
// signer.Key: RSA-PSS and ECDSA through crypto11, Ed25519 through raw
// CKM_EDDSA because crypto11 has none. It also generates and imports keys
// inside a token and describes them for getpub and keyinfo.
//
// PINs come from pin-source, pin-value (with a warning), MCUSIGN_PIN_FILE or
// a caller-supplied prompt, and never appear in errors, logs or String
// output.
//
// One PKCS#11 library can be initialised only once per process, so modules,
// tokens and logins are process-wide here and shared by all keys.
package pkcs11key
