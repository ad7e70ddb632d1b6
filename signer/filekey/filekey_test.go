package filekey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
)

const vectors = "../../testdata/vectors"

func vec(p string) string { return filepath.Join(vectors, p) }

func password(pw string) PasswordFunc {
	return func() ([]byte, error) { return []byte(pw), nil }
}

func requireOneLine(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "\n")
}

// signVerify signs a message with f's key the MCUboot way and checks it
// verifies against the public key.
func signVerify(t *testing.T, f *File) {
	t.Helper()
	s, err := f.Signer()
	require.NoError(t, err)
	payload := []byte("mcusign test payload")
	req := signer.SignRequest{Payload: payload, Hash: crypto.SHA256}
	if f.Type == signer.ECDSAP384 {
		d := sha512.Sum384(payload)
		req.Digest, req.Hash = d[:], crypto.SHA384
	} else {
		d := sha256.Sum256(payload)
		req.Digest = d[:]
	}
	sig, err := signer.SignWith(s, nil, req)
	require.NoError(t, err)
	require.NoError(t, signer.VerifySignature(f.Public, req, sig))
	sig[len(sig)/2] ^= 1
	require.ErrorIs(t, signer.VerifySignature(f.Public, req, sig), signer.ErrBadSignature)

	k, err := f.Key()
	require.NoError(t, err)
	require.Equal(t, f.Public, k.Public())
}

func keyinfo(t *testing.T, name string) string {
	t.Helper()
	out, err := os.ReadFile(vec("logs/" + name + ".out"))
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

func TestLoadVectorKeys(t *testing.T) {
	for _, kt := range signer.KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			privPEM, err := os.ReadFile(vec("keys/" + string(kt) + ".pem"))
			require.NoError(t, err)
			pubPEM, err := os.ReadFile(vec("keys/" + string(kt) + ".pub.pem"))
			require.NoError(t, err)

			priv, err := Load(privPEM, nil)
			require.NoError(t, err)
			require.Equal(t, kt, priv.Type)
			require.True(t, priv.IsPrivate())
			require.False(t, priv.Encrypted)
			require.Equal(t, keyinfo(t, "keyinfo-"+string(kt)), priv.Kind())

			pub, err := LoadFile(vec("keys/"+string(kt)+".pub.pem"), nil)
			require.NoError(t, err)
			require.Equal(t, kt, pub.Type)
			require.False(t, pub.IsPrivate())
			require.Nil(t, pub.Private)
			require.Equal(t, keyinfo(t, "keyinfo-"+string(kt)+"-pub"), pub.Kind())
			_, err = pub.Signer()
			require.ErrorIs(t, err, ErrPublicOnly)

			// getpub -e pem, from the private and from the public file.
			for _, f := range []*File{priv, pub} {
				out, err := MarshalPublicPEM(f.Public)
				require.NoError(t, err)
				require.Equal(t, string(pubPEM), string(out))
			}

			// Re-encoding a loaded key gives imgtool keygen's bytes back.
			out, err := MarshalPrivatePEM(priv.Private, nil)
			require.NoError(t, err)
			require.Equal(t, string(privPEM), string(out))

			if kt.CanSign() {
				signVerify(t, priv)
			} else {
				_, err := priv.Signer()
				require.ErrorIs(t, err, ErrNotSigningKey)
				requireOneLine(t, err)
			}
		})
	}
}

func TestLoadPasswordProtected(t *testing.T) {
	path := vec("keys/ed25519-enc-password-test.pem")
	data, err := os.ReadFile(path)
	require.NoError(t, err)

	f, err := Load(data, password("test"))
	require.NoError(t, err)
	require.Equal(t, signer.Ed25519, f.Type)
	require.True(t, f.IsPrivate())
	require.True(t, f.Encrypted)
	signVerify(t, f)
	// It is keys/ed25519.pem, encrypted.
	plain, err := LoadFile(vec("keys/ed25519.pem"), nil)
	require.NoError(t, err)
	require.Equal(t, plain.Public, f.Public)

	_, err = Load(data, nil)
	require.ErrorIs(t, err, ErrPasswordRequired)
	require.Contains(t, err.Error(), "password-protected")
	requireOneLine(t, err)

	_, err = LoadFile(path, nil)
	require.ErrorIs(t, err, ErrPasswordRequired)
	require.Contains(t, err.Error(), path)

	_, err = Load(data, password("wrong"))
	require.ErrorIs(t, err, ErrWrongPassword)
	requireOneLine(t, err)

	boom := errors.New("no terminal")
	_, err = Load(data, func() ([]byte, error) { return nil, boom })
	require.ErrorIs(t, err, boom)

	// The callback is not consulted for plain keys.
	_, err = LoadFile(vec("keys/ed25519.pem"), func() ([]byte, error) {
		t.Fatal("password asked for an unencrypted key")
		return nil, nil
	})
	require.NoError(t, err)
}

func TestLoadOtherFormats(t *testing.T) {
	tests := []struct {
		file      string
		kt        signer.KeyType
		private   bool
		encrypted bool
	}{
		{"traditional-rsa.pem", signer.RSA2048, true, false},
		{"legacy-rsa-aes256.pem", signer.RSA2048, true, true},
		{"rsa-public-pkcs1.pem", signer.RSA2048, false, false},
		{"ecparams-p256.pem", signer.ECDSAP256, true, false},
		{"legacy-ec-des3.pem", signer.ECDSAP256, true, true},
		{"pkcs8-sha1-aes128.pem", signer.ECDSAP384, true, true},
		{"pkcs8-sha512-aes192.pem", signer.RSA2048, true, true},
		{"pkcs8-des3.pem", signer.Ed25519, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			f, err := LoadFile(filepath.Join("testdata", tc.file), password("test"))
			require.NoError(t, err)
			require.Equal(t, tc.kt, f.Type)
			require.Equal(t, tc.private, f.IsPrivate())
			require.Equal(t, tc.encrypted, f.Encrypted)
			if tc.private {
				signVerify(t, f)
			}
			if tc.encrypted {
				_, err = LoadFile(filepath.Join("testdata", tc.file), password("wrong"))
				require.ErrorIs(t, err, ErrWrongPassword)
				_, err = LoadFile(filepath.Join("testdata", tc.file), nil)
				require.ErrorIs(t, err, ErrPasswordRequired)
			}
		})
	}

	// The three RSA files hold the same key.
	a, err := LoadFile("testdata/traditional-rsa.pem", nil)
	require.NoError(t, err)
	for _, name := range []string{"legacy-rsa-aes256.pem", "rsa-public-pkcs1.pem", "pkcs8-sha512-aes192.pem"} {
		b, err := LoadFile("testdata/"+name, password("test"))
		require.NoError(t, err)
		require.True(t, a.Public.(*rsa.PublicKey).Equal(b.Public), name)
	}
}

func TestLoadUnsupported(t *testing.T) {
	tests := []struct {
		file string
		want []string // substrings of the message
	}{
		{vec("keys/unsupported-p224.pem"), []string{"EC curve P-224", "P-256 and P-384", "keygen -t ecdsa-p256"}},
		{vec("keys/unsupported-rsa1024.pem"), []string{"RSA-1024", "RSA-2048 or RSA-3072", "keygen -t rsa-2048"}},
		{"testdata/unsupported-rsa512.pem", []string{"RSA-512", "keygen -t rsa-2048"}},
		{"testdata/unsupported-secp256k1.pem", []string{"EC curve secp256k1", "keygen -t ecdsa-p256"}},
		{"testdata/unsupported-secp256k1.pub.pem", []string{"EC curve secp256k1", "keygen -t ecdsa-p256"}},
		{"testdata/unsupported-secp256k1-sec1.pem", []string{"EC curve secp256k1"}},
		{"testdata/unsupported-ed448.pem", []string{"Ed448 key", "keygen -t"}},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			_, err := LoadFile(tc.file, nil)
			require.ErrorIs(t, err, signer.ErrUnsupportedKey)
			requireOneLine(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
	// Key generation refuses them too.
	_, err := Generate("ecdsa-p224")
	require.ErrorContains(t, err, "unknown key type")
}

func TestLoadBadInput(t *testing.T) {
	ed, err := os.ReadFile(vec("keys/ed25519.pem"))
	require.NoError(t, err)
	block, _ := pem.Decode(ed)
	scrypt, err := os.ReadFile("testdata/pkcs8-scrypt.pem")
	require.NoError(t, err)
	pbes1, err := os.ReadFile("testdata/pkcs8-pbes1.pem")
	require.NoError(t, err)
	cert, err := os.ReadFile("testdata/certificate.pem")
	require.NoError(t, err)

	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a PEM key file"},
		{"text", []byte("hello, world\n"), "not a PEM key file"},
		{"der", block.Bytes, "looks like DER"},
		{"truncated", ed[:len(ed)-20], "malformed PEM"},
		{"bad-base64", []byte("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"), "malformed PEM"},
		{"certificate", cert, `"CERTIFICATE" block, not a key`},
		{"garbage-pkcs8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}}), "malformed PKCS#8 private key"},
		{"garbage-public", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}), "malformed public key"},
		{"scrypt", scrypt, "scrypt"},
		{"pbes1", pbes1, "obsolete encryption scheme"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.data, password("test"))
			requireOneLine(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotErrorIs(t, err, ErrPasswordRequired)
		})
	}

	_, err = LoadFile("testdata/does-not-exist.pem", nil)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestGenerateRoundTrip(t *testing.T) {
	defer func(n int) { writeIterations = n }(writeIterations)
	writeIterations = 2048 // the cost is checked in TestEncryptedKeyFormat
	for _, kt := range signer.KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			priv, err := Generate(kt)
			require.NoError(t, err)
			if k, ok := priv.(*rsa.PrivateKey); ok {
				require.Equal(t, 65537, k.E)
			}

			plain, err := MarshalPrivatePEM(priv, nil)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(string(plain), "-----BEGIN PRIVATE KEY-----\n"))
			enc, err := MarshalPrivatePEM(priv, []byte("s3cret"))
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(string(enc), "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"))

			a, err := Load(plain, nil)
			require.NoError(t, err)
			b, err := Load(enc, password("s3cret"))
			require.NoError(t, err)
			require.True(t, b.Encrypted)
			_, err = Load(enc, password("s3cre"))
			require.ErrorIs(t, err, ErrWrongPassword)

			for _, f := range []*File{a, b} {
				require.Equal(t, kt, f.Type)
				require.True(t, f.IsPrivate())
				require.Equal(t, priv.(interface{ Public() crypto.PublicKey }).Public(), f.Public)
				if kt.CanSign() {
					signVerify(t, f)
				}
			}

			// The public half round-trips through getpub -e pem output.
			pubPEM, err := MarshalPublicPEM(a.Public)
			require.NoError(t, err)
			p, err := Load(pubPEM, nil)
			require.NoError(t, err)
			require.Equal(t, kt, p.Type)
			require.False(t, p.IsPrivate())
			require.Equal(t, a.Public, p.Public)

			// OpenSSL, which imgtool uses, reads the encrypted file as well.
			if _, err := exec.LookPath("openssl"); err == nil {
				dir := t.TempDir()
				in := filepath.Join(dir, "key.pem")
				require.NoError(t, os.WriteFile(in, enc, 0o600))
				out, err := exec.Command("openssl", "pkey", "-in", in, "-passin", "pass:s3cret", "-pubout").CombinedOutput()
				require.NoError(t, err, string(out))
				require.Equal(t, string(pubPEM), string(out))
			}
		})
	}
}

func TestEncryptedKeyFormat(t *testing.T) {
	priv, err := Generate(signer.ECDSAP256)
	require.NoError(t, err)
	enc, err := MarshalPrivatePEM(priv, []byte("pw"))
	require.NoError(t, err)
	block, rest := pem.Decode(enc)
	require.Empty(t, rest)
	require.Equal(t, "ENCRYPTED PRIVATE KEY", block.Type)

	var epki encryptedPrivateKeyInfo
	_, err = asn1.Unmarshal(block.Bytes, &epki)
	require.NoError(t, err)
	require.True(t, epki.Algo.Algorithm.Equal(oidPBES2))
	var params pbes2Params
	_, err = asn1.Unmarshal(epki.Algo.Parameters.FullBytes, &params)
	require.NoError(t, err)
	require.True(t, params.KDF.Algorithm.Equal(oidPBKDF2))
	require.True(t, params.Cipher.Algorithm.Equal(oidAES256CBC))
	var kdf pbkdf2Params
	_, err = asn1.Unmarshal(params.KDF.Parameters.FullBytes, &kdf)
	require.NoError(t, err)
	require.True(t, kdf.PRF.Algorithm.Equal(oidHMACSHA256))
	require.Equal(t, 600_000, kdf.Iterations)
	require.Len(t, kdf.Salt, 16)

	f, err := Load(enc, password("pw"))
	require.NoError(t, err)
	require.True(t, f.Encrypted)
	signVerify(t, f)
}

func TestMarshalErrors(t *testing.T) {
	priv, err := Generate(signer.Ed25519)
	require.NoError(t, err)
	_, err = MarshalPrivatePEM(priv, []byte{})
	requireOneLine(t, err)
	require.Contains(t, err.Error(), "empty passphrase")

	f, err := LoadFile(vec("keys/unsupported-p224.pem"), nil)
	require.Nil(t, f)
	require.Error(t, err)
	block, _ := pem.Decode(mustRead(t, vec("keys/unsupported-p224.pem")))
	p224, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	require.NoError(t, err)
	_, err = MarshalPrivatePEM(p224, nil)
	require.ErrorIs(t, err, signer.ErrUnsupportedKey)
	_, err = MarshalPublicPEM(&p224.(*ecdsa.PrivateKey).PublicKey)
	require.ErrorIs(t, err, signer.ErrUnsupportedKey)
	_, err = MarshalPrivatePEM("not a key", nil)
	require.ErrorIs(t, err, signer.ErrUnsupportedKey)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// FuzzLoad checks that no input makes Load panic; the seeds are every key file.
func FuzzLoad(f *testing.F) {
	for _, glob := range []string{vec("keys/*.pem"), "testdata/*.pem"} {
		files, err := filepath.Glob(glob)
		require.NoError(f, err)
		for _, file := range files {
			data, err := os.ReadFile(file)
			require.NoError(f, err)
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := Load(data, password("test"))
		if err != nil {
			require.NotContains(t, err.Error(), "\n")
			return
		}
		require.NotNil(t, k.Public)
		require.Equal(t, k.Private != nil, k.IsPrivate())
	})
}
