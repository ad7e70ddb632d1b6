package signer_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/imgcheck"
)

// encScheme is one -E configuration: signing key, device key, options, and
// the key TLV and header flag it must produce.
type encScheme struct {
	name      string
	sign, dev string // vector key files
	bits      int
	hmac      crypto.Hash
	tlv       uint16
	tlvLen    int
	flag      uint32
}

var encSchemes = []encScheme{
	{"ecies-p256", "ecdsa-p256.pem", "ecdsa-p256", 0, 0, signer.TLVEncEC256, 113, signer.FlagEncryptedAES128},
	{"ecies-p256-aes256", "ecdsa-p256.pem", "ecdsa-p256", 256, 0, signer.TLVEncEC256, 129, signer.FlagEncryptedAES256},
	{"ecies-x25519", "ed25519.pem", "x25519", 128, crypto.SHA256, signer.TLVEncX25519, 80, signer.FlagEncryptedAES128},
	{"ecies-x25519-aes256", "ed25519.pem", "x25519", 256, 0, signer.TLVEncX25519, 96, signer.FlagEncryptedAES256},
	{"ecies-x25519-hmac512", "ed25519.pem", "x25519", 0, crypto.SHA512, signer.TLVEncX25519SHA512, 112, signer.FlagEncryptedAES128},
	{"ecies-x25519-hmac512-aes256", "ed25519.pem", "x25519", 256, crypto.SHA512, signer.TLVEncX25519SHA512, 128, signer.FlagEncryptedAES256},
	{"rsa-oaep", "rsa-2048.pem", "rsa-2048", 0, 0, signer.TLVEncRSA2048, 256, signer.FlagEncryptedAES128},
	{"rsa-oaep-aes256", "rsa-3072.pem", "rsa-2048", 256, 0, signer.TLVEncRSA2048, 256, signer.FlagEncryptedAES256},
	{"unsigned-x25519", "", "x25519", 0, 0, signer.TLVEncX25519, 80, signer.FlagEncryptedAES128},
}

func seeded(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

func encOptions(t *testing.T, sc encScheme, seed uint64) signer.Options {
	return signer.Options{
		Version: signer.Version{Major: 1, Minor: 2}, HeaderSize: 0x200, PadHeader: true, SlotSize: 0x60000, Align: 4,
		SecurityCounter: new(uint32(7)),
		Encrypt: &signer.Encryption{
			PublicKey: loadKey(t, sc.dev+".pub.pem").Public,
			KeyBits:   sc.bits, HMAC: sc.hmac,
			Rand: seeded(seed),
		},
	}
}

func signKey(t *testing.T, name string) signer.Key {
	if name == "" {
		return nil
	}
	k, err := loadKey(t, name).Key()
	require.NoError(t, err)
	return k
}

// Every scheme: the image decrypts with the device key to the input (padded
// to whole AES blocks with zeros), verifies after decryption, and carries
// the right flag and key TLV after the signature.
func TestEncryptSchemes(t *testing.T) {
	app := readVector(t, "inputs/app-100k.bin")[:1001] // not block aligned
	for _, sc := range encSchemes {
		t.Run(sc.name, func(t *testing.T) {
			o := encOptions(t, sc, 1)
			img, err := signer.Build(context.Background(), app, o, signKey(t, sc.sign), nil)
			require.NoError(t, err)
			l, err := imgcheck.Parse(img.Bytes)
			require.NoError(t, err)
			require.Equal(t, sc.flag, l.Flags)
			require.Equal(t, 1008, l.ImgSize, "0x200 + 1001 padded to 16")
			require.NotEqual(t, app, l.Body(img.Bytes)[:len(app)], "body is encrypted")

			last := l.Unprotected[len(l.Unprotected)-1]
			require.Equal(t, sc.tlv, last.Type, "the key TLV comes last")
			require.Len(t, last.Value, sc.tlvLen)

			dec, err := imgcheck.Decrypt(img.Bytes, loadKey(t, sc.dev+".pem").Private)
			require.NoError(t, err)
			require.Equal(t, app, l.Body(dec)[:len(app)])
			require.Equal(t, make([]byte, 7), l.Body(dec)[len(app):])
			var pub crypto.PublicKey
			if sc.sign != "" {
				pub = loadKey(t, sc.sign).Public
			}
			v, err := signer.Verify(dec, pub)
			require.NoError(t, err)
			require.Equal(t, img.Digest, v.Digest, "hash and signature cover the plaintext")
			_, err = signer.Verify(img.Bytes, pub)
			require.ErrorIs(t, err, signer.ErrInvalidHash)
		})
	}
}

// --clear: same header, padding and key TLV, body in plaintext, verifies as is.
func TestEncryptClear(t *testing.T) {
	app := readVector(t, "inputs/app-100k.bin")[:1001]
	sc := encSchemes[2]
	o := encOptions(t, sc, 1)
	o.Encrypt.Clear = true
	img, err := signer.Build(context.Background(), app, o, signKey(t, sc.sign), nil)
	require.NoError(t, err)
	_, err = signer.Verify(img.Bytes, loadKey(t, sc.sign).Public)
	require.NoError(t, err)
	l, err := imgcheck.Parse(img.Bytes)
	require.NoError(t, err)
	require.Equal(t, append(app, make([]byte, 7)...), l.Body(img.Bytes))
	require.Equal(t, uint32(signer.FlagEncryptedAES128), l.Flags)
	_, err = imgcheck.ImageKey(l, loadKey(t, "x25519.pem").Private)
	require.NoError(t, err, "the key TLV is valid for the device")

	// Same bytes as the encrypted image up to the body, and its decryption.
	o = encOptions(t, sc, 1)
	enc, err := signer.Build(context.Background(), app, o, signKey(t, sc.sign), nil)
	require.NoError(t, err)
	dec, err := imgcheck.Decrypt(enc.Bytes, loadKey(t, "x25519.pem").Private)
	require.NoError(t, err)
	require.Equal(t, img.Bytes, dec, "same seed: same key TLV, same plaintext")
}

// Randomness comes only from Encryption.Rand: the same seed gives the same
// image, another seed another AES key and ephemeral key.
func TestEncryptRandomness(t *testing.T) {
	app := readVector(t, "inputs/app-100k.bin")[:4096]
	for _, sc := range encSchemes {
		build := func(seed uint64) []byte {
			img, err := signer.Build(context.Background(), app, encOptions(t, sc, seed), signKey(t, sc.sign), nil)
			require.NoError(t, err)
			return img.Bytes
		}
		a, b, c := build(1), build(1), build(2)
		if sc.sign == "ed25519.pem" || sc.sign == "" { // deterministic signatures
			require.Equal(t, a, b, sc.name)
		}
		require.NotEqual(t, a[0x200:0x210], c[0x200:0x210], sc.name)
	}
}

// The trailer reserves the two slots' keys: 16 bytes each (imgtool's rule,
// even for AES-256), or the whole key TLV with --save-enctlv, aligned to
// max_align. The slot check is exact at the boundary.
func TestEncryptTrailerSize(t *testing.T) {
	app := readVector(t, "inputs/app-100k.bin")[:4096]
	const base = 128*3*4 + 4*8 + 16 // align 4, max_align 8
	for _, tc := range []struct {
		dev     string
		bits    int
		hmac    crypto.Hash
		save    bool
		trailer int
	}{
		{"ecdsa-p256", 128, 0, false, base + 2*16},
		{"ecdsa-p256", 256, 0, false, base + 2*16}, // AES-256 still 16 per key
		{"rsa-2048", 128, 0, false, base + 2*16},
		{"x25519", 256, crypto.SHA512, false, base + 2*16},
		{"ecdsa-p256", 128, 0, true, base + 2*120}, // 113 aligned to 8
		{"ecdsa-p256", 256, 0, true, base + 2*136}, // 129
		{"x25519", 128, 0, true, base + 2*80},
		{"x25519", 256, 0, true, base + 2*96},
		{"x25519", 128, crypto.SHA512, true, base + 2*112},
		{"x25519", 256, crypto.SHA512, true, base + 2*128},
		{"rsa-2048", 256, 0, true, base + 2*256},
	} {
		// Ed25519 signs deterministically, so every build has the same size;
		// imgtool pairs nothing with Ed25519.
		build := func(slot int) (*signer.Image, error) {
			o := signer.Options{Version: signer.Version{Major: 1}, HeaderSize: 0x200, PadHeader: true, Align: 4, SlotSize: slot, Pad: slot != 0,
				Encrypt: &signer.Encryption{PublicKey: loadKey(t, tc.dev+".pub.pem").Public, KeyBits: tc.bits, HMAC: tc.hmac, SaveEncTLV: tc.save}}
			return signer.Build(context.Background(), app, o, signKey(t, "ed25519.pem"), nil)
		}
		img, err := build(0)
		require.NoError(t, err)
		slot := len(img.Bytes) + tc.trailer
		img, err = build(slot)
		require.NoError(t, err, "%s %d save %v: fits exactly", tc.dev, tc.bits, tc.save)
		require.Len(t, img.Padded(), slot)
		_, err = build(slot - 1)
		require.ErrorContains(t, err, "exceeds the slot size", "%s %d save %v: one byte short", tc.dev, tc.bits, tc.save)
	}
}

// --vector-to-sign exports the padded plaintext with the encryption flag,
// the region the signature covers.
func TestEncryptVectorToSign(t *testing.T) {
	app := readVector(t, "inputs/app-100k.bin")[:1001]
	sc := encSchemes[2]
	o := encOptions(t, sc, 1)
	o.Vector = "payload"
	payload, err := signer.Build(context.Background(), app, o, nil, nil)
	require.NoError(t, err)
	o = encOptions(t, sc, 1)
	img, err := signer.Build(context.Background(), app, o, nil, nil)
	require.NoError(t, err)
	dec, err := imgcheck.Decrypt(img.Bytes, loadKey(t, "x25519.pem").Private)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(dec, payload.Bytes))
	require.Len(t, payload.Bytes, 0x200+1008+12, "header, padded body, SEC_CNT")
}

// imgtool's rules and our refusals of images no bootloader can decrypt:
// one line each, naming the fix.
func TestEncryptErrors(t *testing.T) {
	app := readVector(t, "inputs/app-100k.bin")[:1024]
	for _, tc := range []struct {
		name, sign, enc string
		edit            func(e *signer.Encryption)
		err             string
	}{
		{"p384 device key", "ed25519.pem", "ecdsa-p384.pub.pem", nil, "no MCUboot can decrypt"},
		{"p384 with p384", "ecdsa-p384.pem", "ecdsa-p384.pub.pem", nil, "encrypt for a P-256, X25519 or RSA-2048 key"},
		{"p384 unsigned", "", "ecdsa-p384.pub.pem", nil, "there is no ECIES-P384"},
		{"rsa-3072 device key", "rsa-2048.pem", "rsa-3072.pub.pem", nil, "RSA-2048 only"},
		{"ed25519 device key", "ed25519.pem", "ed25519.pub.pem", nil, "not an MCUboot encryption scheme"},
		{"p256 signs, x25519 encrypts", "ecdsa-p256.pem", "x25519.pub.pem", nil, "same type of key: the ecdsa-p256 signing key (-k) needs an ecdsa-p256 encryption key (-E), not x25519"},
		{"p256 signs, rsa encrypts", "ecdsa-p256.pem", "rsa-2048.pub.pem", nil, "same type of key"},
		{"rsa signs, p256 encrypts", "rsa-3072.pem", "ecdsa-p256.pub.pem", nil, "needs an rsa-2048 encryption key"},
		{"p384 signs, p256 encrypts", "ecdsa-p384.pem", "ecdsa-p256.pub.pem", nil, "same type of key"},
		{"hmac512 with p256", "ecdsa-p256.pem", "ecdsa-p256.pub.pem", func(e *signer.Encryption) { e.HMAC = crypto.SHA512 }, "--hmac-sha 512 works only with ECIES-X25519"},
		{"hmac512 with rsa", "rsa-2048.pem", "rsa-2048.pub.pem", func(e *signer.Encryption) { e.HMAC = crypto.SHA512 }, "drop it or use --hmac-sha 256"},
		{"hmac384", "ed25519.pem", "x25519.pub.pem", func(e *signer.Encryption) { e.HMAC = crypto.SHA384 }, "use 256 or 512"},
		{"keylen 192", "ed25519.pem", "x25519.pub.pem", func(e *signer.Encryption) { e.KeyBits = 192 }, "use 128 or 256"},
		{"no key", "ed25519.pem", "", nil, "pass -E/--encrypt"},
		{"short random", "ed25519.pem", "x25519.pub.pem", func(e *signer.Encryption) { e.Rand = bytes.NewReader(make([]byte, 20)) }, "no randomness"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &signer.Encryption{}
			if tc.enc != "" {
				e.PublicKey = loadKey(t, tc.enc).Public
			}
			if tc.edit != nil {
				tc.edit(e)
			}
			o := signer.Options{Version: signer.Version{Major: 1}, HeaderSize: 0x200, PadHeader: true, Encrypt: e}
			_, err := signer.Build(context.Background(), app, o, signKey(t, tc.sign), nil)
			require.ErrorContains(t, err, tc.err)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

// imgtool pairs -E only with -k: with --fix-sig any device key type goes.
func TestEncryptFixSigNotPaired(t *testing.T) {
	app := readVector(t, "inputs/app-100k.bin")[:1024]
	o := signer.Options{Version: signer.Version{Major: 1}, HeaderSize: 0x200, PadHeader: true,
		Encrypt: &signer.Encryption{PublicKey: loadKey(t, "x25519.pub.pem").Public}}
	v := o
	v.Vector = "digest"
	d, err := signer.Build(context.Background(), app, v, nil, nil)
	require.NoError(t, err)
	priv, err := loadKey(t, "ecdsa-p256.pem").Signer()
	require.NoError(t, err)
	sig, err := signer.SignWith(priv, nil, signer.SignRequest{Digest: d.Bytes, Hash: crypto.SHA256})
	require.NoError(t, err)
	img, err := signer.Build(context.Background(), app, o, nil, &signer.FixedSignature{PublicKey: loadKey(t, "ecdsa-p256.pub.pem").Public, Signature: sig})
	require.NoError(t, err)
	dec, err := imgcheck.Decrypt(img.Bytes, loadKey(t, "x25519.pem").Private)
	require.NoError(t, err)
	_, err = signer.Verify(dec, loadKey(t, "ecdsa-p256.pub.pem").Public)
	require.NoError(t, err)
}
