package imgcheck

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/filekey"
)

const vectors = "../../testdata/vectors"

func key(t testing.TB, name string) *filekey.File {
	t.Helper()
	k, err := filekey.LoadFile(filepath.Join(vectors, "keys", name), nil)
	require.NoError(t, err)
	return k
}

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectors, name))
	require.NoError(t, err)
	return b
}

// encryptedVectors: each of imgtool's encrypted images, with the device key
// that decrypts it and the key that signed it.
var encryptedVectors = []struct{ file, dev, sig string }{
	{"p256-ecies-p256.bin", "ecdsa-p256.pem", "ecdsa-p256.pem"},
	{"p256-ecies-p256-aes256.bin", "ecdsa-p256.pem", "ecdsa-p256.pem"},
	{"rsa2048-oaep.bin", "rsa-2048.pem", "rsa-2048.pem"},
	{"ed25519-ecies-x25519.bin", "x25519.pem", "ed25519.pem"},
	{"ed25519-ecies-x25519-hmac512.bin", "x25519.pem", "ed25519.pem"},
	{"ed25519-ecies-x25519-pad.bin", "x25519.pem", "ed25519.pem"},
	{"ed25519-ecies-x25519-saveenctlv-pad.bin", "x25519.pem", "ed25519.pem"},
}

// Our reading of the format decrypts every imgtool vector with the vector
// keys to the original input, and the result verifies: hash and signature
// cover the plaintext.
func TestDecryptVectors(t *testing.T) {
	app := read(t, "inputs/app-100k.bin")
	for _, v := range encryptedVectors {
		t.Run(v.file, func(t *testing.T) {
			img := read(t, "encrypted/"+v.file)
			l, err := Parse(img)
			require.NoError(t, err)
			require.False(t, bytes.Equal(app, l.Body(img)[:len(app)]), "the vector body is not encrypted")
			_, err = signer.Verify(img, key(t, v.sig).Public)
			require.ErrorIs(t, err, signer.ErrInvalidHash, "imgtool verify fails on ciphertext too")

			dec, err := Decrypt(img, key(t, v.dev).Private)
			require.NoError(t, err)
			require.Equal(t, app, l.Body(dec)[:len(app)])
			require.True(t, allZero(l.Body(dec)[len(app):]), "AES padding is zeros")
			_, err = signer.Verify(dec, key(t, v.sig).Public)
			require.NoError(t, err)
		})
	}
	t.Run("clear", func(t *testing.T) {
		img := read(t, "encrypted/ed25519-ecies-x25519-clear.bin")
		l, err := Parse(img)
		require.NoError(t, err)
		require.Equal(t, app, l.Body(img))
		_, err = signer.Verify(img, key(t, "ed25519.pem").Public)
		require.NoError(t, err)
		// The key TLV is still a valid one for the device.
		k, err := ImageKey(l, key(t, "x25519.pem").Private)
		require.NoError(t, err)
		require.Len(t, k, 16)
	})
}

func TestDecryptWrongKey(t *testing.T) {
	img := read(t, "encrypted/ed25519-ecies-x25519.bin")
	other, err := filekey.Generate(signer.X25519)
	require.NoError(t, err)
	_, err = Decrypt(img, other)
	require.ErrorContains(t, err, "HMAC mismatch")
	_, err = Decrypt(img, key(t, "ecdsa-p256.pem").Private)
	require.ErrorContains(t, err, "needs an X25519 private key")
	_, err = Decrypt(read(t, "signed/ed25519.bin"), key(t, "x25519.pem").Private)
	require.ErrorContains(t, err, "do not say AES")
}

func TestDecompressVectors(t *testing.T) {
	in := read(t, "inputs/compressible-100k.bin")
	for _, f := range []string{"variants/comp-lzma2.bin", "variants/comp-lzma2armthumb.bin"} {
		out, err := Decompress(read(t, f))
		require.NoError(t, err, f)
		require.Equal(t, in, out, f)
	}
	_, err := Decompress(read(t, "variants/comp-fallback.bin"))
	require.ErrorContains(t, err, "not LZMA2-compressed")
}

func allZero(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

// shrink keeps header and TLVs but cuts the body to 64 bytes, so the fuzzer
// works on small inputs.
func shrink(t testing.TB, img []byte) []byte {
	l, err := Parse(img)
	require.NoError(t, err)
	n := min(l.ImgSize, 64)
	out := append(bytes.Clone(img[:l.HdrSize]), l.Body(img)[:n]...)
	binary.LittleEndian.PutUint32(out[12:], uint32(n))
	return append(out, img[l.HdrSize+l.ImgSize:l.End]...)
}

// Decrypt and Decompress parse untrusted images: no input may panic them
// or make them allocate without bound.
func FuzzDecrypt(f *testing.F) {
	for _, v := range encryptedVectors {
		f.Add(shrink(f, read(f, "encrypted/"+v.file)))
	}
	f.Add(read(f, "variants/comp-lzma2armthumb.bin"))
	keys := []crypto.PrivateKey{key(f, "x25519.pem").Private, key(f, "ecdsa-p256.pem").Private, key(f, "rsa-2048.pem").Private}
	f.Fuzz(func(t *testing.T, img []byte) {
		for _, k := range keys {
			if dec, err := Decrypt(img, k); err == nil {
				require.Len(t, dec, len(img))
			}
		}
		Decompress(img)
	})
}
