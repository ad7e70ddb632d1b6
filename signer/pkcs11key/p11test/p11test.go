// Package p11test gives tests real SoftHSM2 tokens, never mocks.
//
// SoftHSM reads SOFTHSM2_CONF once, in C_Initialize, and a process can
// initialise a PKCS#11 library only once, so all tokens of one test binary
// live in one temporary token directory with its own config; the user's
// SOFTHSM2_CONF is overridden for the test process only. Each NewToken call
// creates a fresh token there, in-process through pkcs11key.InitToken,
// because SoftHSM does not see tokens created by other processes (such as
// softhsm2-util) after it has been initialised.
//
// Use Main from TestMain so the directory is removed afterwards:
//
//	func TestMain(m *testing.M) { os.Exit(p11test.Main(m)) }
package p11test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key"
)

// Distinctive PINs, so tests can assert that no error text contains them.
const (
	PIN   = "Pin-7c1f-NEVER-PRINT"
	SOPIN = "SoPin-5b2e-NEVER-PRINT"
)

var env struct {
	once   sync.Once
	dir    string
	module string
	err    error

	rawOnce sync.Once
	raw     *pkcs11.Ctx
	rawErr  error
}

var counter atomic.Int64

// creating serialises token creation, so NewToken can tell which token
// directory is the new one.
var creating sync.Mutex

func setup() {
	for _, p := range pkcs11key.DefaultModulePaths {
		if _, err := os.Stat(p); err == nil {
			env.module = p
			break
		}
	}
	if env.module == "" {
		env.err = fmt.Errorf("SoftHSM2 is not installed (looked in %s); install it with apt install softhsm2", strings.Join(pkcs11key.DefaultModulePaths, ", "))
		return
	}
	dir, err := os.MkdirTemp("", "mcusign-p11test-")
	if err != nil {
		env.err = err
		return
	}
	env.dir = dir
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		env.err = err
		return
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	text := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		env.err = err
		return
	}
	env.err = os.Setenv("SOFTHSM2_CONF", conf)
}

// Main runs m and then removes the SoftHSM directory.
func Main(m *testing.M) int {
	code := m.Run()
	if env.dir != "" {
		_ = os.RemoveAll(env.dir)
	}
	return code
}

// Module is the SoftHSM2 library the tokens live in.
func Module(t testing.TB) string {
	t.Helper()
	env.once.Do(setup)
	if env.err != nil {
		t.Fatalf("p11test: %v", env.err)
	}
	return env.module
}

// Token is a fresh SoftHSM2 token with PIN as its user PIN.
type Token struct {
	Label   string // token label, unique in the test binary
	Module  string // library path
	PIN     string // user PIN
	PINFile string // file holding PIN and a newline, mode 0600
	// Dir is the token's own directory inside SoftHSM's token directory:
	// moving it away and back, or deleting it, is how fault tests take the
	// token away from a process that has it open.
	Dir string
}

// TokenDir is SoftHSM's token directory of the test binary (also what
// mcusignd processes started by the test see, through SOFTHSM2_CONF).
func TokenDir(t testing.TB) string {
	t.Helper()
	Module(t)
	return filepath.Join(env.dir, "tokens")
}

func listDir(t testing.TB, dir string) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		out[e.Name()] = true
	}
	return out
}

// NewToken creates an empty token for t.
func NewToken(t testing.TB) *Token {
	t.Helper()
	module := Module(t)
	name := strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e || r == '/' {
			return '-'
		}
		return r
	}, t.Name())
	label := fmt.Sprintf("t%d-%s", counter.Add(1), name)
	if len(label) > 32 {
		label = label[:32]
	}
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte(PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := &Token{Label: label, Module: module, PIN: PIN, PINFile: pinFile}
	u := pkcs11key.URI{Token: label, ModulePath: module}
	creating.Lock()
	defer creating.Unlock()
	dir := TokenDir(t)
	before := listDir(t, dir)
	if err := pkcs11key.InitToken(context.Background(), u.String(), SOPIN, PIN); err != nil {
		t.Fatalf("p11test: creating token %q: %v", label, err)
	}
	for name := range listDir(t, dir) {
		if !before[name] {
			tok.Dir = filepath.Join(dir, name)
		}
	}
	return tok
}

// BaseURI selects the token, with module-path and pin-source set.
func (tok *Token) BaseURI() pkcs11key.URI {
	return pkcs11key.URI{Token: tok.Label, ModulePath: tok.Module, PINSource: tok.PINFile}
}

// URI names object on the token (the token itself if object is empty).
func (tok *Token) URI(object string) string {
	u := tok.BaseURI()
	u.Object = object
	return u.String()
}

// Generate creates a key of type kt labelled label inside the token.
func (tok *Token) Generate(t testing.TB, label string, kt signer.KeyType) *pkcs11key.Key {
	t.Helper()
	k, err := pkcs11key.Generate(context.Background(), tok.URI(label), kt, pkcs11key.Options{})
	if err != nil {
		t.Fatalf("p11test: generating %s key %q: %v", kt, label, err)
	}
	return k
}

// ReadPEM parses an unencrypted PKCS#8 PEM private key file.
func ReadPEM(t testing.TB, path string) crypto.Signer {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("p11test: %s is not a PKCS#8 PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("p11test: %s: %v", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		t.Fatalf("p11test: %s holds a %T, not a signing key", path, k)
	}
	return s
}

// ImportPEM stores the private key in pemPath in the token under label.
func (tok *Token) ImportPEM(t testing.TB, label, pemPath string) *pkcs11key.Key {
	t.Helper()
	k, err := pkcs11key.Import(context.Background(), tok.URI(label), ReadPEM(t, pemPath), pkcs11key.Options{})
	if err != nil {
		t.Fatalf("p11test: importing %s as %q: %v", pemPath, label, err)
	}
	return k
}

// Raw runs fn with a logged-in read-write session on the token, for tests
// that need token states pkcs11key refuses to create (duplicate labels,
// keys without a public object, unsupported key types). It shares the
// library instance pkcs11key initialised.
func (tok *Token) Raw(t testing.TB, fn func(p *pkcs11.Ctx, sh pkcs11.SessionHandle)) {
	t.Helper()
	// Let pkcs11key bring the module up first: crypto11 must be the one
	// that calls C_Initialize.
	if _, err := pkcs11key.List(context.Background(), tok.URI(""), pkcs11key.Options{}); err != nil {
		t.Fatalf("p11test: opening token %q: %v", tok.Label, err)
	}
	env.rawOnce.Do(func() {
		p := pkcs11.New(tok.Module)
		if p == nil {
			env.rawErr = fmt.Errorf("cannot load %s", tok.Module)
			return
		}
		if err := p.Initialize(); err != nil && err != pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			env.rawErr = err
			return
		}
		env.raw = p
	})
	if env.rawErr != nil {
		t.Fatalf("p11test: %v", env.rawErr)
	}
	p := env.raw
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range slots {
		ti, err := p.GetTokenInfo(slot)
		if err != nil || ti.Label != tok.Label {
			continue
		}
		sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = p.CloseSession(sh) }()
		if err := p.Login(sh, pkcs11.CKU_USER, tok.PIN); err != nil && err != pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
			t.Fatal(err)
		}
		fn(p, sh)
		return
	}
	t.Fatalf("p11test: token %q not found", tok.Label)
}
