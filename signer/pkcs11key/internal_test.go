package pkcs11key

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/stretchr/testify/require"
)

const testPIN = "Pin-4471-NEVER-PRINT"

func TestParseURI(t *testing.T) {
	u, err := ParseURI("pkcs11:token=My%20token;serial=2908f794665dafef;slot-id=7;object=fw+key:v1=a&b;id=%01%02%fe;type=private" +
		"?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:///home/me/pin?x|y")
	require.NoError(t, err)
	require.Equal(t, "My token", u.Token)
	require.Equal(t, "2908f794665dafef", u.Serial)
	require.Equal(t, uint(7), *u.SlotID)
	require.Equal(t, "fw+key:v1=a&b", u.Object, "'+' stays a plus; '=' and '&' are legal in path values")
	require.Equal(t, []byte{1, 2, 0xfe}, u.ID)
	require.Equal(t, "private", u.Type)
	require.Equal(t, "/usr/lib/softhsm/libsofthsm2.so", u.ModulePath)
	require.Equal(t, "file:///home/me/pin?x|y", u.PINSource)
	require.Empty(t, u.Warnings())

	// String round-trips.
	u2, err := ParseURI(u.String())
	require.NoError(t, err)
	require.Equal(t, u, u2)
	require.Equal(t, "pkcs11:token=My%20token;serial=2908f794665dafef;slot-id=7;object=fw+key:v1=a&b;id=%01%02%FE;type=private"+
		"?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:///home/me/pin?x|y", u.String())

	for _, s := range []string{"pkcs11:", "PKCS11:object=a", "pkcs11:library-version=2.6;manufacturer=SoftHSM%20project;model=SoftHSM%20v2"} {
		_, err := ParseURI(s)
		require.NoError(t, err, s)
	}
}

func TestParseURIErrors(t *testing.T) {
	for _, c := range []struct{ uri, want string }{
		{"/path/key.pem", `it must start with "pkcs11:"`},
		{"pkcs11:object=a#frag", "a PKCS#11 URI has no fragment"},
		{"pkcs11:object", "not of the form name=value"},
		{"pkcs11:object=a;;id=%01", "not of the form name=value"},
		{"pkcs11:x-vendor=1", `vendor attribute "x-vendor" is not supported`},
		{"pkcs11:objet=a", `unknown attribute "objet"`},
		{"pkcs11:object=a?token=b", "token is a path attribute; move it to the path"},
		{"pkcs11:object=a/b", "attribute object: character at offset 1 must be percent-encoded"},
		{"pkcs11:object=a?pin-source=/p&pin-source=/q", "attribute pin-source appears twice"},
		{"pkcs11:object=", "attribute object is empty"},
		{"pkcs11:id=%0", "attribute id: truncated percent-escape"},
		{"pkcs11:slot-id=-1", "slot-id must be a decimal number"},
		{"pkcs11:slot-id=99999999999999999999999", "slot-id is out of range"},
		{"pkcs11:library-version=2.x", "library-version must be major or major.minor"},
		{"pkcs11:type=certificate", "type must be one of"},
		{"pkcs11:object=a?module-name=softhsm2", "module-name is not supported"},
		{"pkcs11:object=a?module-path=relative/lib.so", "module-path must be an absolute path"},
	} {
		_, err := ParseURI(c.uri)
		require.ErrorIs(t, err, ErrBadURI, c.uri)
		require.ErrorContains(t, err, "invalid PKCS#11 URI: ", c.uri)
		require.ErrorContains(t, err, c.want, c.uri)
	}
}

func TestURIRedactsPINValue(t *testing.T) {
	u, err := ParseURI("pkcs11:object=k?pin-value=" + testPIN)
	require.NoError(t, err)
	require.True(t, u.HasPINValue())
	require.Len(t, u.Warnings(), 1)
	require.Contains(t, u.Warnings()[0], "process list")
	for _, s := range []string{u.String(), fmt.Sprint(u), fmt.Sprint(*u), fmt.Sprintf("%+v", *u), fmt.Sprintf("%#v", u), fmt.Sprintf("%#v", *u), fmt.Sprintf("%q", *u)} {
		require.NotContains(t, s, testPIN)
		require.Contains(t, s, "pin-value=<redacted>")
	}
	_, err = ParseURI(u.String())
	require.ErrorContains(t, err, "pin-value was redacted")

	pin := secret(testPIN)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10s"} {
		require.NotContains(t, fmt.Sprintf(verb, pin), testPIN, verb)
	}
	require.Equal(t, testPIN, string(pin))

	// A malformed pin-value is reported without echoing it.
	_, err = ParseURI("pkcs11:object=k?pin-value=%" + testPIN)
	require.ErrorContains(t, err, "attribute pin-value: malformed percent-escape")
	require.NotContains(t, err.Error(), testPIN)
}

func TestPINFiles(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ content, want string }{
		{testPIN, testPIN},
		{testPIN + "\n", testPIN},
		{testPIN + "\r\n", testPIN},
		{testPIN + "\n\n", testPIN + "\n"}, // exactly one newline is trimmed
		{testPIN + " \n", testPIN + " "},
	} {
		f := filepath.Join(dir, "pin")
		require.NoError(t, os.WriteFile(f, []byte(c.content), 0o600))
		got, err := readPINSource(f, "pin-source")
		require.NoError(t, err)
		require.Equal(t, c.want, string(got), "%q", c.content)
		for _, src := range []string{"file:" + f, "file://" + f, "file://localhost" + f} {
			got, err := readPINSource(src, "pin-source")
			require.NoError(t, err, src)
			require.Equal(t, c.want, string(got))
		}
	}

	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	_, err := readPINSource(empty, EnvPINFile)
	require.ErrorIs(t, err, ErrNoPIN)
	require.ErrorContains(t, err, "the PIN file "+empty+" given by MCUSIGN_PIN_FILE is empty; write the token's user PIN into it (mode 0600)")

	big := filepath.Join(dir, "big")
	require.NoError(t, os.WriteFile(big, make([]byte, 5000), 0o600))
	_, err = readPINSource(big, "pin-source")
	require.ErrorContains(t, err, "larger than 1024 bytes")

	_, err = readPINSource("file://host/etc/pin", "pin-source")
	require.ErrorContains(t, err, `file: URI with host "host" is not supported`)
	_, err = readPINSource("file:relative", "pin-source")
	require.ErrorContains(t, err, "must name an absolute path")
}

func TestResolvePINOrder(t *testing.T) {
	dir := t.TempDir()
	fileA, fileB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	require.NoError(t, os.WriteFile(fileA, []byte("from-uri\n"), 0o600))
	require.NoError(t, os.WriteFile(fileB, []byte("from-env\n"), 0o600))
	prompt := func(context.Context, string) (string, error) { return "from-prompt", nil }
	ctx := context.Background()

	t.Setenv(EnvPINFile, fileB)
	got, err := resolvePIN(ctx, &URI{PINSource: fileA}, "tok", prompt)
	require.NoError(t, err)
	require.Equal(t, "from-uri", string(got))
	got, err = resolvePIN(ctx, &URI{}, "tok", prompt)
	require.NoError(t, err)
	require.Equal(t, "from-env", string(got))

	t.Setenv(EnvPINFile, "")
	got, err = resolvePIN(ctx, &URI{}, "tok", prompt)
	require.NoError(t, err)
	require.Equal(t, "from-prompt", string(got))

	_, err = resolvePIN(ctx, &URI{}, "tok", func(context.Context, string) (string, error) { return "", errors.New("not a terminal") })
	require.ErrorContains(t, err, `reading the PIN for token "tok": not a terminal`)
	_, err = resolvePIN(ctx, &URI{}, "tok", nil)
	require.ErrorIs(t, err, ErrNoPIN)
}

func TestLoginErrors(t *testing.T) {
	for _, c := range []struct {
		code pkcs11.Error
		kind error
		want string
	}{
		{pkcs11.CKR_PIN_INCORRECT, ErrWrongPIN, `wrong PIN for token "dev" (this attempt counts towards the token's lockout and is not retried)`},
		{pkcs11.CKR_PIN_LOCKED, ErrPINLocked, `the user PIN of token "dev" is locked after too many wrong attempts; unlock it with the SO PIN`},
		{pkcs11.CKR_PIN_LEN_RANGE, ErrWrongPIN, "does not accept a PIN of this length"},
		{pkcs11.CKR_PIN_EXPIRED, ErrLogin, `the PIN of token "dev" has expired`},
		{pkcs11.CKR_TOKEN_NOT_PRESENT, ErrTokenNotPresent, `token "dev" went away while logging in; reconnect the token`},
		{pkcs11.CKR_DEVICE_REMOVED, ErrTokenNotPresent, `token "dev" went away while logging in`},
		{pkcs11.CKR_GENERAL_ERROR, ErrLogin, `logging in to token "dev": pkcs11: 0x5: CKR_GENERAL_ERROR`},
	} {
		err := loginError("dev", c.code)
		require.ErrorIs(t, err, c.kind)
		require.ErrorContains(t, err, c.want)
	}

	tok := &token{label: "dev"}
	err := tok.opError("signing with key \"k\"", fmt.Errorf("wrapped: %w", pkcs11.Error(pkcs11.CKR_TOKEN_NOT_PRESENT)))
	require.ErrorIs(t, err, ErrTokenNotPresent)
	require.ErrorContains(t, err, `token "dev" went away while signing with key "k"; reconnect the token`)
	err = tok.opError("signing", pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN))
	require.ErrorIs(t, err, ErrLogin)
	require.ErrorContains(t, err, "no longer logged in")
}

func TestDecodeECPublic(t *testing.T) {
	for _, c := range []struct {
		curve elliptic.Curve
		oid   asn1.ObjectIdentifier
	}{{elliptic.P256(), oidP256}, {elliptic.P384(), oidP384}} {
		k, err := ecdsa.GenerateKey(c.curve, rand.Reader)
		require.NoError(t, err)
		raw, err := k.PublicKey.Bytes()
		require.NoError(t, err)
		params, _ := asn1.Marshal(c.oid)
		der, _ := asn1.Marshal(raw)
		for _, point := range [][]byte{der, raw} {
			pub, err := decodeECPublic(pkcs11.CKK_EC, params, point)
			require.NoError(t, err)
			require.True(t, k.PublicKey.Equal(pub))
		}
	}
	secp256k1, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 132, 0, 10})
	_, err := decodeECPublic(pkcs11.CKK_EC, secp256k1, []byte{4})
	require.ErrorIs(t, err, ErrWrongKeyType)
	require.ErrorContains(t, err, "EC key on curve 1.3.132.0.10; MCUboot signs with P-256 or P-384")

	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, _ := asn1.Marshal([]byte(pub))
	oidParams, _ := asn1.Marshal(oidEd25519)
	for _, params := range [][]byte{oidParams, []byte(ed25519PrintableEncoded)} {
		for _, point := range [][]byte{der, pub} {
			got, err := decodeECPublic(ckkECEdwards, params, point)
			require.NoError(t, err)
			require.Equal(t, pub, got)
		}
	}
	require.Equal(t, []byte{0x06, 0x03, 0x2b, 0x65, 0x70}, oidParams)
	var name string
	rest, err := asn1.Unmarshal([]byte(ed25519PrintableEncoded), &name)
	require.NoError(t, err)
	require.Empty(t, rest)
	require.Equal(t, "edwards25519", name)
	ed448, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 101, 113})
	_, err = decodeECPublic(ckkECEdwards, ed448, der)
	require.ErrorIs(t, err, ErrWrongKeyType)
}

func TestModulePathDefaults(t *testing.T) {
	t.Setenv(EnvModule, "")
	found := ""
	for _, p := range DefaultModulePaths {
		if _, err := os.Stat(p); err == nil {
			found = p
			break
		}
	}
	if found == "" {
		t.Skip("SoftHSM2 is not installed")
	}
	got, err := modulePath(&URI{})
	require.NoError(t, err)
	want, err := filepath.EvalSymlinks(found)
	require.NoError(t, err)
	require.Equal(t, want, got, "symlinked paths to one library share one registry entry")
}

// Preload loads the default module ahead of a key (an on-demand daemon's
// first lookup then finds it loaded), and nothing when there is none.
func TestPreload(t *testing.T) {
	loaded := func(path string) bool {
		registry.Lock()
		defer registry.Unlock()
		return registry.modules[path] != nil
	}
	t.Setenv(EnvModule, "/nonexistent/libpkcs11.so")
	Preload() // an error is the later lookup's to report
	require.False(t, loaded("/nonexistent/libpkcs11.so"))

	// A copy of SoftHSM2 under a path of its own, which no other test of
	// this process can have loaded already.
	t.Setenv(EnvModule, "")
	softhsm, err := modulePath(&URI{})
	if err != nil {
		t.Skip("SoftHSM2 is not installed")
	}
	lib, err := os.ReadFile(softhsm)
	require.NoError(t, err)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	copied := filepath.Join(dir, "libsofthsm2-copy.so")
	require.NoError(t, os.WriteFile(copied, lib, 0o755))
	t.Setenv(EnvModule, copied)
	require.False(t, loaded(copied))
	Preload()
	require.True(t, loaded(copied), "the default module was not loaded")
}

func TestListDescsIsBounded(t *testing.T) {
	var ds []tokenDesc
	for i := range 12 {
		ds = append(ds, tokenDesc{slot: uint(i), info: pkcs11.TokenInfo{Label: fmt.Sprintf("tok%d", i), SerialNumber: fmt.Sprintf("s%d", i)}})
	}
	require.Equal(t, `"tok0" (serial s0), "tok1" (serial s1)`, listDescs(ds[:2]))
	got := listDescs(ds)
	require.Contains(t, got, `"tok9" (serial s9), and 2 more`)
	require.NotContains(t, got, "tok10")
}
