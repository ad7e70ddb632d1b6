package signer

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
)

// KeyType names a key kind the way imgtool's keygen -t does.
type KeyType string

const (
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	ECDSAP256 KeyType = "ecdsa-p256"
	ECDSAP384 KeyType = "ecdsa-p384"
	Ed25519   KeyType = "ed25519"
	X25519    KeyType = "x25519" // encryption only; never signs
)

// KeyTypes lists every supported key type in imgtool's order.
var KeyTypes = []KeyType{RSA2048, RSA3072, ECDSAP256, ECDSAP384, Ed25519, X25519}

// ParseKeyType parses a keygen -t name.
func ParseKeyType(s string) (KeyType, error) {
	for _, t := range KeyTypes {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("unknown key type %q; use one of rsa-2048, rsa-3072, ecdsa-p256, ecdsa-p384, ed25519, x25519", s)
}

// CanSign reports whether MCUboot accepts signatures made with keys of this type.
func (t KeyType) CanSign() bool { return t != X25519 && t != "" }

// ShortName is the prefix imgtool uses for C and Rust symbols (rsa_pub_key, ...).
func (t KeyType) ShortName() string {
	switch t {
	case RSA2048, RSA3072:
		return "rsa"
	case ECDSAP256:
		return "ecdsa"
	case ECDSAP384:
		return "ecdsap384"
	default:
		return string(t)
	}
}

// SigTLV is the unprotected TLV type that carries this key type's signature.
func (t KeyType) SigTLV() uint16 {
	switch t {
	case RSA2048:
		return TLVRSA2048
	case RSA3072:
		return TLVRSA3072
	case ECDSAP256, ECDSAP384:
		return TLVECDSASig
	case Ed25519:
		return TLVEd25519
	}
	return 0
}

// ErrUnsupportedKey is wrapped by every error about a key MCUboot cannot use.
var ErrUnsupportedKey = errors.New("unsupported key")

// TypeOf classifies a public key. Only the types MCUboot understands are accepted.
func TypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048, nil
		case 3072:
			return RSA3072, nil
		}
		return "", fmt.Errorf("%w: RSA-%d (MCUboot signs with RSA-2048 or RSA-3072 only; generate a new key with `mcusign keygen -t rsa-2048`)", ErrUnsupportedKey, k.N.BitLen())
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256, nil
		case elliptic.P384():
			return ECDSAP384, nil
		}
		return "", fmt.Errorf("%w: EC curve %s (MCUboot supports P-256 and P-384 only; generate a new key with `mcusign keygen -t ecdsa-p256`)", ErrUnsupportedKey, k.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", fmt.Errorf("%w: Ed25519 key of %d bytes", ErrUnsupportedKey, len(k))
		}
		return Ed25519, nil
	case *ecdh.PublicKey:
		if k.Curve() == ecdh.X25519() {
			return X25519, nil
		}
		return "", fmt.Errorf("%w: ECDH key on an unsupported curve", ErrUnsupportedKey)
	case nil:
		return "", fmt.Errorf("%w: no public key", ErrUnsupportedKey)
	}
	return "", fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
}

// PublicKeyBytes is the encoding MCUboot embeds and hashes (KEYHASH, PUBKEY,
// getpub lang-c/raw): PKCS#1 RSAPublicKey for RSA, SubjectPublicKeyInfo DER
// for everything else.
func PublicKeyBytes(pub crypto.PublicKey) ([]byte, error) {
	if _, err := TypeOf(pub); err != nil {
		return nil, err
	}
	if k, ok := pub.(*rsa.PublicKey); ok {
		return x509.MarshalPKCS1PublicKey(k), nil
	}
	return x509.MarshalPKIXPublicKey(pub)
}

// SignRequest is what a Key is asked to sign: the to-be-signed region of an
// image (header, header padding, body and protected TLVs) and its digest.
type SignRequest struct {
	Payload []byte      // the region R; always set
	Digest  []byte      // Hash(R)
	Hash    crypto.Hash // crypto.SHA256, SHA384 or SHA512
	Pure    bool        // Ed25519 over R itself instead of over Digest
}

// Key is what the image engine signs through. File keys, PKCS#11 keys and the
// daemon client all implement it, so the engine never knows where a key lives.
type Key interface {
	// Public returns the public key: *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	Public() crypto.PublicKey
	// Sign returns the signature TLV value: RSA-PSS (SHA-256, MGF1-SHA256,
	// salt 32), DER ECDSA, or a 64-byte Ed25519 signature.
	Sign(ctx context.Context, req SignRequest) ([]byte, error)
}

// CryptoKey adapts a crypto.Signer (a PEM key, a crypto11 key, ...) to Key.
type CryptoKey struct {
	crypto.Signer
	Rand io.Reader // nil means crypto/rand
}

// Sign implements Key.
func (k CryptoKey) Sign(_ context.Context, req SignRequest) ([]byte, error) {
	return SignWith(k.Signer, k.Rand, req)
}

// SignWith signs req with s using the MCUboot scheme for s's key type.
func SignWith(s crypto.Signer, r io.Reader, req SignRequest) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	kt, err := TypeOf(s.Public())
	if err != nil {
		return nil, err
	}
	if req.Pure && kt != Ed25519 {
		return nil, fmt.Errorf("--pure needs an Ed25519 key, not %s", kt)
	}
	switch kt {
	case RSA2048, RSA3072:
		return s.Sign(r, req.Digest, &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256})
	case ECDSAP256, ECDSAP384:
		return s.Sign(r, req.Digest, req.Hash)
	case Ed25519:
		msg := req.Digest
		if req.Pure {
			msg = req.Payload
		}
		return s.Sign(r, msg, crypto.Hash(0))
	}
	return nil, fmt.Errorf("a %s key cannot sign images; X25519 keys are for encryption (-E) only, sign with an Ed25519 key", kt)
}

// VerifySignature checks sig over req with pub, using the MCUboot scheme for
// pub's type. It is how --fix-sig refuses signatures that would not boot.
func VerifySignature(pub crypto.PublicKey, req SignRequest, sig []byte) error {
	kt, err := TypeOf(pub)
	if err != nil {
		return err
	}
	ok := false
	switch kt {
	case RSA2048, RSA3072:
		k := pub.(*rsa.PublicKey)
		ok = len(sig) == k.Size() && len(req.Digest) == 32 &&
			rsa.VerifyPSS(k, crypto.SHA256, req.Digest, sig, &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256}) == nil
	case ECDSAP256, ECDSAP384:
		ok = ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), req.Digest, sig)
	case Ed25519:
		msg := req.Digest
		if req.Pure {
			msg = req.Payload
		}
		ok = len(sig) == ed25519.SignatureSize && ed25519.Verify(pub.(ed25519.PublicKey), msg, sig)
	default:
		return fmt.Errorf("a %s key cannot verify image signatures", kt)
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
}

// ErrBadSignature means a signature does not verify against the public key.
var ErrBadSignature = errors.New("signature does not verify")
