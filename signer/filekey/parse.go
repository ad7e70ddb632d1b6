package filekey

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"

	"github.com/mcusign/mcusign/signer"
)

var (
	oidRSA        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidECPublic   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidEd25519    = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidX25519     = asn1.ObjectIdentifier{1, 3, 101, 110}
	supportedAlgs = []asn1.ObjectIdentifier{oidRSA, oidECPublic, oidEd25519, oidX25519}
)

// Names of key algorithms and curves people actually try, so an unsupported
// key gets named instead of reported as an OID.
var algNames = map[string]string{
	"1.3.101.113":           "Ed448",
	"1.3.101.111":           "X448",
	"1.2.840.10040.4.1":     "DSA",
	"1.2.840.113549.1.1.10": "RSASSA-PSS (restricted RSA)",
	"1.2.840.113549.1.3.1":  "DH",
	"1.2.840.10046.2.1":     "X9.42 DH",
	"1.2.156.10197.1.301":   "SM2",
}

var curveNames = map[string]string{
	"1.3.132.0.33":          "P-224",
	"1.3.132.0.35":          "P-521",
	"1.3.132.0.10":          "secp256k1",
	"1.2.840.10045.3.1.1":   "P-192",
	"1.3.36.3.3.2.8.1.1.7":  "brainpoolP256r1",
	"1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1",
	"1.3.36.3.3.2.8.1.1.13": "brainpoolP512r1",
	"1.2.156.10197.1.301":   "SM2",
}

type pkcs8Info struct {
	Version    int
	Algo       pkix.AlgorithmIdentifier
	PrivateKey []byte
	// optional attributes and public key are ignored
}

type spkiInfo struct {
	Algo      pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

type sec1Info struct {
	Version    int
	PrivateKey []byte
	Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

type pkcs1Modulus struct {
	N *big.Int
	E int
}

type pkcs1PrivModulus struct {
	Version int
	N       *big.Int
}

func supportedHint() string {
	return "MCUboot supports RSA-2048/3072, ECDSA P-256/P-384, Ed25519 and X25519 keys; generate one with `mcusign keygen -t ed25519`"
}

// unsupportedAlg explains a key x509 rejected, if its algorithm is one MCUboot
// cannot use; it returns nil when the algorithm is supported (so the key itself
// must be malformed).
func unsupportedAlg(algo pkix.AlgorithmIdentifier) error {
	if algo.Algorithm.Equal(oidECPublic) {
		var curve asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(algo.Parameters.FullBytes, &curve); err != nil {
			return fmt.Errorf("%w: EC key with explicit or missing curve parameters (%s)", signer.ErrUnsupportedKey, supportedHint())
		}
		return unsupportedCurve(curve)
	}
	for _, oid := range supportedAlgs {
		if algo.Algorithm.Equal(oid) {
			return nil
		}
	}
	name, ok := algNames[algo.Algorithm.String()]
	if !ok {
		name = "algorithm OID " + algo.Algorithm.String()
	}
	return fmt.Errorf("%w: %s key (%s)", signer.ErrUnsupportedKey, name, supportedHint())
}

func unsupportedCurve(curve asn1.ObjectIdentifier) error {
	name, ok := curveNames[curve.String()]
	if !ok {
		name = "OID " + curve.String()
	}
	return fmt.Errorf("%w: EC curve %s (MCUboot supports P-256 and P-384 only; generate a new key with `mcusign keygen -t ecdsa-p256`)", signer.ErrUnsupportedKey, name)
}

// unsupportedRSASize reports an RSA key x509 refused (Go rejects very small
// moduli outright) by its size, like TypeOf does for parseable ones.
func unsupportedRSASize(n *big.Int) error {
	if n == nil || n.BitLen() == 2048 || n.BitLen() == 3072 {
		return nil
	}
	return fmt.Errorf("%w: RSA-%d (MCUboot signs with RSA-2048 or RSA-3072 only; generate a new key with `mcusign keygen -t rsa-2048`)", signer.ErrUnsupportedKey, n.BitLen())
}

func malformed(what string, err error) error {
	return fmt.Errorf("malformed %s (%v); regenerate the key or check it with `openssl pkey -in KEY.pem -noout -text`", what, err)
}

func parsePKCS8(der []byte) (crypto.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err == nil {
		return k, nil
	}
	var info pkcs8Info
	if _, perr := asn1.Unmarshal(der, &info); perr == nil {
		if uerr := unsupportedAlg(info.Algo); uerr != nil {
			return nil, uerr
		}
		if info.Algo.Algorithm.Equal(oidRSA) {
			var m pkcs1PrivModulus
			if _, merr := asn1.Unmarshal(info.PrivateKey, &m); merr == nil {
				if uerr := unsupportedRSASize(m.N); uerr != nil {
					return nil, uerr
				}
			}
		}
	}
	return nil, malformed("PKCS#8 private key", err)
}

func parsePKCS1Private(der []byte) (crypto.PrivateKey, error) {
	k, err := x509.ParsePKCS1PrivateKey(der)
	if err == nil {
		return k, nil
	}
	var m pkcs1PrivModulus
	if _, merr := asn1.Unmarshal(der, &m); merr == nil {
		if uerr := unsupportedRSASize(m.N); uerr != nil {
			return nil, uerr
		}
	}
	return nil, malformed("RSA private key", err)
}

func parseSEC1Private(der []byte) (crypto.PrivateKey, error) {
	k, err := x509.ParseECPrivateKey(der)
	if err == nil {
		return k, nil
	}
	var info sec1Info
	if _, perr := asn1.Unmarshal(der, &info); perr == nil && len(info.Curve) > 0 {
		if _, known := curveNames[info.Curve.String()]; known {
			return nil, unsupportedCurve(info.Curve)
		}
	}
	return nil, malformed("EC private key", err)
}

func parseSPKI(der []byte) (crypto.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err == nil {
		return k, nil
	}
	var info spkiInfo
	if _, perr := asn1.Unmarshal(der, &info); perr == nil {
		if uerr := unsupportedAlg(info.Algo); uerr != nil {
			return nil, uerr
		}
		if info.Algo.Algorithm.Equal(oidRSA) {
			var m pkcs1Modulus
			if _, merr := asn1.Unmarshal(info.PublicKey.RightAlign(), &m); merr == nil {
				if uerr := unsupportedRSASize(m.N); uerr != nil {
					return nil, uerr
				}
			}
		}
	}
	return nil, malformed("public key", err)
}

func parsePKCS1Public(der []byte) (crypto.PublicKey, error) {
	k, err := x509.ParsePKCS1PublicKey(der)
	if err == nil {
		return k, nil
	}
	var m pkcs1Modulus
	if _, merr := asn1.Unmarshal(der, &m); merr == nil {
		if uerr := unsupportedRSASize(m.N); uerr != nil {
			return nil, uerr
		}
	}
	return nil, malformed("RSA public key", err)
}
