package signer

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"io"
)

// Encryption is -E/--encrypt: the body is encrypted with a fresh AES key,
// and that key travels in an unprotected TLV, itself encrypted for the
// device's public key. Only the public key is needed here; the device holds
// the private key (see getpriv).
type Encryption struct {
	// PublicKey is the device's key. Its type picks the scheme:
	// *ecdsa.PublicKey on P-256 (ECIES-P256), *ecdh.PublicKey on X25519
	// (ECIES-X25519) or an RSA-2048 *rsa.PublicKey (RSA-OAEP).
	PublicKey crypto.PublicKey
	KeyBits   int         // --encrypt-keylen: AES-128 (also for 0) or AES-256
	HMAC      crypto.Hash // --hmac-sha: ECIES HKDF/HMAC hash; 0 means SHA-256, SHA-512 only for X25519
	// Clear (--clear) sets the flags and adds the key TLV but leaves the
	// body in plaintext, for the primary slot; it is encrypted on swap.
	Clear bool
	// SaveEncTLV (--save-enctlv) sizes the trailer for a bootloader that
	// saves the key TLV (BOOT_SWAP_SAVE_ENCTLV) rather than the plain key.
	SaveEncTLV bool
	// Rand supplies the AES key and the ephemeral ECDH key or OAEP seed;
	// nil means crypto/rand. Tests inject a deterministic source.
	Rand io.Reader
}

// eciesInfo is the HKDF info string of MCUboot's ECIES schemes.
const eciesInfo = "MCUBoot_ECIES_v1"

func (e *Encryption) keyBytes() int {
	if e.KeyBits == 256 {
		return 32
	}
	return 16
}

func (e *Encryption) hmacHash() crypto.Hash {
	if e.HMAC == 0 {
		return crypto.SHA256
	}
	return e.HMAC
}

func (e *Encryption) rand() io.Reader {
	if e.Rand == nil {
		return rand.Reader
	}
	return e.Rand
}

// flag is the header flag for the AES key size.
func (e *Encryption) flag() uint32 {
	if e.KeyBits == 256 {
		return FlagEncryptedAES256
	}
	return FlagEncryptedAES128
}

// check applies imgtool's rules, and refuses the key types imgtool accepts
// but turns into images the bootloader cannot decrypt. signing is the type
// of the -k key ("" when unsigned or with --fix-sig, which imgtool does not
// pair).
func (e *Encryption) check(signing KeyType) error {
	kt, err := TypeOf(e.PublicKey)
	if err != nil {
		return fmt.Errorf("-E/--encrypt: %w", err)
	}
	if want := pairedEncType(signing); want != "" && !sameFamily(kt, want) {
		return fmt.Errorf("signing and encryption must use the same type of key: the %s signing key (-k) needs an %s encryption key (-E), not %s", signing, want, kt)
	}
	switch kt {
	case ECDSAP256, X25519, RSA2048:
	case ECDSAP384:
		return fmt.Errorf("-E with an ECDSA P-384 key makes an image no MCUboot can decrypt (there is no ECIES-P384; imgtool writes it without the key TLV): encrypt for a P-256, X25519 or RSA-2048 key")
	case RSA3072:
		return fmt.Errorf("-E with an RSA-3072 key makes an image no MCUboot can decrypt (its key TLV is RSA-2048 only): encrypt for an RSA-2048, P-256 or X25519 key")
	default:
		return fmt.Errorf("-E with an %s key is not an MCUboot encryption scheme: encrypt for an X25519, P-256 or RSA-2048 public key", kt)
	}
	if e.KeyBits != 0 && e.KeyBits != 128 && e.KeyBits != 256 {
		return fmt.Errorf("invalid --encrypt-keylen %d: use 128 or 256", e.KeyBits)
	}
	switch e.hmacHash() {
	case crypto.SHA256:
	case crypto.SHA512:
		if kt != X25519 {
			return fmt.Errorf("--hmac-sha 512 works only with ECIES-X25519 (an X25519 key for -E), not %s: drop it or use --hmac-sha 256", kt)
		}
	default:
		return fmt.Errorf("unsupported --hmac-sha %v: use 256 or 512", e.HMAC)
	}
	return nil
}

// pairedEncType is imgtool's pairing rule: ECDSA and RSA signing keys need
// an encryption key of the same kind. Ed25519 (with X25519, by convention)
// and unsigned images are not checked.
func pairedEncType(signing KeyType) KeyType {
	switch signing {
	case ECDSAP256, ECDSAP384:
		return signing
	case RSA2048, RSA3072:
		return RSA2048
	}
	return ""
}

func sameFamily(a, b KeyType) bool {
	isRSA := func(t KeyType) bool { return t == RSA2048 || t == RSA3072 }
	return a == b || isRSA(a) && isRSA(b)
}

// tlvType is the unprotected TLV that carries the encrypted AES key.
func (e *Encryption) tlvType() uint16 {
	switch e.PublicKey.(type) {
	case *rsa.PublicKey:
		return TLVEncRSA2048
	case *ecdsa.PublicKey:
		return TLVEncEC256
	}
	if e.hmacHash() == crypto.SHA512 {
		return TLVEncX25519SHA512
	}
	return TLVEncX25519
}

// tlvLen is the length of that TLV's value: for ECIES the ephemeral public
// key, the HMAC tag and the encrypted AES key.
func (e *Encryption) tlvLen() int {
	switch e.PublicKey.(type) {
	case *rsa.PublicKey:
		return 256
	case *ecdsa.PublicKey:
		return 65 + 32 + e.keyBytes()
	}
	return 32 + e.hmacHash().Size() + e.keyBytes()
}

// seal makes a random AES key and the TLV value that carries it.
func (e *Encryption) seal() (aesKey, tlv []byte, err error) {
	r := e.rand()
	aesKey = make([]byte, e.keyBytes())
	if _, err := io.ReadFull(r, aesKey); err != nil {
		return nil, nil, fmt.Errorf("no randomness for the AES key: %w", err)
	}
	switch k := e.PublicKey.(type) {
	case *rsa.PublicKey:
		tlv, err = rsa.EncryptOAEP(sha256.New(), r, k, aesKey, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("RSA-OAEP encryption of the AES key failed: %w", err)
		}
	case *ecdsa.PublicKey:
		peer, err := k.ECDH()
		if err != nil {
			return nil, nil, fmt.Errorf("-E key: %w", err)
		}
		tlv, err = eciesSeal(r, peer, crypto.SHA256, aesKey)
		if err != nil {
			return nil, nil, err
		}
	case *ecdh.PublicKey:
		tlv, err = eciesSeal(r, k, e.hmacHash(), aesKey)
		if err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("-E key of type %T cannot encrypt", e.PublicKey)
	}
	if len(tlv) != e.tlvLen() {
		return nil, nil, fmt.Errorf("internal error: %d-byte key TLV, want %d", len(tlv), e.tlvLen())
	}
	return aesKey, tlv, nil
}

// eciesSeal is MCUboot's ECIES: ECDH with an ephemeral key, HKDF into an AES
// key and an HMAC key, AES-CTR (zero IV) over the image key, HMAC over that.
// The value is ephemeral public key || tag || encrypted key.
func eciesSeal(r io.Reader, peer *ecdh.PublicKey, h crypto.Hash, plain []byte) ([]byte, error) {
	eph, err := ephemeralKey(r, peer.Curve())
	if err != nil {
		return nil, err
	}
	shared, err := eph.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("ECDH with the -E key failed (%v): use a valid device public key", err)
	}
	okm, err := hkdf.Key(h.New, shared, nil, eciesInfo, len(plain)+h.Size())
	if err != nil {
		return nil, err
	}
	sealed := make([]byte, len(plain))
	if err := aesCTR(okm[:len(plain)], sealed, plain); err != nil {
		return nil, err
	}
	mac := hmac.New(h.New, okm[len(plain):])
	mac.Write(sealed)
	out := append(eph.PublicKey().Bytes(), mac.Sum(nil)...)
	return append(out, sealed...), nil
}

// ephemeralKey draws the ephemeral ECDH key from r itself, since
// GenerateKey ignores its reader since Go 1.26 and tests inject r.
func ephemeralKey(r io.Reader, c ecdh.Curve) (*ecdh.PrivateKey, error) {
	b := make([]byte, 32) // both X25519 and P-256 scalars
	for range 64 {        // P-256 rejects about 2^-32 of the draws
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("no randomness for the ephemeral key: %w", err)
		}
		if k, err := c.NewPrivateKey(b); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("the random source gave no valid %v scalar in 64 draws; check the -E randomness", c)
}

// aesCTR encrypts (or decrypts) src into dst with AES-CTR, IV zero: the
// mode of MCUboot's image and key encryption. dst and src may be the same.
func aesCTR(key, dst, src []byte) error {
	b, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	cipher.NewCTR(b, make([]byte, aes.BlockSize)).XORKeyStream(dst, src)
	return nil
}
