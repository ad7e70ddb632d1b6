// Package filekey owns key files: it reads the PEM keys imgtool accepts
// (PKCS#8 private keys, plain or password-protected; traditional "RSA PRIVATE
// KEY"/"EC PRIVATE KEY"; SubjectPublicKeyInfo and PKCS#1 public keys),
// generates new keys, and writes them back as PEM the way imgtool keygen and
// getpub -e pem do. The key model itself (KeyType, signing) is package signer.
package filekey

import (
	"bytes"
	"crypto"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/mcusign/mcusign/signer"
)

// ErrPasswordRequired means the key file is encrypted and no way to obtain a
// passphrase was supplied.
var ErrPasswordRequired = errors.New("private key is password-protected and no passphrase was supplied; " +
	"run the command interactively to be prompted for it, or decrypt the key once with `openssl pkey -in KEY.pem -out PLAIN.pem`")

// ErrWrongPassword means decryption with the supplied passphrase did not
// produce a key.
var ErrWrongPassword = errors.New("wrong passphrase: decrypting the private key did not yield a valid key; check the passphrase and try again")

// ErrPublicOnly means a signing key was needed but the file holds only a
// public key. The text is imgtool's.
var ErrPublicOnly = errors.New("Cannot sign with a public-only PEM; signing requires the private key.")

// ErrNotSigningKey means the key is private but of a type that cannot sign (X25519).
var ErrNotSigningKey = errors.New("X25519 keys are for image encryption (-E) only and cannot sign; sign with an Ed25519, ECDSA or RSA key")

// File is a key loaded from a PEM file.
type File struct {
	Type      signer.KeyType
	Public    crypto.PublicKey  // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or *ecdh.PublicKey (X25519)
	Private   crypto.PrivateKey // nil when the file holds only a public key
	Encrypted bool              // the file was password-protected
}

// IsPrivate reports whether the file holds a private key. X25519 private keys
// count, as in imgtool keyinfo, although they cannot sign.
func (f *File) IsPrivate() bool { return f.Private != nil }

// Kind is what imgtool keyinfo prints: "private" or "public".
func (f *File) Kind() string {
	if f.IsPrivate() {
		return "private"
	}
	return "public"
}

// Signer returns the private key as a crypto.Signer, or ErrPublicOnly /
// ErrNotSigningKey.
func (f *File) Signer() (crypto.Signer, error) {
	if f.Private == nil {
		return nil, ErrPublicOnly
	}
	if !f.Type.CanSign() {
		return nil, ErrNotSigningKey
	}
	s, ok := f.Private.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %s private key of type %T cannot sign", f.Type, f.Private)
	}
	return s, nil
}

// Key returns the file's key as a signer.Key for the image engine.
func (f *File) Key() (signer.Key, error) {
	s, err := f.Signer()
	if err != nil {
		return nil, err
	}
	return signer.CryptoKey{Signer: s}, nil
}

// PasswordFunc supplies the passphrase of an encrypted key. It is called at
// most once, and only when the key is encrypted, so callers can prompt lazily
// as imgtool does.
type PasswordFunc func() ([]byte, error)

// LoadFile reads and loads the key file at path; errors name the path.
func LoadFile(path string, password PasswordFunc) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read key file: %w", err)
	}
	f, err := Load(data, password)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Load parses a PEM key. Like imgtool (which asks OpenSSL for a private key
// first and falls back to a public key), a private key block wins over a
// public one; blocks such as "EC PARAMETERS" are skipped. password may be nil,
// in which case an encrypted key yields ErrPasswordRequired.
func Load(data []byte, password PasswordFunc) (*File, error) {
	var priv, pub *pem.Block
	var others []string
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if priv == nil {
				priv = b
			}
		case "PUBLIC KEY", "RSA PUBLIC KEY":
			if pub == nil {
				pub = b
			}
		case "EC PARAMETERS": // written by `openssl ecparam -genkey` ahead of the key
		default:
			others = append(others, b.Type)
		}
	}
	switch {
	case priv != nil:
		return loadPrivate(priv, password)
	case pub != nil:
		return loadPublic(pub)
	case len(others) > 0:
		return nil, fmt.Errorf("PEM file holds a %q block, not a key; use a PEM private key or public key (for a certificate: `openssl x509 -in CERT.pem -pubkey -noout`)", others[0])
	case bytes.Contains(data, []byte("-----BEGIN")):
		return nil, errors.New("malformed PEM: a -----BEGIN line was found but no complete, valid block; check the file is not truncated or edited")
	case len(data) > 0 && data[0] == 0x30:
		return nil, errors.New("key file is not PEM (it looks like DER); convert it with `openssl pkey -inform DER -in KEY.der -out KEY.pem`")
	}
	return nil, errors.New("not a PEM key file: no -----BEGIN PRIVATE KEY----- or -----BEGIN PUBLIC KEY----- block found; pass a key made by `mcusign keygen` or openssl")
}

func loadPrivate(b *pem.Block, password PasswordFunc) (*File, error) {
	der := b.Bytes
	var decrypt func(password []byte) ([]byte, error)
	var err error
	switch {
	case b.Type == "ENCRYPTED PRIVATE KEY":
		decrypt, err = pbes2Decrypter(der)
	case b.Headers["Proc-Type"] == "4,ENCRYPTED":
		decrypt, err = legacyDecrypter(b)
	}
	if err != nil {
		return nil, err
	}
	if decrypt != nil {
		if password == nil {
			return nil, ErrPasswordRequired
		}
		pw, err := password()
		if err != nil {
			return nil, fmt.Errorf("reading the key passphrase: %w", err)
		}
		if der, err = decrypt(pw); err != nil {
			return nil, err
		}
	}

	var priv crypto.PrivateKey
	switch b.Type {
	case "RSA PRIVATE KEY":
		priv, err = parsePKCS1Private(der)
	case "EC PRIVATE KEY":
		priv, err = parseSEC1Private(der)
	default:
		priv, err = parsePKCS8(der)
	}
	if err != nil {
		return nil, err
	}
	pk, ok := priv.(interface{ Public() crypto.PublicKey })
	if !ok {
		return nil, fmt.Errorf("%w: private key of type %T", signer.ErrUnsupportedKey, priv)
	}
	pub := pk.Public()
	t, err := signer.TypeOf(pub)
	if err != nil {
		return nil, err
	}
	return &File{Type: t, Public: pub, Private: priv, Encrypted: decrypt != nil}, nil
}

func loadPublic(b *pem.Block) (*File, error) {
	var pub crypto.PublicKey
	var err error
	if b.Type == "RSA PUBLIC KEY" {
		pub, err = parsePKCS1Public(b.Bytes)
	} else {
		pub, err = parseSPKI(b.Bytes)
	}
	if err != nil {
		return nil, err
	}
	t, err := signer.TypeOf(pub)
	if err != nil {
		return nil, err
	}
	return &File{Type: t, Public: pub}, nil
}
