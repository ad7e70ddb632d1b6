package pkcs11key

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// EnvModule names the PKCS#11 library used when the URI has no module-path.
const EnvModule = "MCUSIGN_PKCS11_MODULE"

// Sentinel errors; every error this package returns about these conditions
// wraps one of them, so callers can branch with errors.Is.
var (
	ErrModule          = errors.New("PKCS#11 module unusable")
	ErrTokenNotFound   = errors.New("PKCS#11 token not found")
	ErrTokenNotPresent = errors.New("PKCS#11 token not present")
	ErrWrongPIN        = errors.New("wrong PIN")
	ErrPINLocked       = errors.New("PIN locked")
	ErrLogin           = errors.New("PKCS#11 login failed")
)

// DefaultModulePaths are probed in order when neither module-path nor
// MCUSIGN_PKCS11_MODULE names a library: the SoftHSM2 locations of the
// common distributions.
var DefaultModulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/" + multiarch() + "/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",
}

func multiarch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64-linux-gnu"
	case "arm64":
		return "aarch64-linux-gnu"
	case "arm":
		return "arm-linux-gnueabihf"
	case "386":
		return "i386-linux-gnu"
	}
	return runtime.GOARCH + "-linux-gnu"
}

// Options carries what the caller supplies beyond the URI.
type Options struct {
	// Prompt asks for a token's PIN when neither the URI nor
	// MCUSIGN_PIN_FILE gives one. Nil means never prompt.
	Prompt func(ctx context.Context, prompt string) (string, error)
	// Warn receives warnings about accepted but unsafe input, such as
	// pin-value, and about token faults (a token that went away, after
	// which the module is initialised again). Nil logs them with the
	// standard logger.
	Warn func(msg string)
}

func (o Options) warn(u *URI) {
	for _, w := range u.Warnings() {
		o.notify(w)
	}
}

func (o Options) notify(msg string) {
	if o.Warn != nil {
		o.Warn(msg)
	} else {
		log.Print("warning: " + msg)
	}
}

// The registry holds one module per library file for the whole process:
// C_Initialize may succeed only once, and login state is per process.
var registry = struct {
	sync.Mutex
	modules map[string]*module
}{modules: map[string]*module{}}

// module is one loaded PKCS#11 library. crypto11 insists on calling
// C_Initialize itself and fails on CKR_CRYPTOKI_ALREADY_INITIALIZED, so it
// must be the first to initialise: before that we initialise only briefly
// (to find the token) and finalise again. Once live, our handle's
// C_Initialize returns CKR_CRYPTOKI_ALREADY_INITIALIZED and both share the
// library's state.
//
// Tokens fail: a USB token is pulled, a network HSM drops its link, a
// SoftHSM token directory is moved away, deleted or re-initialised. SoftHSM
// then answers CKR_OBJECT_HANDLE_INVALID for the keys it had and
// CKR_GENERAL_ERROR for the token's information, and keeps failing even
// after the token is back: it reads its token directory only in
// C_Initialize. So a fault (see fault) resets the whole module: every
// token's sessions, login and crypto11 context are dropped and the library
// is finalised; the next operation initialises it again (which also finds
// tokens created since), logs in again and finds its keys again (Key keeps
// working across resets). ops makes a reset wait for the operations in
// flight, which would otherwise run into a finalised library.
type module struct {
	path string
	p11  *pkcs11.Ctx

	// ops is held shared by every operation that uses the module's
	// sessions, object handles or crypto11 contexts, and exclusively by
	// reset. Never taken twice by one goroutine.
	ops sync.RWMutex
	gen uint64 // resets so far; written with ops held exclusively (and mu)

	mu     sync.Mutex // serialises bring-up, token lookup and token creation
	live   bool
	tokens map[uint]*token
	seen   []tokenDesc // tokens opened since the module was loaded, to tell "went away" from "never existed"

	rejMu    sync.Mutex
	rejected map[[32]byte]bool // HMACs of (token, PIN) pairs a token refused; kept across resets
}

// run calls op with ops held shared and returns the generation it ran in.
func (m *module) run(op func() error) (uint64, error) {
	m.ops.RLock()
	defer m.ops.RUnlock()
	return m.gen, op()
}

// do runs op with ops held shared. If op fails with a token fault, the
// module is reset and op runs once more: the token may be back already
// (reconnected, restored), and then nobody sees the fault. Otherwise the
// second attempt's error (typically: the token is not present) is returned.
// op must not have produced anything when it fails with a fault.
func (m *module) do(opts Options, op func() error) error {
	gen, err := m.run(op)
	if err == nil || !fault(err) {
		return err
	}
	if m.reset(gen) {
		opts.notify(fmt.Sprintf("PKCS#11 module %s: %v; dropped its sessions and logins, initialising it again", m.path, err))
	}
	_, err = m.run(op)
	return err
}

// reset drops every token of the module and finalises the library, unless
// another reset happened since generation gen (a fault seen by many
// requests at once resets once).
func (m *module) reset(gen uint64) bool {
	m.ops.Lock()
	defer m.ops.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != gen {
		return false
	}
	m.gen++
	if !m.live {
		return true
	}
	for _, t := range m.tokens {
		// crypto11 finalises the library when its last context closes.
		_ = t.c11.Close()
	}
	_ = m.p11.Finalize() // CKR_CRYPTOKI_NOT_INITIALIZED if crypto11 did
	m.tokens = map[uint]*token{}
	m.live = false
	return true
}

// errLost marks a token this process had open that the live library no
// longer lists: resetting the module rescans.
var errLost = errors.New("token lost")

// errNoMatch marks "no token matches the URI" (as opposed to ambiguity).
var errNoMatch = errors.New("no matching token")

// fault reports whether err means that the token or the library lost the
// state this process relies on (sessions, login, object handles), so that
// only finalising and initialising the module again can recover.
func fault(err error) bool {
	if errors.Is(err, errLost) {
		return true
	}
	var code pkcs11.Error
	if !errors.As(err, &code) {
		return false
	}
	switch code {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_DEVICE_REMOVED,
		pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_OBJECT_HANDLE_INVALID,
		pkcs11.CKR_KEY_HANDLE_INVALID, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, pkcs11.CKR_GENERAL_ERROR,
		pkcs11.CKR_SLOT_ID_INVALID:
		return true
	}
	return false
}

// modulePath picks the library: module-path, MCUSIGN_PKCS11_MODULE, then
// the first SoftHSM2 found. It returns the canonical path.
func modulePath(u *URI) (string, error) {
	path, from := u.ModulePath, "module-path"
	if path == "" {
		path, from = os.Getenv(EnvModule), EnvModule
		if path != "" && !filepath.IsAbs(path) {
			return "", kindErr(ErrModule, "%s must be an absolute path to the PKCS#11 library, not %q", EnvModule, path)
		}
	}
	if path == "" {
		for _, p := range DefaultModulePaths {
			if _, err := os.Stat(p); err == nil {
				path, from = p, "the SoftHSM2 default"
				break
			}
		}
		if path == "" {
			return "", kindErr(ErrModule, "no module-path in the URI, %s is unset and SoftHSM2 is not installed (looked in %s); install softhsm2 or name the library with module-path=/path/to/pkcs11.so", EnvModule, strings.Join(DefaultModulePaths, ", "))
		}
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", kindErr(ErrModule, "PKCS#11 module %s (from %s) does not exist; fix the path or install the library (SoftHSM2: apt install softhsm2)", path, from)
	case err != nil:
		return "", kindErr(ErrModule, "PKCS#11 module %s (from %s): %v", path, from, err)
	case st.IsDir():
		return "", kindErr(ErrModule, "PKCS#11 module %s (from %s) is a directory; give the path of the library's .so file", path, from)
	}
	// Two paths to one library (Debian's /usr/lib/softhsm is a symlink)
	// share one C_Initialize, so they must share one registry entry.
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	return path, nil
}

func loadModule(path string) (*module, error) {
	registry.Lock()
	defer registry.Unlock()
	if m := registry.modules[path]; m != nil {
		return m, nil
	}
	p := pkcs11.New(path)
	if p == nil {
		return nil, kindErr(ErrModule, "PKCS#11 module %s could not be loaded: %s; point module-path at the token vendor's PKCS#11 library", path, whyNotLoadable(path))
	}
	m := &module{path: path, p11: p, tokens: map[uint]*token{}}
	registry.modules[path] = m
	return m, nil
}

// whyNotLoadable guesses why dlopen or C_GetFunctionList failed; miekg
// reports neither.
func whyNotLoadable(path string) string {
	head := make([]byte, 4)
	f, err := os.Open(path)
	if err == nil {
		_, err = io.ReadFull(f, head)
		f.Close()
	}
	if err != nil {
		return fmt.Sprintf("it cannot be read (%v)", err)
	}
	switch string(head) {
	case "\x7fELF", "\xfe\xed\xfa\xce", "\xfe\xed\xfa\xcf", "\xce\xfa\xed\xfe", "\xcf\xfa\xed\xfe", "\xca\xfe\xba\xbe":
		return "it is a shared library but not a PKCS#11 module for this system (no C_GetFunctionList, another CPU architecture, or a library it needs is missing)"
	}
	return "it is not a shared library"
}

// moduleFor loads the module the URI names.
func moduleFor(u *URI) (*module, error) {
	path, err := modulePath(u)
	if err != nil {
		return nil, err
	}
	return loadModule(path)
}

// openToken brings the module up if needed and finds the token the URI
// selects. It does not log in. Called with ops held shared.
func (m *module) openToken(u *URI) (*token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.live {
		slot, ti, err := m.findToken(u)
		if err != nil {
			return nil, m.gone(u, err)
		}
		if t := m.tokens[slot]; t != nil {
			return t, nil
		}
		c11, err := m.configure(slot, ti)
		if err != nil {
			return nil, err
		}
		return m.addToken(slot, ti, c11), nil
	}
	own, err := m.initialize()
	if err != nil {
		return nil, err
	}
	slot, ti, err := m.findToken(u)
	if own {
		_ = m.p11.Finalize() // hand C_Initialize to crypto11
	}
	if err != nil {
		return nil, m.gone(u, err)
	}
	c11, err := m.configure(slot, ti)
	if err != nil {
		return nil, err
	}
	if err := m.p11.Initialize(); err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		_ = c11.Close()
		return nil, m.initError(err)
	}
	m.live = true
	return m.addToken(slot, ti, c11), nil
}

// gone rewrites "no token matches" for a token this process had open: it
// went away. On a live library that is a fault (errLost): only a rescan,
// i.e. a reset, can find it again.
func (m *module) gone(u *URI, err error) error {
	if !errors.Is(err, errNoMatch) {
		return err
	}
	for _, d := range m.seen {
		if m.matchToken(u, d) {
			e := &kindError{kind: ErrTokenNotPresent, err: fmt.Errorf("token %q is not present in PKCS#11 module %s: it was in use and went away (unplugged, deleted or re-initialised, or its HSM is unreachable); reconnect or restore it, it is used again without a restart", d.info.Label, m.path)}
			if m.live {
				e.cause = errLost
			}
			return e
		}
	}
	return err
}

// initialize calls C_Initialize and reports whether this call did it.
func (m *module) initialize() (own bool, err error) {
	err = m.p11.Initialize()
	switch {
	case err == nil:
		return true, nil
	case isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED):
		return false, nil
	}
	return false, m.initError(err)
}

func (m *module) initError(err error) error {
	hint := "check the library's own configuration"
	if strings.Contains(strings.ToLower(m.path), "softhsm") {
		conf := os.Getenv("SOFTHSM2_CONF")
		if conf == "" {
			conf = "unset, so /etc/softhsm/softhsm2.conf"
		}
		hint = fmt.Sprintf("check that SOFTHSM2_CONF (%s) names a readable config whose directories.tokendir exists and is writable", conf)
	}
	return kindErr(ErrModule, "PKCS#11 module %s failed to initialise (%v); %s", m.path, err, hint)
}

func (m *module) configure(slot uint, ti pkcs11.TokenInfo) (*crypto11.Context, error) {
	cfg := &crypto11.Config{
		Path: m.path,
		// We log in ourselves (one attempt, clear errors, PIN sources);
		// crypto11's sessions then share the process-wide login.
		LoginNotSupported: true,
		MaxSessions:       32,
	}
	if ti.SerialNumber != "" {
		cfg.TokenSerial = ti.SerialNumber
	} else {
		n := int(slot)
		cfg.SlotNumber = &n
	}
	c11, err := crypto11.Configure(cfg)
	if err != nil {
		if isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			return nil, kindErr(ErrModule, "PKCS#11 module %s was initialised by other code in this process, which crypto11 cannot share; open PKCS#11 keys only through package pkcs11key", m.path)
		}
		return nil, kindErr(ErrModule, "opening token %q with crypto11: %w", ti.Label, err)
	}
	return c11, nil
}

func (m *module) addToken(slot uint, ti pkcs11.TokenInfo, c11 *crypto11.Context) *token {
	t := &token{
		m: m, gen: m.gen, slot: slot, label: ti.Label, serial: ti.SerialNumber, c11: c11,
		sem:  make(chan struct{}, poolSize),
		idle: make(chan pkcs11.SessionHandle, poolSize),
	}
	m.tokens[slot] = t
	known := false
	for _, d := range m.seen {
		known = known || (d.info.Label == ti.Label && d.info.SerialNumber == ti.SerialNumber)
	}
	if !known && len(m.seen) < 64 {
		m.seen = append(m.seen, tokenDesc{slot, ti})
	}
	return t
}

type tokenDesc struct {
	slot uint
	info pkcs11.TokenInfo
}

func (d tokenDesc) String() string {
	return fmt.Sprintf("%q (serial %s)", d.info.Label, d.info.SerialNumber)
}

// listDescs names tokens for messages; a module with many tokens (a network
// HSM's partitions) gets a bounded line.
func listDescs(ds []tokenDesc) string {
	const max = 10
	var s []string
	for i, d := range ds {
		if i == max {
			s = append(s, fmt.Sprintf("and %d more", len(ds)-max))
			break
		}
		s = append(s, d.String())
	}
	return strings.Join(s, ", ")
}

// findToken returns the one initialised token the URI selects.
func (m *module) findToken(u *URI) (uint, pkcs11.TokenInfo, error) {
	if err := m.matchLibrary(u); err != nil {
		return 0, pkcs11.TokenInfo{}, err
	}
	slots, err := m.p11.GetSlotList(true)
	if err != nil {
		return 0, pkcs11.TokenInfo{}, kindErr(ErrModule, "listing the slots of PKCS#11 module %s: %v", m.path, err)
	}
	var all, matches []tokenDesc
	for _, slot := range slots {
		ti, err := m.p11.GetTokenInfo(slot)
		if err != nil || ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		d := tokenDesc{slot, ti}
		all = append(all, d)
		if m.matchToken(u, d) {
			matches = append(matches, d)
		}
	}
	switch {
	case len(matches) == 1:
		return matches[0].slot, matches[0].info, nil
	case len(all) == 0:
		return 0, pkcs11.TokenInfo{}, causeErr(ErrTokenNotFound, errNoMatch, "PKCS#11 module %s has no initialised token; create one (development: scripts/dev-token.sh, SoftHSM2: softhsm2-util --init-token --free --label <label>)", m.path)
	case len(matches) == 0:
		return 0, pkcs11.TokenInfo{}, causeErr(ErrTokenNotFound, errNoMatch, "no token matches %s in PKCS#11 module %s; available tokens: %s", u.tokenSelector(), m.path, listDescs(all))
	case !u.selectsToken():
		return 0, pkcs11.TokenInfo{}, kindErr(ErrTokenNotFound, "the URI names no token and PKCS#11 module %s holds %d: %s; add token=<label> to the URI", m.path, len(all), listDescs(all))
	default:
		return 0, pkcs11.TokenInfo{}, kindErr(ErrTokenNotFound, "%s matches %d tokens in PKCS#11 module %s: %s; add serial=<serial> to the URI to pick one", u.tokenSelector(), len(matches), m.path, listDescs(matches))
	}
}

func (m *module) matchToken(u *URI, d tokenDesc) bool {
	ti := d.info
	if (u.Token != "" && u.Token != ti.Label) || (u.Serial != "" && u.Serial != ti.SerialNumber) ||
		(u.Manufacturer != "" && u.Manufacturer != ti.ManufacturerID) || (u.Model != "" && u.Model != ti.Model) ||
		(u.SlotID != nil && *u.SlotID != d.slot) {
		return false
	}
	if u.SlotDescription != "" || u.SlotManufacturer != "" {
		si, err := m.p11.GetSlotInfo(d.slot)
		if err != nil || (u.SlotDescription != "" && u.SlotDescription != si.SlotDescription) ||
			(u.SlotManufacturer != "" && u.SlotManufacturer != si.ManufacturerID) {
			return false
		}
	}
	return true
}

func (m *module) matchLibrary(u *URI) error {
	if u.LibraryManufacturer == "" && u.LibraryDescription == "" && u.LibraryVersion == "" {
		return nil
	}
	info, err := m.p11.GetInfo()
	if err != nil {
		return kindErr(ErrModule, "reading the library information of PKCS#11 module %s: %v", m.path, err)
	}
	ok := (u.LibraryManufacturer == "" || u.LibraryManufacturer == info.ManufacturerID) &&
		(u.LibraryDescription == "" || u.LibraryDescription == info.LibraryDescription)
	if u.LibraryVersion != "" {
		maj, min, _ := parseLibVersion(u.LibraryVersion)
		ok = ok && maj == info.LibraryVersion.Major && min == info.LibraryVersion.Minor
	}
	if !ok {
		return kindErr(ErrTokenNotFound, "PKCS#11 module %s is %q by %q version %d.%d, which does not match the library-* attributes of the URI; fix or drop them", m.path, info.LibraryDescription, info.ManufacturerID, info.LibraryVersion.Major, info.LibraryVersion.Minor)
	}
	return nil
}

// poolSize bounds the sessions this package opens per token for its own
// operations (lookups, key generation, Ed25519 signing).
const poolSize = 16

// token is one opened token. Login happens once and is shared by every
// session of the process, crypto11's included.
type token struct {
	m      *module
	gen    uint64 // the module's generation it was opened in; stale after a reset
	slot   uint
	label  string
	serial string
	c11    *crypto11.Context

	loginMu  sync.Mutex
	loggedIn bool
	persist  pkcs11.SessionHandle // keeps the login alive while pool sessions come and go

	sem  chan struct{}
	idle chan pkcs11.SessionHandle
}

func (t *token) p11() *pkcs11.Ctx { return t.m.p11 }

func (t *token) openSession() (pkcs11.SessionHandle, error) {
	sh, err := t.p11().OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if isCode(err, pkcs11.CKR_TOKEN_WRITE_PROTECTED) {
		sh, err = t.p11().OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION)
	}
	if err != nil {
		return 0, t.opError("opening a session", err)
	}
	return sh, nil
}

// withSession runs fn on a pooled session; PKCS#11 sessions must not be
// used by two goroutines at once.
func (t *token) withSession(ctx context.Context, fn func(sh pkcs11.SessionHandle) error) error {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-t.sem }()
	var sh pkcs11.SessionHandle
	select {
	case sh = <-t.idle:
	default:
		var err error
		if sh, err = t.openSession(); err != nil {
			return err
		}
	}
	err := fn(sh)
	if sessionBroken(err) {
		_ = t.p11().CloseSession(sh)
	} else {
		t.idle <- sh // never blocks: idle and sem have the same capacity
	}
	return err
}

func sessionBroken(err error) bool {
	for _, c := range []pkcs11.Error{pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_DEVICE_ERROR} {
		if isCode(err, c) {
			return true
		}
	}
	return false
}

// pinKey keys the HMAC that remembers rejected PINs without keeping them.
var pinKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}()

// pinMAC binds the PIN to the token (serial and label), so that the
// module-wide memory of rejected PINs tells tokens apart.
func pinMAC(t *token, pin secret) [32]byte {
	h := hmac.New(sha256.New, pinKey)
	fmt.Fprintf(h, "%q %q ", t.serial, t.label)
	h.Write([]byte(pin))
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// login logs the user in once per process. A rejected PIN is remembered
// and never sent again, so a wrong PIN file cannot lock the token by retries.
func (t *token) login(ctx context.Context, u *URI, opts Options) error {
	t.loginMu.Lock()
	defer t.loginMu.Unlock()
	if t.loggedIn {
		return nil
	}
	ti, err := t.p11().GetTokenInfo(t.slot)
	if err != nil {
		return t.opError("reading the token information", err)
	}
	if ti.Flags&pkcs11.CKF_USER_PIN_LOCKED != 0 {
		return loginError(t.label, pkcs11.Error(pkcs11.CKR_PIN_LOCKED))
	}
	if ti.Flags&pkcs11.CKF_USER_PIN_INITIALIZED == 0 {
		return kindErr(ErrLogin, "token %q has no user PIN yet; set one with the SO PIN first (e.g. pkcs11-tool --init-pin)", t.label)
	}
	var pin secret
	if ti.Flags&pkcs11.CKF_PROTECTED_AUTHENTICATION_PATH == 0 { // else the PIN pad asks
		if pin, err = resolvePIN(ctx, u, t.label, opts.Prompt); err != nil {
			return err
		}
		if t.m.wasRejected(t, pin) {
			return kindErr(ErrWrongPIN, "token %q already rejected this PIN in this process; mcusign does not send it again, so the token is not locked by retries; fix the PIN source", t.label)
		}
	}
	sh, err := t.openSession()
	if err != nil {
		return err
	}
	err = t.p11().Login(sh, pkcs11.CKU_USER, string(pin))
	if err == nil || isCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		t.persist, t.loggedIn = sh, true
		return nil
	}
	_ = t.p11().CloseSession(sh)
	if isCode(err, pkcs11.CKR_PIN_INCORRECT) {
		t.m.reject(t, pin)
	}
	return loginError(t.label, err)
}

// reject remembers that t refused pin; the memory outlives resets, so a
// flapping token cannot be locked by the logins that follow them.
func (m *module) reject(t *token, pin secret) {
	m.rejMu.Lock()
	defer m.rejMu.Unlock()
	if m.rejected == nil {
		m.rejected = map[[32]byte]bool{}
	}
	m.rejected[pinMAC(t, pin)] = true
}

func (m *module) wasRejected(t *token, pin secret) bool {
	m.rejMu.Lock()
	defer m.rejMu.Unlock()
	return m.rejected[pinMAC(t, pin)]
}

// loginError turns a C_Login failure into one line with a fix.
func loginError(label string, err error) error {
	var code pkcs11.Error
	errors.As(err, &code)
	switch code {
	case pkcs11.CKR_PIN_INCORRECT:
		return kindErr(ErrWrongPIN, "wrong PIN for token %q (this attempt counts towards the token's lockout and is not retried); check the PIN file or MCUSIGN_PIN_FILE", label)
	case pkcs11.CKR_PIN_LOCKED:
		return kindErr(ErrPINLocked, "the user PIN of token %q is locked after too many wrong attempts; unlock it with the SO PIN (e.g. pkcs11-tool --init-pin --login --login-type so) and try again", label)
	case pkcs11.CKR_PIN_LEN_RANGE:
		return kindErr(ErrWrongPIN, "wrong PIN for token %q: the token does not accept a PIN of this length; check for stray characters in the PIN file", label)
	case pkcs11.CKR_PIN_EXPIRED:
		return kindErr(ErrLogin, "the PIN of token %q has expired; change it with the token's tools (e.g. pkcs11-tool --change-pin)", label)
	case pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_DEVICE_REMOVED:
		return notPresent(label, "logging in", err)
	}
	return kindErr(ErrLogin, "logging in to token %q: %w", label, err)
}

func notPresent(label, op string, cause error) error {
	return causeErr(ErrTokenNotPresent, cause, "token %q went away while %s; reconnect the token (or check the HSM's network link) and retry", label, op)
}

// opError gives a PKCS#11 failure during op its token context and a hint.
func (t *token) opError(op string, err error) error {
	var code pkcs11.Error
	if !errors.As(err, &code) {
		return fmt.Errorf("%s on token %q: %w", op, t.label, err)
	}
	switch code {
	case pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_DEVICE_REMOVED:
		return notPresent(t.label, op, err)
	case pkcs11.CKR_USER_NOT_LOGGED_IN:
		return causeErr(ErrLogin, err, "token %q is no longer logged in while %s (was it reset or reconnected?); run the command again", t.label, op)
	case pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_DEVICE_MEMORY, pkcs11.CKR_GENERAL_ERROR:
		return fmt.Errorf("token %q failed while %s (%w); check the HSM's health and logs", t.label, op, err)
	}
	return fmt.Errorf("%s on token %q: %w", op, t.label, err)
}

func isCode(err error, code pkcs11.Error) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && e == code
}

// kindError is an error of one of the sentinel kinds above whose message
// does not repeat the sentinel's text; cause, if set, is in the chain but
// not in the message (a PKCS#11 code, errLost).
type kindError struct {
	kind  error
	err   error
	cause error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind, e.err}
	}
	return []error{e.kind, e.err, e.cause}
}

func kindErr(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

func causeErr(kind, cause error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...), cause: cause}
}

// Preload loads (dlopen) the module a key without module-path would use:
// MCUSIGN_PKCS11_MODULE, else SoftHSM2. A daemon started for one command
// calls it while it sets up its socket, so that the command's first
// lookup does not wait for the library and what it links (2–3 ms of an
// on-demand command with SoftHSM2). It does not initialise the module; a
// key with its own module-path leaves the preloaded one unused. Errors
// are left for that lookup to report.
func Preload() {
	_, _ = moduleFor(&URI{})
}
