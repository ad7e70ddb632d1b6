package keyfmt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer/filekey"
)

func privateKey(t *testing.T, name string) any {
	k, err := filekey.LoadFile(filepath.Join(vectors, "keys", name), nil)
	require.NoError(t, err)
	return k.Private
}

// getpriv's C output equals imgtool's for every vector key and option.
func TestEncryptionKeyVectors(t *testing.T) {
	for _, tc := range []struct {
		log, key string
		minimal  bool
	}{
		{"getpriv-rsa-2048", "rsa-2048.pem", false},
		{"getpriv-rsa-2048-minimal", "rsa-2048.pem", true},
		{"getpriv-ecdsa-p256", "ecdsa-p256.pem", false},
		{"getpriv-ecdsa-p256-minimal", "ecdsa-p256.pem", true},
		{"getpriv-x25519", "x25519.pem", false},
		{"getpriv-x25519-minimal", "x25519.pem", true},
	} {
		want, err := os.ReadFile(filepath.Join(vectors, "logs", tc.log+".out"))
		require.NoError(t, err)
		var got bytes.Buffer
		require.NoError(t, EncryptionKey(&got, privateKey(t, tc.key), "", tc.minimal))
		require.Equal(t, string(want), got.String(), tc.log)
	}
}

// The formats without a vector are the standard encodings of the same key,
// and the minimal ones still hold it.
func TestEncryptionKeyFormats(t *testing.T) {
	p256 := privateKey(t, "ecdsa-p256.pem").(*ecdsa.PrivateKey)
	sec1, err := EncryptionKeyDER(p256, FormatOpenSSL, false)
	require.NoError(t, err)
	k, err := x509.ParseECPrivateKey(sec1)
	require.NoError(t, err)
	require.True(t, k.Equal(p256))

	// imgtool's --minimal cuts the [1] public key off the SEC 1 structure and
	// fixes the outer length; so does ours.
	min1, err := EncryptionKeyDER(p256, FormatOpenSSL, true)
	require.NoError(t, err)
	want := append([]byte{0x30, sec1[1] - 0x46}, sec1[2:51]...)
	require.Equal(t, want, min1)
	k, err = x509.ParseECPrivateKey(min1)
	require.NoError(t, err)
	require.True(t, k.Equal(p256))

	min8, err := EncryptionKeyDER(p256, FormatPKCS8, true)
	require.NoError(t, err)
	k8, err := x509.ParsePKCS8PrivateKey(min8)
	require.NoError(t, err)
	require.True(t, p256.Equal(k8))

	for _, tc := range []struct {
		key, format, err string
	}{
		{"rsa-2048.pem", FormatPKCS8, "drop -f pkcs8"},
		{"x25519.pem", FormatOpenSSL, "drop -f openssl"},
		{"ed25519.pem", "", "only signs"},
		{"ecdsa-p384.pem", "", "ECIES-P256 only"},
		{"rsa-3072.pem", "", "RSA-2048 only"},
	} {
		_, err := EncryptionKeyDER(privateKey(t, tc.key), tc.format, false)
		require.ErrorContains(t, err, tc.err, tc.key)
	}
}
