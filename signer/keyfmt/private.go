package keyfmt

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
)

// getpriv -f values. Each key type has one default: openssl (PKCS#1) for
// RSA, pkcs8 for EC and X25519.
const (
	FormatOpenSSL = "openssl"
	FormatPKCS8   = "pkcs8"
)

// EncryptionKey writes the device's decryption key the way imgtool getpriv
// does, for MCUboot's enc_priv_key[] (autogen-enckey.c): a C array of its
// DER encoding. format "" means the key type's default.
func EncryptionKey(w io.Writer, priv crypto.PrivateKey, format string, minimal bool) error {
	der, err := EncryptionKeyDER(priv, format, minimal)
	if err != nil {
		return err
	}
	return EmitBytesC(w, "enc_priv_key", der)
}

// EncryptionKeyDER is the DER getpriv prints:
//   - RSA-2048: PKCS#1 RSAPrivateKey; minimal keeps only n, e, d, p, q (no CRT values).
//   - P-256: PKCS#8, or SEC 1 with -f openssl; minimal drops the public key.
//   - X25519: PKCS#8 (minimal changes nothing).
//
// Key types MCUboot cannot decrypt with are refused, where imgtool would
// print a key for a bootloader that cannot exist.
func EncryptionKeyDER(priv crypto.PrivateKey, format string, minimal bool) ([]byte, error) {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() != 2048 {
			return nil, fmt.Errorf("an RSA-%d key cannot be an MCUboot encryption key (MCUboot decrypts RSA-OAEP with RSA-2048 only): generate one with `mcusign keygen -t rsa-2048`", k.N.BitLen())
		}
		if format == FormatPKCS8 {
			return nil, fmt.Errorf("RSA encryption keys are exported in the openssl (PKCS#1) format only, which MCUboot parses: drop -f pkcs8")
		}
		if minimal {
			return asn1.Marshal(rsaMinimal{0, k.N, big.NewInt(int64(k.E)), k.D, k.Primes[0], k.Primes[1]})
		}
		return x509.MarshalPKCS1PrivateKey(k), nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("an ECDSA %s key cannot be an MCUboot encryption key (MCUboot has ECIES-P256 only): use a P-256 or X25519 key", k.Curve.Params().Name)
		}
		return ecDER(k, format, minimal)
	case *ecdh.PrivateKey:
		if k.Curve() != ecdh.X25519() {
			return nil, fmt.Errorf("only X25519 ECDH keys are MCUboot encryption keys")
		}
		if format == FormatOpenSSL {
			return nil, fmt.Errorf("X25519 keys are exported as PKCS#8 only: drop -f openssl")
		}
		return x509.MarshalPKCS8PrivateKey(k)
	case ed25519.PrivateKey:
		return nil, fmt.Errorf("an Ed25519 key only signs and cannot decrypt images: pass the device's encryption key (X25519, P-256 or RSA-2048), e.g. one from `mcusign keygen -t x25519`")
	case nil:
		return nil, fmt.Errorf("no private key")
	}
	return nil, fmt.Errorf("a %T cannot be an MCUboot encryption key", priv)
}

// rsaMinimal is RSAPrivateKey cut after the second prime, as imgtool's
// --minimal makes it for bootloaders built without the CRT values.
type rsaMinimal struct {
	Version       int
	N, E, D, P, Q *big.Int
}

// ecPrivateKey is SEC 1's ECPrivateKey without the optional public key.
type ecPrivateKey struct {
	Version    int
	PrivateKey []byte
	Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
}

type pkcs8 struct {
	Version    int
	Algo       pkix.AlgorithmIdentifier
	PrivateKey []byte
}

var oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}

func ecDER(k *ecdsa.PrivateKey, format string, minimal bool) ([]byte, error) {
	if format == FormatOpenSSL { // SEC 1, with the curve inside
		if !minimal {
			return x509.MarshalECPrivateKey(k)
		}
		d, err := scalar(k)
		if err != nil {
			return nil, err
		}
		return asn1.Marshal(ecPrivateKey{1, d, oidP256})
	}
	full, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil || !minimal {
		return full, err
	}
	// PKCS#8 names the curve in its algorithm identifier; minimal leaves
	// only the scalar inside.
	var p pkcs8
	if _, err := asn1.Unmarshal(full, &p); err != nil {
		return nil, err
	}
	d, err := scalar(k)
	if err != nil {
		return nil, err
	}
	if p.PrivateKey, err = asn1.Marshal(ecPrivateKey{Version: 1, PrivateKey: d}); err != nil {
		return nil, err
	}
	return asn1.Marshal(p)
}

// scalar is the private key as a fixed-length big-endian integer.
func scalar(k *ecdsa.PrivateKey) ([]byte, error) {
	e, err := k.ECDH()
	if err != nil {
		return nil, err
	}
	return e.Bytes(), nil
}
