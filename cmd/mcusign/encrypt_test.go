package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/ihex"
	"github.com/mcusign/mcusign/signer/imgcheck"
)

func vecPath(t *testing.T, rel string) string {
	p, err := filepath.Abs(filepath.Join(vectorsDir, rel))
	require.NoError(t, err)
	return p
}

var signBase = []string{"sign", "--version", "1.2.3+4", "--header-size", "0x200", "--align", "4", "--slot-size", "0x60000", "--pad-header"}

func signArgs(t *testing.T, extra ...string) []string {
	return append(append([]string(nil), signBase...), extra...)
}

// HEX output works with -E and --compression as in imgtool's save(): the
// image at the address, then only the trailer's magic and flag blocks.
func TestSignEncryptedCompressedHex(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		in    string
		extra []string
	}{
		{"encrypted", "inputs/app-100k.bin", []string{"-E", vecPath(t, "keys/x25519.pub.pem")}},
		{"compressed", "inputs/compressible-100k.bin", []string{"--compression", "lzma2armthumb"}},
		{"both", "inputs/compressible-100k.bin", []string{"-E", vecPath(t, "keys/x25519.pem"), "--compression", "lzma2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".hex")
			args := signArgs(t, append(tc.extra, "-k", vecPath(t, "keys/ed25519.pem"), "-x", "0x08020000", "--confirm", vecPath(t, tc.in), out)...)
			_, errOut, rc := mcusign(t, dir, args...)
			require.Zero(t, rc, errOut)
			raw, err := os.ReadFile(out)
			require.NoError(t, err)
			data, base, err := ihex.Read(bytes.NewReader(raw))
			require.NoError(t, err)
			require.Equal(t, uint32(0x08020000), base)
			require.Len(t, data, 0x60000, "image through the trailer magic")
			require.Equal(t, []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, data[0x60000-24:0x60000-16], "image_ok")

			l, err := imgcheck.Parse(data)
			require.NoError(t, err)
			img := data[:l.End]
			if l.Flags&signer.FlagEncryptedAES128 != 0 {
				img, err = imgcheck.Decrypt(img, loadVectorKey(t, vectorsDir, "keys/x25519.pem").Private)
				require.NoError(t, err)
			}
			_, err = signer.Verify(img, loadVectorKey(t, vectorsDir, "keys/ed25519.pem").Public)
			require.NoError(t, err)
			app, err := os.ReadFile(vecPath(t, tc.in))
			require.NoError(t, err)
			body := l.Body(img)
			if l.Flags&signer.FlagCompressedLZMA2 != 0 {
				body, err = imgcheck.Decompress(img)
				require.NoError(t, err)
			}
			require.Equal(t, app, body[:len(app)])
		})
	}
}

// Refusals: one line, exit status non-zero, no output left behind.
func TestSignEncryptErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.bin")
	app := vecPath(t, "inputs/app-100k.bin")
	for _, tc := range []struct {
		name string
		args []string
		rc   int
		msg  string
	}{
		{"p384 device key", []string{"-k", vecPath(t, "keys/ed25519.pem"), "-E", vecPath(t, "keys/ecdsa-p384.pub.pem")}, 1, "no MCUboot can decrypt"},
		{"p384 both", []string{"-k", vecPath(t, "keys/ecdsa-p384.pem"), "-E", vecPath(t, "keys/ecdsa-p384.pub.pem")}, 1, "there is no ECIES-P384"},
		{"missing device key", []string{"-E", filepath.Join(dir, "nope.pem")}, 2, "not found"},
		{"compression and fix-sig", []string{"--compression", "lzma2", "--fix-sig", vecPath(t, "external/ed25519.sig.b64"), "--fix-sig-pubkey", vecPath(t, "keys/ed25519.pub.pem")}, 2, "needs the signing key"},
		{"compression and vector", []string{"--compression", "lzma2", "--vector-to-sign", "digest"}, 2, "needs the signing key"},
		{"bad compression", []string{"--compression", "zstd"}, 2, "zstd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, errOut, rc := mcusign(t, dir, signArgs(t, append(tc.args, app, out)...)...)
			require.Equal(t, tc.rc, rc, errOut)
			require.Contains(t, errOut, tc.msg)
			require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
			require.Empty(t, stdout)
			require.NoFileExists(t, out)
		})
	}
}

// Like imgtool, the encryption options do nothing without -E: Zephyr passes
// --encrypt-keylen for the plain image as well.
func TestSignEncryptOptionsWithoutE(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.bin")
	args := signArgs(t, "-k", vecPath(t, "keys/ed25519.pem"), "--encrypt-keylen", "256", "--hmac-sha", "512", "--clear", "--save-enctlv",
		vecPath(t, "inputs/app-100k.bin"), out)
	_, errOut, rc := mcusign(t, dir, args...)
	require.Zero(t, rc, errOut)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	want, err := os.ReadFile(vecPath(t, "signed/ed25519.bin"))
	require.NoError(t, err)
	require.Equal(t, want, got)
}

// getpriv: the formats imgtool's vectors do not show, and the refusals.
func TestGetpriv(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		rc   int
		want string // substring of stdout (rc 0) or stderr
	}{
		{"p256 openssl", []string{"-k", vecPath(t, "keys/ecdsa-p256.pem"), "-f", "openssl"}, 0, "const unsigned int enc_priv_key_len = 121;"},
		{"p256 openssl minimal", []string{"-k", vecPath(t, "keys/ecdsa-p256.pem"), "-f", "openssl", "--minimal"}, 0, "const unsigned int enc_priv_key_len = 51;"},
		{"p256 pkcs8 explicit", []string{"-k", vecPath(t, "keys/ecdsa-p256.pem"), "--format", "pkcs8"}, 0, "enc_priv_key_len = 138;"},
		{"rsa openssl explicit", []string{"-k", vecPath(t, "keys/rsa-2048.pem"), "-f", "openssl"}, 0, "enc_priv_key_len = 1191;"},
		{"rsa pkcs8", []string{"-k", vecPath(t, "keys/rsa-2048.pem"), "-f", "pkcs8"}, 2, "drop -f pkcs8"},
		{"x25519 openssl", []string{"-k", vecPath(t, "keys/x25519.pem"), "-f", "openssl"}, 2, "drop -f openssl"},
		{"public only", []string{"-k", vecPath(t, "keys/x25519.pub.pem")}, 2, "holds only a public key"},
		{"p384", []string{"-k", vecPath(t, "keys/ecdsa-p384.pem")}, 2, "ECIES-P256 only"},
		{"rsa-3072", []string{"-k", vecPath(t, "keys/rsa-3072.pem")}, 2, "RSA-2048 only"},
		{"pkcs11", []string{"-k", "pkcs11:token=release;object=enc"}, 2, "keys in a token never leave it"},
		{"no key", nil, 2, "missing -k/--key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, errOut, rc := mcusign(t, dir, append([]string{"getpriv"}, tc.args...)...)
			require.Equal(t, tc.rc, rc, errOut)
			if rc == 0 {
				require.Contains(t, stdout, tc.want)
				require.True(t, strings.HasPrefix(stdout, "/* Autogenerated by imgtool.py, do not edit. */\nconst unsigned char enc_priv_key[] = {\n"))
				return
			}
			require.Contains(t, errOut, tc.want)
			require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
			require.Empty(t, stdout)
		})
	}
}
