package pkcs11key_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key"
	"github.com/mcusign/mcusign/signer/pkcs11key/p11test"
)

func TestMain(m *testing.M) { os.Exit(p11test.Main(m)) }

const wrongPIN = "Wrong-9d3a-NEVER-PRINT"

var ctx = context.Background()

var signingTypes = []signer.KeyType{signer.RSA2048, signer.RSA3072, signer.ECDSAP256, signer.ECDSAP384, signer.Ed25519}

const vectors = "../../testdata/vectors/keys"

// requireErr checks err is one line containing every want, and free of PINs.
func requireErr(t *testing.T, err error, want ...string) {
	t.Helper()
	require.Error(t, err)
	msg := err.Error()
	for _, w := range want {
		require.Contains(t, msg, w)
	}
	require.NotContains(t, msg, "\n", "errors are one line")
	requireNoPIN(t, msg)
}

func requireNoPIN(t *testing.T, s string) {
	t.Helper()
	for _, pin := range []string{p11test.PIN, p11test.SOPIN, wrongPIN} {
		require.NotContains(t, s, pin, "a PIN leaked")
	}
}

// request builds a SignRequest the way the image engine does.
func request(payload []byte, kt signer.KeyType) signer.SignRequest {
	if kt == signer.ECDSAP384 {
		d := sha512.Sum384(payload)
		return signer.SignRequest{Payload: payload, Digest: d[:], Hash: crypto.SHA384}
	}
	d := sha256.Sum256(payload)
	return signer.SignRequest{Payload: payload, Digest: d[:], Hash: crypto.SHA256}
}

func randomPayload(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func readPub(t *testing.T, path string) crypto.PublicKey {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	block, _ := pem.Decode(data)
	require.NotNil(t, block)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	require.NoError(t, err)
	return pub
}

func TestGeneratedKeysSignAndVerify(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	for _, kt := range signingTypes {
		t.Run(string(kt), func(t *testing.T) {
			k := tok.Generate(t, string(kt), kt)
			require.Equal(t, kt, k.Type())
			require.Equal(t, string(kt), k.Label())
			require.Len(t, k.ID(), 16)
			require.Equal(t, tok.Label, k.Token())

			req := request(randomPayload(t, 4096), kt)
			sig, err := k.Sign(ctx, req)
			require.NoError(t, err)
			require.NoError(t, signer.VerifySignature(k.Public(), req, sig))

			// A fresh lookup by URI finds the same key.
			k2, err := pkcs11key.Open(ctx, tok.URI(string(kt)), pkcs11key.Options{})
			require.NoError(t, err)
			require.True(t, k2.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()))
			sig, err = k2.Sign(ctx, req)
			require.NoError(t, err)
			require.NoError(t, signer.VerifySignature(k.Public(), req, sig))

			pub, err := pkcs11key.PublicKey(ctx, tok.URI(string(kt)), pkcs11key.Options{})
			require.NoError(t, err)
			require.True(t, pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()))

			// The key's own URI selects it too.
			u, err := pkcs11key.ParseURI(k.URI())
			require.NoError(t, err)
			u.ModulePath, u.PINSource = tok.Module, tok.PINFile
			k3, err := pkcs11key.Open(ctx, u.String(), pkcs11key.Options{})
			require.NoError(t, err)
			require.Equal(t, k.ID(), k3.ID())
		})
	}
}

func TestGeneratedKeysAreSensitive(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	for _, kt := range signingTypes {
		k := tok.Generate(t, string(kt), kt)
		info, err := k.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, kt, info.Type)
		require.True(t, info.HasPrivate)
		require.True(t, info.HasPublicObject)
		require.True(t, info.Sign)
		require.True(t, info.Sensitive)
		require.False(t, info.Extractable)
		require.True(t, info.AlwaysSensitive)
		require.True(t, info.NeverExtractable)
		require.True(t, info.Local)
		require.False(t, info.AlwaysAuthenticate)
		require.Equal(t, k.ID(), info.ID)

		// Read the attributes back independently of pkcs11key.
		tok.Raw(t, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
			require.NoError(t, p.FindObjectsInit(sh, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, string(kt)),
			}))
			hs, _, err := p.FindObjects(sh, 10)
			require.NoError(t, err)
			require.NoError(t, p.FindObjectsFinal(sh))
			require.Len(t, hs, 1)
			a, err := p.GetAttributeValue(sh, hs[0], []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_SIGN, nil),
				pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
			})
			require.NoError(t, err)
			require.Equal(t, []byte{1}, a[0].Value, "CKA_SENSITIVE")
			require.Equal(t, []byte{0}, a[1].Value, "CKA_EXTRACTABLE")
			require.Equal(t, []byte{1}, a[2].Value, "CKA_TOKEN")
			require.Equal(t, []byte{1}, a[3].Value, "CKA_PRIVATE")
			require.Equal(t, []byte{1}, a[4].Value, "CKA_SIGN")
			require.Equal(t, k.ID(), a[5].Value, "CKA_ID")
		})
	}
}

func TestEd25519PureLargePayload(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "ed", signer.Ed25519)
	payload := randomPayload(t, 100*1024)
	d := sha512.Sum512(payload)
	req := signer.SignRequest{Payload: payload, Digest: d[:], Hash: crypto.SHA512, Pure: true}
	sig, err := k.Sign(ctx, req)
	require.NoError(t, err)
	require.True(t, ed25519.Verify(k.Public().(ed25519.PublicKey), payload, sig))
	require.NoError(t, signer.VerifySignature(k.Public(), req, sig))

	// Non-pure with --sha 512 signs the 64-byte digest.
	req.Pure = false
	sig, err = k.Sign(ctx, req)
	require.NoError(t, err)
	require.True(t, ed25519.Verify(k.Public().(ed25519.PublicKey), d[:], sig))
}

func TestImportedVectorKeys(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	for _, kt := range signingTypes {
		t.Run(string(kt), func(t *testing.T) {
			k := tok.ImportPEM(t, string(kt), filepath.Join(vectors, string(kt)+".pem"))
			require.Equal(t, kt, k.Type())
			want := readPub(t, filepath.Join(vectors, string(kt)+".pub.pem"))
			pub, err := pkcs11key.PublicKey(ctx, tok.URI(string(kt)), pkcs11key.Options{})
			require.NoError(t, err)
			wantDER, err := signer.PublicKeyBytes(want)
			require.NoError(t, err)
			gotDER, err := signer.PublicKeyBytes(pub)
			require.NoError(t, err)
			require.Equal(t, wantDER, gotDER)

			req := request(randomPayload(t, 1000), kt)
			sig, err := k.Sign(ctx, req)
			require.NoError(t, err)
			require.NoError(t, signer.VerifySignature(want, req, sig))

			info, err := k.Info(ctx)
			require.NoError(t, err)
			require.True(t, info.Sensitive)
			require.False(t, info.Extractable)
			require.False(t, info.Local, "an imported key was not generated in the token")
		})
	}
}

func TestImportedEd25519MatchesFileKey(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	path := filepath.Join(vectors, "ed25519.pem")
	fileKey := p11test.ReadPEM(t, path).(ed25519.PrivateKey)
	k := tok.ImportPEM(t, "vector", path)

	payload := []byte("MCUboot image region R, header to protected TLVs")
	req := request(payload, signer.Ed25519)
	sig, err := k.Sign(ctx, req)
	require.NoError(t, err)
	require.Equal(t, ed25519.Sign(fileKey, req.Digest), sig, "Ed25519 is deterministic: token and file key must agree")

	fileSig, err := signer.CryptoKey{Signer: fileKey}.Sign(ctx, req)
	require.NoError(t, err)
	require.Equal(t, fileSig, sig)

	req.Pure = true
	sig, err = k.Sign(ctx, req)
	require.NoError(t, err)
	require.Equal(t, ed25519.Sign(fileKey, payload), sig)
}

func TestConcurrentSigning(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	for _, kt := range []signer.KeyType{signer.RSA2048, signer.ECDSAP256, signer.Ed25519} {
		t.Run(string(kt), func(t *testing.T) {
			k := tok.Generate(t, string(kt), kt)
			var wg sync.WaitGroup
			errs := make(chan error, 8*20)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 20; i++ {
						req := request([]byte{byte(g), byte(i), 'x'}, kt)
						sig, err := k.Sign(ctx, req)
						if err == nil {
							err = signer.VerifySignature(k.Public(), req, sig)
						}
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			n := 0
			for err := range errs {
				require.NoError(t, err)
				n++
			}
			require.Equal(t, 160, n)
		})
	}
}

func TestLoginOncePerToken(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	tok.Generate(t, "k", signer.ECDSAP256)
	tok2 := p11test.NewToken(t)
	u := tok2.BaseURI()
	u.PINSource = ""
	var prompts atomic.Int32
	opts := pkcs11key.Options{Prompt: func(_ context.Context, prompt string) (string, error) {
		prompts.Add(1)
		require.Contains(t, prompt, tok2.Label)
		return tok2.PIN, nil
	}}
	// Generate on tok2 through the prompt, then open it from 8 goroutines.
	u.Object = "k"
	_, err := pkcs11key.Generate(ctx, u.String(), signer.Ed25519, opts)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := pkcs11key.Open(ctx, u.String(), opts)
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	require.EqualValues(t, 1, prompts.Load(), "one login per token and process")
}

func TestPINSources(t *testing.T) {
	// Not parallel: sets environment variables.
	tok := p11test.NewToken(t)
	tok.Generate(t, "k", signer.ECDSAP256)

	t.Run("no source", func(t *testing.T) {
		tok := p11test.NewToken(t)
		t.Setenv(pkcs11key.EnvPINFile, "")
		u := tok.BaseURI()
		u.PINSource, u.Object = "", "k"
		_, err := pkcs11key.Open(ctx, u.String(), pkcs11key.Options{})
		requireErr(t, err, "no PIN for token \""+tok.Label+"\"", "pin-source=", pkcs11key.EnvPINFile, "prompted")
		require.ErrorIs(t, err, pkcs11key.ErrNoPIN)
	})
	t.Run("env file with CRLF", func(t *testing.T) {
		tok := p11test.NewToken(t)
		f := filepath.Join(t.TempDir(), "pin")
		require.NoError(t, os.WriteFile(f, []byte(tok.PIN+"\r\n"), 0o600))
		t.Setenv(pkcs11key.EnvPINFile, f)
		u := tok.BaseURI()
		u.PINSource, u.Object = "", "k"
		_, err := pkcs11key.Generate(ctx, u.String(), signer.ECDSAP256, pkcs11key.Options{})
		require.NoError(t, err)
	})
	t.Run("pin-source file URI", func(t *testing.T) {
		tok := p11test.NewToken(t)
		u := tok.BaseURI()
		u.PINSource, u.Object = "file://"+tok.PINFile, "k"
		_, err := pkcs11key.Generate(ctx, u.String(), signer.Ed25519, pkcs11key.Options{})
		require.NoError(t, err)
	})
	t.Run("missing pin file", func(t *testing.T) {
		tok := p11test.NewToken(t)
		u := tok.BaseURI()
		u.PINSource, u.Object = "/nonexistent/pin", "k"
		_, err := pkcs11key.Open(ctx, u.String(), pkcs11key.Options{})
		requireErr(t, err, "cannot read the PIN file given by pin-source", "/nonexistent/pin", "no such file")
	})
	t.Run("pin-value warns", func(t *testing.T) {
		tok := p11test.NewToken(t)
		uri := "pkcs11:token=" + tok.Label + ";object=k?module-path=" + tok.Module + "&pin-value=" + tok.PIN
		var warnings []string
		_, err := pkcs11key.Generate(ctx, uri, signer.ECDSAP384, pkcs11key.Options{Warn: func(s string) { warnings = append(warnings, s) }})
		require.NoError(t, err)
		require.Len(t, warnings, 1)
		require.Contains(t, warnings[0], "process list")
		requireNoPIN(t, warnings[0])
		u, err := pkcs11key.ParseURI(uri)
		require.NoError(t, err)
		requireNoPIN(t, u.String())
		require.Contains(t, u.String(), "pin-value=<redacted>")
		_, err = pkcs11key.ParseURI(u.String())
		requireErr(t, err, "pin-value was redacted")
	})
	t.Run("module from env", func(t *testing.T) {
		t.Setenv(pkcs11key.EnvModule, tok.Module)
		u := tok.BaseURI()
		u.ModulePath, u.Object = "", "k"
		_, err := pkcs11key.Open(ctx, u.String(), pkcs11key.Options{})
		require.NoError(t, err)
		t.Setenv(pkcs11key.EnvModule, "libsofthsm2.so")
		_, err = pkcs11key.Open(ctx, u.String(), pkcs11key.Options{})
		requireErr(t, err, pkcs11key.EnvModule+" must be an absolute path")
	})
}

func TestWrongPIN(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	bad := filepath.Join(t.TempDir(), "badpin")
	require.NoError(t, os.WriteFile(bad, []byte(wrongPIN+"\n"), 0o600))
	u := tok.BaseURI()
	u.PINSource, u.Object = bad, "k"

	_, err := pkcs11key.Open(ctx, u.String(), pkcs11key.Options{})
	requireErr(t, err, `wrong PIN for token "`+tok.Label+`"`, "not retried")
	require.ErrorIs(t, err, pkcs11key.ErrWrongPIN)

	// The same wrong PIN is never sent again.
	_, err = pkcs11key.List(ctx, u.String(), pkcs11key.Options{})
	requireErr(t, err, "already rejected this PIN", "does not send it again")
	require.ErrorIs(t, err, pkcs11key.ErrWrongPIN)

	// The right PIN still works.
	tok.Generate(t, "k", signer.Ed25519)
}

func TestTokenNotFound(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	u := tok.BaseURI()
	u.Token, u.Object = "no-such-token", "k"
	_, err := pkcs11key.Open(ctx, u.String(), pkcs11key.Options{})
	// The other tests' tokens are listed too, at most 10 of them.
	requireErr(t, err, `no token matches token="no-such-token"`, `available tokens: "`, `" (serial `)
	require.ErrorIs(t, err, pkcs11key.ErrTokenNotFound)

	u = tok.BaseURI()
	u.Token, u.Serial, u.Object = "", "0000000000000000", "k"
	_, err = pkcs11key.Open(ctx, u.String(), pkcs11key.Options{})
	requireErr(t, err, `no token matches serial="0000000000000000"`, `available tokens: "`)

	// No token attribute while the module holds several tokens.
	p11test.NewToken(t)
	u = tok.BaseURI()
	u.Token, u.Object = "", "k"
	_, err = pkcs11key.Open(ctx, u.String(), pkcs11key.Options{})
	requireErr(t, err, "the URI names no token", "add token=<label>")
}

func TestKeyNotFound(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	tok.Generate(t, "alpha", signer.ECDSAP256)
	tok.Generate(t, "beta", signer.Ed25519)

	_, err := pkcs11key.Open(ctx, tok.URI("gamma"), pkcs11key.Options{})
	requireErr(t, err, `no key with object="gamma" on token "`+tok.Label+`"`, `keys "alpha", "beta"`)
	require.ErrorIs(t, err, pkcs11key.ErrKeyNotFound)

	_, err = pkcs11key.Open(ctx, tok.URI(""), pkcs11key.Options{})
	requireErr(t, err, "the URI names no key; add object=<label>", `"alpha", "beta"`)

	u := tok.BaseURI()
	u.ID = []byte{0xde, 0xad}
	_, err = pkcs11key.Open(ctx, u.String(), pkcs11key.Options{})
	requireErr(t, err, "no key with id=dead on token")

	_, err = pkcs11key.PublicKey(ctx, tok.URI("gamma"), pkcs11key.Options{})
	require.ErrorIs(t, err, pkcs11key.ErrKeyNotFound)
	_, err = pkcs11key.Info(ctx, tok.URI("gamma"), pkcs11key.Options{})
	require.ErrorIs(t, err, pkcs11key.ErrKeyNotFound)
}

// rawKeyPair generates a key pair behind pkcs11key's back.
func rawKeyPair(t *testing.T, p *pkcs11.Ctx, sh pkcs11.SessionHandle, label string, id []byte, rsaBits int) {
	t.Helper()
	mech := pkcs11.CKM_EC_KEY_PAIR_GEN
	pub := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})}
	if rsaBits > 0 {
		mech = pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN
		pub = []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, rsaBits), pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1})}
	}
	common := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	priv := append([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_SIGN, true), pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true)}, common...)
	_, _, err := p.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(uint(mech), nil)}, append(pub, common...), priv)
	require.NoError(t, err)
}

// rawDestroy removes the objects of class labelled label.
func rawDestroy(t *testing.T, p *pkcs11.Ctx, sh pkcs11.SessionHandle, class uint, label string) {
	t.Helper()
	require.NoError(t, p.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}))
	hs, _, err := p.FindObjects(sh, 10)
	require.NoError(t, err)
	require.NoError(t, p.FindObjectsFinal(sh))
	require.NotEmpty(t, hs)
	for _, h := range hs {
		require.NoError(t, p.DestroyObject(sh, h))
	}
}

func TestAmbiguousLabel(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	tok.Raw(t, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
		rawKeyPair(t, p, sh, "twin", []byte{1}, 0)
		rawKeyPair(t, p, sh, "twin", []byte{2}, 0)
	})
	_, err := pkcs11key.Open(ctx, tok.URI("twin"), pkcs11key.Options{})
	requireErr(t, err, `object="twin" matches 2 private keys on token "`+tok.Label+`"`, `"twin" (id 01)`, `"twin" (id 02)`, "(e.g. id=%01)")
	require.ErrorIs(t, err, pkcs11key.ErrAmbiguousKey)

	u := tok.BaseURI()
	u.Object, u.ID = "twin", []byte{2}
	k, err := pkcs11key.Open(ctx, u.String(), pkcs11key.Options{})
	require.NoError(t, err)
	require.Equal(t, []byte{2}, k.ID())
	req := request([]byte("x"), signer.ECDSAP256)
	sig, err := k.Sign(ctx, req)
	require.NoError(t, err)
	require.NoError(t, signer.VerifySignature(k.Public(), req, sig))
}

func TestWrongKeyType(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	ec := tok.Generate(t, "ec", signer.ECDSAP256)
	tok.Generate(t, "pubonly", signer.Ed25519)
	tok.Raw(t, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
		rawKeyPair(t, p, sh, "rsa1024", []byte{0x10}, 1024)
		rawDestroy(t, p, sh, pkcs11.CKO_PRIVATE_KEY, "pubonly")
	})

	_, err := pkcs11key.Open(ctx, tok.URI("rsa1024"), pkcs11key.Options{})
	requireErr(t, err, `key "rsa1024" (id 10) on token "`+tok.Label+`"`, "RSA-1024", "RSA-2048 or RSA-3072")
	require.ErrorIs(t, err, pkcs11key.ErrWrongKeyType)
	require.ErrorIs(t, err, signer.ErrUnsupportedKey)

	info, err := pkcs11key.Info(ctx, tok.URI("rsa1024"), pkcs11key.Options{})
	require.NoError(t, err, "keyinfo describes keys MCUboot cannot use")
	require.Equal(t, "RSA-1024", info.Algorithm)
	require.Empty(t, info.Type)

	d := sha256.Sum256([]byte("x"))
	_, err = ec.Sign(ctx, signer.SignRequest{Payload: []byte("x"), Digest: d[:], Hash: crypto.SHA256, Pure: true})
	requireErr(t, err, "--pure needs an Ed25519 key, not ecdsa-p256")

	_, err = pkcs11key.Open(ctx, tok.URI("pubonly"), pkcs11key.Options{})
	requireErr(t, err, "holds only the public key for object=\"pubonly\"", "signing needs the private key")
	require.ErrorIs(t, err, pkcs11key.ErrWrongKeyType)
	pub, err := pkcs11key.PublicKey(ctx, tok.URI("pubonly"), pkcs11key.Options{})
	require.NoError(t, err, "getpub works from the public object alone")
	require.IsType(t, ed25519.PublicKey{}, pub)

	u := tok.BaseURI()
	u.Object, u.Type = "ec", "public"
	_, err = pkcs11key.Open(ctx, u.String(), pkcs11key.Options{})
	requireErr(t, err, "type=public names a public key, but signing needs the private key")
	u.Type = "cert"
	_, err = pkcs11key.Open(ctx, u.String(), pkcs11key.Options{})
	requireErr(t, err, "type=cert in the URI names a certificate")

	_, err = pkcs11key.Generate(ctx, tok.URI("x"), signer.X25519, pkcs11key.Options{})
	requireErr(t, err, "x25519 keys are for image encryption")
	require.ErrorIs(t, err, pkcs11key.ErrWrongKeyType)

	_, err = pkcs11key.Import(ctx, tok.URI("p224"), p11test.ReadPEM(t, filepath.Join(vectors, "unsupported-p224.pem")), pkcs11key.Options{})
	requireErr(t, err, "P-224")
	require.ErrorIs(t, err, pkcs11key.ErrWrongKeyType)
}

func TestPrivateKeyWithoutPublicObject(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	rsaKey := tok.Generate(t, "rsa", signer.RSA2048)
	tok.Generate(t, "ec", signer.ECDSAP384)
	tok.Raw(t, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
		rawDestroy(t, p, sh, pkcs11.CKO_PUBLIC_KEY, "rsa")
		rawDestroy(t, p, sh, pkcs11.CKO_PUBLIC_KEY, "ec")
	})
	// RSA's modulus and exponent are public attributes of the private key.
	k, err := pkcs11key.Open(ctx, tok.URI("rsa"), pkcs11key.Options{})
	require.NoError(t, err)
	require.True(t, rsaKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()))
	req := request([]byte("image"), signer.RSA2048)
	sig, err := k.Sign(ctx, req)
	require.NoError(t, err)
	require.NoError(t, signer.VerifySignature(rsaKey.Public(), req, sig))

	_, err = pkcs11key.Open(ctx, tok.URI("ec"), pkcs11key.Options{})
	requireErr(t, err, `token "`+tok.Label+`" has no public key object for "ec"`, "import the public key")
	require.ErrorIs(t, err, pkcs11key.ErrNoPublicKey)
}

func TestKeygenRefusesExistingLabelAndID(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "taken", signer.ECDSAP256)
	_, err := pkcs11key.Generate(ctx, tok.URI("taken"), signer.Ed25519, pkcs11key.Options{})
	requireErr(t, err, `token "`+tok.Label+`" already holds 2 object(s) labelled "taken"`, "never replaces keys")
	require.ErrorIs(t, err, pkcs11key.ErrKeyExists)

	u := tok.BaseURI()
	u.Object, u.ID = "new", k.ID()
	_, err = pkcs11key.Generate(ctx, u.String(), signer.Ed25519, pkcs11key.Options{})
	requireErr(t, err, "already has key \"taken\"", "with this id")

	u.ID = []byte{0xca, 0xfe}
	k2, err := pkcs11key.Generate(ctx, u.String(), signer.Ed25519, pkcs11key.Options{})
	require.NoError(t, err)
	require.Equal(t, []byte{0xca, 0xfe}, k2.ID())

	_, err = pkcs11key.Generate(ctx, tok.URI(""), signer.Ed25519, pkcs11key.Options{})
	requireErr(t, err, "a new key needs a label; add object=<label>")
}

func TestListAndInfo(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	for _, kt := range signingTypes {
		tok.Generate(t, string(kt), kt)
	}
	tok.ImportPEM(t, "imported-ed25519", filepath.Join(vectors, "ed25519.pem"))
	list, err := pkcs11key.List(ctx, tok.URI(""), pkcs11key.Options{})
	require.NoError(t, err)
	require.Len(t, list, len(signingTypes)+1)
	got := map[string]signer.KeyType{}
	for _, ki := range list {
		got[ki.Label] = ki.Type
		require.True(t, ki.HasPrivate)
		require.True(t, ki.HasPublicObject)
		require.NoError(t, ki.PublicErr)
		require.Equal(t, tok.Label, ki.Token)
		require.Contains(t, ki.URI, "object="+ki.Label)
		require.Len(t, ki.IDHex(), 32)
	}
	for _, kt := range signingTypes {
		require.Equal(t, kt, got[string(kt)])
	}
	require.Equal(t, signer.Ed25519, got["imported-ed25519"])

	info, err := pkcs11key.Info(ctx, tok.URI("ecdsa-p384"), pkcs11key.Options{})
	require.NoError(t, err)
	require.Equal(t, "ECDSA P-384", info.Algorithm)
	require.True(t, info.NeverExtractable)
}

func TestBadURI(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ uri, want string }{
		{"file:key.pem", `it must start with "pkcs11:"`},
		{"pkcs11:token=a;token=b", "attribute token appears twice"},
		{"pkcs11:lable=x", `unknown attribute "lable"`},
		{"pkcs11:object=a b", "attribute object: character at offset 1 must be percent-encoded"},
		{"pkcs11:id=%zz", "attribute id: malformed percent-escape"},
		{"pkcs11:object=x?module-path=lib.so", "module-path must be an absolute path"},
		{"pkcs11:object=x;pin-source=/p", "pin-source is a query attribute; move it to the query"},
		{"pkcs11:object=x?pin-source=/p&pin-value=" + wrongPIN, "pin-source and pin-value are both given"},
		{"pkcs11:object=x?pin-value=%" + wrongPIN, "attribute pin-value: malformed percent-escape"},
		{"pkcs11:slot-id=one", "slot-id must be a decimal number"},
		{"pkcs11:type=secret", "type must be one of"},
	} {
		_, err := pkcs11key.Open(ctx, c.uri, pkcs11key.Options{})
		requireErr(t, err, "invalid PKCS#11 URI", c.want)
		require.ErrorIs(t, err, pkcs11key.ErrBadURI)
	}
}

func TestModuleErrors(t *testing.T) {
	t.Parallel()
	_, err := pkcs11key.Open(ctx, "pkcs11:token=x;object=k?module-path=/nonexistent/libvendor-pkcs11.so", pkcs11key.Options{})
	requireErr(t, err, "PKCS#11 module /nonexistent/libvendor-pkcs11.so (from module-path) does not exist", "fix the path")
	require.ErrorIs(t, err, pkcs11key.ErrModule)

	notLib := filepath.Join(t.TempDir(), "libfake.so")
	require.NoError(t, os.WriteFile(notLib, []byte("this is not an ELF file\n"), 0o644))
	_, err = pkcs11key.Open(ctx, "pkcs11:token=x;object=k?module-path="+notLib+"&pin-source=/dev/null", pkcs11key.Options{})
	requireErr(t, err, "PKCS#11 module "+notLib+" could not be loaded: it is not a shared library; point module-path at")
	require.ErrorIs(t, err, pkcs11key.ErrModule)

	// A real shared library that is no PKCS#11 module.
	for _, libc := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/lib64/libc.so.6", "/usr/lib/libc.so.6"} {
		if _, err := os.Stat(libc); err != nil {
			continue
		}
		_, err = pkcs11key.Open(ctx, "pkcs11:token=x;object=k?module-path="+libc, pkcs11key.Options{})
		requireErr(t, err, "could not be loaded: it is a shared library but not a PKCS#11 module")
		break
	}

	_, err = pkcs11key.Open(ctx, "pkcs11:token=x;object=k?module-path="+t.TempDir(), pkcs11key.Options{})
	requireErr(t, err, "is a directory")
}

func TestSignRespectsContext(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "ed", signer.Ed25519)
	c, cancel := context.WithCancel(ctx)
	cancel()
	_, err := k.Sign(c, request([]byte("x"), signer.Ed25519))
	require.True(t, errors.Is(err, context.Canceled))
}

func TestInitTokenRefusesDuplicateLabel(t *testing.T) {
	t.Parallel()
	tok := p11test.NewToken(t)
	u := pkcs11key.URI{Token: tok.Label, ModulePath: tok.Module}
	err := pkcs11key.InitToken(ctx, u.String(), p11test.SOPIN, p11test.PIN)
	requireErr(t, err, "already has token \""+tok.Label+"\"", "choose another label")
	require.ErrorIs(t, err, pkcs11key.ErrTokenExists)
	require.False(t, strings.Contains(err.Error(), p11test.SOPIN))
}
