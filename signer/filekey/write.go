package filekey

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/mcusign/mcusign/signer"
)

// Generate makes a new private key of type t, as imgtool keygen does (RSA
// with e = 65537). The result is *rsa.PrivateKey, *ecdsa.PrivateKey,
// ed25519.PrivateKey or *ecdh.PrivateKey (X25519).
func Generate(t signer.KeyType) (crypto.PrivateKey, error) {
	switch t {
	case signer.RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case signer.RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case signer.ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case signer.ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case signer.Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case signer.X25519:
		return ecdh.X25519().GenerateKey(rand.Reader)
	}
	if _, err := signer.ParseKeyType(string(t)); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("cannot generate %s keys", t)
}

// MarshalPrivatePEM encodes priv as PKCS#8 PEM, byte-identical to imgtool
// keygen for the same key. A nil password writes "PRIVATE KEY"; otherwise
// "ENCRYPTED PRIVATE KEY" with PBES2 / PBKDF2-HMAC-SHA256 / AES-256-CBC, which
// Load, imgtool and `openssl pkey` all read.
func MarshalPrivatePEM(priv crypto.PrivateKey, password []byte) ([]byte, error) {
	pk, ok := priv.(interface{ Public() crypto.PublicKey })
	if !ok {
		return nil, fmt.Errorf("%w: private key of type %T", signer.ErrUnsupportedKey, priv)
	}
	// Refuse to write keys MCUboot could never use.
	if _, err := signer.TypeOf(pk.Public()); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding the private key: %w", err)
	}
	if password == nil {
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}
	if len(password) == 0 {
		// imgtool (python-cryptography) refuses empty passphrases too.
		return nil, errors.New("empty passphrase; enter a non-empty passphrase, or omit the password option to write an unencrypted key")
	}
	enc, err := encryptPKCS8(der, password)
	if err != nil {
		return nil, fmt.Errorf("encrypting the private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: enc}), nil
}

// MarshalPublicPEM encodes pub as SubjectPublicKeyInfo PEM, exactly as
// imgtool getpub -e pem prints it (also for RSA, whose getpub lang-c/raw
// bytes are PKCS#1 instead).
func MarshalPublicPEM(pub crypto.PublicKey) ([]byte, error) {
	if _, err := signer.TypeOf(pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding the public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
