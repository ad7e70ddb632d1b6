// Package daemon is mcusignd's policy: who may connect, which key URIs a
// client may use, limits (image size, request deadline, concurrency), and
// the audit record that every signature waits for. It implements
// plugin.Service over a Backend (PKCS#11 through pkcs11key in mcusignd), so
// all of it is testable without a socket or a token.
//
// It must not import the go-plugin transport beyond plugin's Service types,
// nor any command.
package daemon

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/mcusign/mcusign/cmd/internal/daemon/audit"
	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/plugin/peercred"
	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key"
)

// Mode is how the daemon runs.
type Mode string

const (
	// Standing is a long-running daemon shared by builds: it uses only its
	// own module and PIN and checks every peer.
	Standing Mode = "standing"
	// OnDemand is a subprocess launched by one mcusign command of the same
	// user: client URIs are used as given.
	OnDemand Mode = "on-demand"
)

// Defaults for Config's limits.
const (
	DefaultMaxImageSize   = 32 << 20
	DefaultRequestTimeout = time.Minute
)

// Config is the daemon's policy.
type Config struct {
	Mode    Mode
	Version string
	Backend Backend
	Audit   *audit.Log

	// Module is the PKCS#11 library of a standing daemon; it is put into
	// every URI (clients may not name one).
	Module string
	// Tokens, if set, are the only tokens a standing daemon serves; a URI
	// without token= gets the only one.
	Tokens []string
	// Access decides which peers may connect (standing mode).
	Access Access
	// Peer is the client of an on-demand daemon (its parent), whose calls
	// carry no peer credentials.
	Peer *peercred.Cred

	MaxImageSize   int64         // 0: DefaultMaxImageSize
	RequestTimeout time.Duration // 0: DefaultRequestTimeout
	MaxConcurrent  int           // 0: pkcs11key.SessionPoolSize
	AllowKeygen    bool          // standing daemons generate keys only if set

	// HoldSign makes Sign wait, after receiving the image, until its
	// request ends or the daemon starts draining: a test hook to stop the
	// daemon (SIGKILL, SIGTERM) with a request in flight.
	HoldSign bool
	// Logf receives the daemon's diagnostics; nil discards them.
	Logf func(format string, args ...any)
	// Publish, if set, receives the signing keys described to clients so
	// far, each under the URI a client asked for it by, whenever that list
	// changes (a standing daemon puts them in its descriptor). Calls come
	// one at a time, each with the whole list.
	Publish func([]plugin.PublishedKey)
}

// Service implements plugin.Service with Config's policy.
type Service struct {
	cfg      Config
	started  time.Time
	sem      chan struct{}
	draining chan struct{}
	drainOne sync.Once

	inFlight           atomic.Int32
	signOK, signFailed atomic.Uint64
	keysGenerated      atomic.Uint64
	connRefused        atomic.Uint64
	reqRefused         atomic.Uint64

	mu    sync.Mutex
	keys  map[string]*openKey  // open keys by the URI they were opened with
	usage map[string]*keyUsage // by canonical key URI

	pubMu     sync.Mutex                     // serializes Publish calls
	published map[string]plugin.PublishedKey // by the URI clients use; under mu
}

type keyUsage struct {
	info plugin.KeyInfo
	n    uint64
}

var _ plugin.Service = (*Service)(nil)

// New checks cfg and returns the service.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Mode != Standing && cfg.Mode != OnDemand:
		return nil, fmt.Errorf("unknown daemon mode %q", cfg.Mode)
	case cfg.Backend == nil || cfg.Audit == nil:
		return nil, errors.New("daemon: a backend and an audit log are required")
	case cfg.Mode == Standing && cfg.Module == "":
		return nil, errors.New("daemon: a standing daemon needs its PKCS#11 module")
	}
	if cfg.MaxImageSize <= 0 {
		cfg.MaxImageSize = DefaultMaxImageSize
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = pkcs11key.SessionPoolSize
	}
	if cfg.MaxConcurrent > pkcs11key.SessionPoolSize {
		return nil, fmt.Errorf("--max-concurrent %d exceeds the %d PKCS#11 sessions mcusignd keeps per token; use at most %d", cfg.MaxConcurrent, pkcs11key.SessionPoolSize, pkcs11key.SessionPoolSize)
	}
	if cfg.Mode == OnDemand {
		cfg.AllowKeygen = true // the user's own token, as with in-process keygen
	}
	return &Service{
		cfg:      cfg,
		started:  time.Now(),
		sem:      make(chan struct{}, cfg.MaxConcurrent),
		draining: make(chan struct{}),
		keys:     map[string]*openKey{},
		usage:    map[string]*keyUsage{},

		published: map[string]plugin.PublishedKey{},
	}, nil
}

func (s *Service) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// record appends r to the audit log; a record that cannot be written is
// reported on the daemon's log (the caller decides whether to fail).
func (s *Service) record(r audit.Record) (uint64, error) {
	r.Mode = string(s.cfg.Mode)
	seq, err := s.cfg.Audit.Append(r)
	if err != nil {
		s.logf("AUDIT FAILURE: %v (record: event %s, result %s)", err, r.Event, r.Result)
	}
	return seq, err
}

func auditPeer(c *peercred.Cred) *audit.Peer {
	if c == nil {
		return nil
	}
	return &audit.Peer{UID: c.UID, GID: c.GID, PID: c.PID, Exe: c.Exe}
}

// peer is the caller of an RPC: from its connection's credentials, else
// the on-demand parent.
func (s *Service) peer(ctx context.Context) *peercred.Cred {
	if c, ok := peercred.FromContext(ctx); ok {
		return c
	}
	return s.cfg.Peer
}

// Drain tells the service the daemon is stopping: requests in flight
// finish (the transport refuses new ones).
func (s *Service) Drain() { s.drainOne.Do(func() { close(s.draining) }) }

// Admit is the connection check of a standing daemon (peer credentials,
// before any RPC). Refusals are audited.
func (s *Service) Admit(c *peercred.Cred) error {
	err := s.cfg.Access.Check(c)
	if err == nil {
		return nil
	}
	s.connRefused.Add(1)
	s.logf("refused a connection from %s: %v", c, err)
	_, _ = s.record(audit.Record{Event: audit.EventConnectionRefused, Peer: auditPeer(c), Result: audit.ResultRefused, Error: err.Error()})
	return err
}

// ShutdownRefused audits a client's attempt to stop a standing daemon
// through go-plugin's controller.
func (s *Service) ShutdownRefused(ctx context.Context, method string) {
	s.reqRefused.Add(1)
	c := s.peer(ctx)
	s.logf("refused %s from %s: clients cannot stop a standing daemon", method, c)
	_, _ = s.record(audit.Record{Event: audit.EventRequestRefused, Peer: auditPeer(c), Method: method, Result: audit.ResultRefused,
		Error: "a standing mcusignd cannot be shut down by its clients"})
}

// safeURI is a URI fit for the audit trail and messages: parsed and
// re-printed (pin-value redacted), or only its path part if it does not
// parse (the query could hold a PIN).
func safeURI(raw string) string {
	if u, err := pkcs11key.ParseURI(raw); err == nil {
		return u.String()
	}
	p, _, _ := strings.Cut(raw, "?")
	if len(p) > 200 {
		p = p[:200]
	}
	return p + " (invalid)"
}

// keyURI applies the URI policy and returns the URI to hand to the backend.
// A standing daemon refuses module-path, pin-source and pin-value (a
// client-chosen module would make the daemon load arbitrary code, and the
// PIN is the daemon's), puts in its own module, and keeps to its tokens.
func (s *Service) keyURI(raw string) (string, error) {
	u, err := pkcs11key.ParseURI(raw)
	if err != nil {
		return "", plugin.WithCode(codes.InvalidArgument, err)
	}
	if s.cfg.Mode != Standing {
		return raw, nil
	}
	var bad []string
	if u.ModulePath != "" {
		bad = append(bad, "module-path")
	}
	if u.PINSource != "" {
		bad = append(bad, "pin-source")
	}
	if u.HasPINValue() {
		bad = append(bad, "pin-value")
	}
	if len(bad) > 0 {
		return "", &refusal{plugin.Errorf(codes.PermissionDenied, "mcusignd refuses %s in key URIs: it uses its own PKCS#11 module and PIN; remove %s from the URI", strings.Join(bad, ", "), strings.Join(bad, " and "))}
	}
	if len(s.cfg.Tokens) > 0 {
		switch {
		case u.Token == "" && len(s.cfg.Tokens) == 1:
			u.Token = s.cfg.Tokens[0]
		case u.Token == "":
			return "", plugin.Errorf(codes.InvalidArgument, "this mcusignd serves tokens %s; add token=<label> to the URI", strings.Join(s.cfg.Tokens, ", "))
		case !contains(s.cfg.Tokens, u.Token):
			return "", &refusal{plugin.Errorf(codes.PermissionDenied, "this mcusignd serves only token %s, not %q; use a key on that token", strings.Join(s.cfg.Tokens, ", "), u.Token)}
		}
	}
	u.ModulePath = s.cfg.Module
	return u.String(), nil
}

// refusal marks an error as a policy decision (audited and counted as a
// refusal), as opposed to a failure.
type refusal struct{ err *plugin.Error }

func (r *refusal) Error() string { return r.err.Msg }
func (r *refusal) Unwrap() error { return r.err }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// acquire takes one of the MaxConcurrent token slots.
func (s *Service) acquire(ctx context.Context) (func(), error) {
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem }, nil
	case <-ctx.Done():
		return nil, plugin.Errorf(codes.DeadlineExceeded, "mcusignd is busy: all %d token sessions stayed in use until the request deadline (%s); retry later or raise --max-concurrent", s.cfg.MaxConcurrent, s.cfg.RequestTimeout)
	}
}

// backendErr is backendErr, and puts token faults (a token that went
// away, a key that changed under its label) on the daemon's log: they need
// an operator, and read-only lookups are not audited.
func (s *Service) backendErr(err error) error {
	if errors.Is(err, pkcs11key.ErrTokenNotPresent) || errors.Is(err, pkcs11key.ErrKeyChanged) {
		s.logf("TOKEN FAULT: %v", err)
	}
	return backendErr(err)
}

// backendErr gives a token error the gRPC code that fits it.
func backendErr(err error) error {
	var pe *plugin.Error
	if errors.As(err, &pe) {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, pkcs11key.ErrBadURI):
		code = codes.InvalidArgument
	case errors.Is(err, pkcs11key.ErrKeyNotFound), errors.Is(err, pkcs11key.ErrTokenNotFound):
		code = codes.NotFound
	case errors.Is(err, pkcs11key.ErrKeyExists):
		code = codes.AlreadyExists
	case errors.Is(err, pkcs11key.ErrWrongKeyType), errors.Is(err, pkcs11key.ErrAmbiguousKey),
		errors.Is(err, pkcs11key.ErrNoPublicKey), errors.Is(err, signer.ErrUnsupportedKey),
		errors.Is(err, pkcs11key.ErrKeyChanged):
		code = codes.FailedPrecondition
	case errors.Is(err, pkcs11key.ErrWrongPIN), errors.Is(err, pkcs11key.ErrPINLocked),
		errors.Is(err, pkcs11key.ErrLogin), errors.Is(err, pkcs11key.ErrNoPIN),
		errors.Is(err, pkcs11key.ErrModule), errors.Is(err, pkcs11key.ErrTokenNotPresent):
		code = codes.FailedPrecondition
	}
	return plugin.WithCode(code, err)
}

// Fingerprint identifies a public key in the audit trail and status:
// SHA-256 of the encoding MCUboot embeds (what getpubhash prints).
func Fingerprint(pub crypto.PublicKey) string {
	b, err := signer.PublicKeyBytes(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// isFingerprint reports whether s has Fingerprint's form.
func isFingerprint(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 2*sha256.Size {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func keyInfo(k *pkcs11key.KeyInfo) plugin.KeyInfo {
	out := plugin.KeyInfo{
		Type: k.Type, Algorithm: k.Algorithm, Label: k.Label, ID: k.ID, Token: k.Token,
		Serial: k.Serial, URI: k.URI, Public: k.Public,
		HasPrivate: k.HasPrivate, HasPublicObject: k.HasPublicObject,
		Sign: k.Sign, Sensitive: k.Sensitive, Extractable: k.Extractable,
		AlwaysSensitive: k.AlwaysSensitive, NeverExtractable: k.NeverExtractable,
		Local: k.Local, AlwaysAuthenticate: k.AlwaysAuthenticate,
	}
	if k.PublicErr != nil {
		out.PublicErr = k.PublicErr.Error()
	}
	if k.Public != nil {
		out.Fingerprint = Fingerprint(k.Public)
	}
	return out
}

// openKey is an open key and what every request with it needs, worked
// out once: its URI and fingerprint, and its description for lookups.
type openKey struct {
	BackendKey
	uri, fingerprint string

	mu   sync.Mutex
	info *plugin.KeyInfo // as the token described it when first looked up
}

// describe is the key's description for signing clients (OpenKey), read
// from the token on the first lookup. A key that stops working is
// forgotten (see forget), so the next lookup reads it afresh.
func (k *openKey) describe(ctx context.Context) (*plugin.KeyInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.info == nil {
		info, err := k.Info(ctx)
		if err != nil {
			return nil, err
		}
		ki := keyInfo(info)
		k.info = &ki
	}
	ki := *k.info
	return &ki, nil
}

// described is the description of the key uri names if it is open and
// was described already, else nil.
func (s *Service) described(uri string) *plugin.KeyInfo {
	s.mu.Lock()
	k := s.keys[uri]
	s.mu.Unlock()
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.info == nil {
		return nil
	}
	ki := *k.info
	return &ki
}

// key opens (once) the key a backend URI names.
func (s *Service) key(ctx context.Context, uri string) (*openKey, error) {
	s.mu.Lock()
	k := s.keys[uri]
	s.mu.Unlock()
	if k != nil {
		return k, nil
	}
	bk, err := s.cfg.Backend.Open(ctx, uri)
	if err != nil {
		return nil, s.backendErr(err)
	}
	k = &openKey{BackendKey: bk, uri: bk.URI(), fingerprint: Fingerprint(bk.Public())}
	s.mu.Lock()
	s.keys[uri] = k
	if s.usage[k.uri] == nil {
		info := plugin.KeyInfo{Type: k.Type(), Label: k.Label(), Token: k.Token(), URI: k.uri, Public: k.Public(),
			Fingerprint: k.fingerprint, HasPrivate: true}
		s.usage[k.uri] = &keyUsage{info: info}
	}
	s.mu.Unlock()
	return k, nil
}

func (s *Service) forget(uri string) {
	s.mu.Lock()
	delete(s.keys, uri)
	s.mu.Unlock()
}

// signatureType names the scheme MCUboot checks, for the audit trail.
func signatureType(kt signer.KeyType, pure bool) string {
	switch kt {
	case signer.RSA2048, signer.RSA3072:
		return "RSA-PSS-SHA256"
	case signer.ECDSAP256:
		return "ECDSA-P256"
	case signer.ECDSAP384:
		return "ECDSA-P384"
	case signer.Ed25519:
		if pure {
			return "Ed25519-pure"
		}
		return "Ed25519"
	}
	return string(kt)
}

func hashName(h crypto.Hash) string {
	switch h {
	case crypto.SHA256:
		return "sha256"
	case crypto.SHA384:
		return "sha384"
	case crypto.SHA512:
		return "sha512"
	}
	return h.String()
}

// Sign implements plugin.Service. The signature is returned only after its
// audit record is on disk; if the record cannot be written, the request
// fails. Every outcome is recorded.
func (s *Service) Sign(ctx context.Context, in plugin.SignInput) (*plugin.SignOutput, error) {
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	rec := audit.Record{Event: audit.EventSign, Peer: auditPeer(s.peer(ctx)), KeyURI: safeURI(in.KeyURI)}
	out, err := s.sign(ctx, in, &rec)
	if err == nil {
		s.signOK.Add(1)
		s.mu.Lock()
		if u := s.usage[rec.KeyURI]; u != nil {
			u.n++
		}
		s.mu.Unlock()
		return out, nil
	}
	s.signFailed.Add(1)
	var ae *auditError
	if errors.As(err, &ae) {
		return nil, plugin.Errorf(codes.Internal, "mcusignd cannot write its audit log (%v), and it issues no signature without a record; fix the audit log (disk space, permissions) and retry", ae.err)
	}
	rec.Result = audit.ResultError
	var r *refusal
	if errors.As(err, &r) {
		rec.Result = audit.ResultRefused
		s.reqRefused.Add(1)
	}
	rec.Error = err.Error()
	_, _ = s.record(rec)
	return nil, err
}

// committed is the outcome of appending an audit record.
type committed struct {
	seq uint64
	err error
}

// auditError is a sign request that failed because its record could not
// be made durable.
type auditError struct{ err error }

func (e *auditError) Error() string { return "audit log: " + e.err.Error() }

func (s *Service) sign(ctx context.Context, in plugin.SignInput, rec *audit.Record) (*plugin.SignOutput, error) {
	uri, err := s.keyURI(in.KeyURI)
	if err != nil {
		return nil, err
	}
	switch in.Hash {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return nil, plugin.Errorf(codes.InvalidArgument, "unsupported image hash %v; MCUboot images use SHA-256, SHA-384 or SHA-512", in.Hash)
	}
	if in.Size <= 0 {
		return nil, plugin.Errorf(codes.InvalidArgument, "empty sign request: no image bytes were declared")
	}
	if in.KeyFingerprint != "" && !isFingerprint(in.KeyFingerprint) {
		// Checked here, not only compared: the refusal of a mismatch
		// quotes it to the user and the audit trail.
		return nil, plugin.Errorf(codes.InvalidArgument, "malformed key fingerprint in the sign request (want sha256: and 64 lowercase hex digits); this client does not speak mcusignd's protocol, use the matching mcusign")
	}
	if in.Size > s.cfg.MaxImageSize {
		return nil, plugin.Errorf(codes.InvalidArgument, "image of %d bytes exceeds this mcusignd's limit of %d bytes; raise --max-image-size if the image is right", in.Size, s.cfg.MaxImageSize)
	}
	var tm plugin.SignTiming
	t := time.Now()
	payload, err := in.Read(ctx)
	if err != nil {
		// err is checked as well as ctx (see SignInput.Read).
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled):
			return nil, plugin.Errorf(codes.Canceled, "the client went away before it had sent the whole image")
		case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
			return nil, plugin.Errorf(codes.DeadlineExceeded, "the image did not arrive within mcusignd's request deadline (%s)", s.cfg.RequestTimeout)
		}
		return nil, backendErr(err)
	}
	tm.Receive, t = time.Since(t), time.Now()
	region, err := signer.ParseSignedRegion(payload)
	if err != nil {
		return nil, plugin.Errorf(codes.InvalidArgument, "mcusignd signs only MCUboot images: %v", err)
	}
	d := in.Hash.New()
	d.Write(payload)
	digest := d.Sum(nil)
	rec.Image = &audit.Image{
		Digest: hex.EncodeToString(digest), Hash: hashName(in.Hash), Version: region.Version.String(),
		Size: len(payload), HdrSize: region.HdrSize, ImgSize: region.ImgSize,
		Flags: region.Flags, FlagNames: signer.FlagNames(region.Flags), Pure: in.Pure, BigEndian: region.BigEndian,
	}
	if len(in.Digest) > 0 && hex.EncodeToString(in.Digest) != rec.Image.Digest {
		return nil, plugin.Errorf(codes.InvalidArgument, "the client's digest does not match the image bytes mcusignd received; retry")
	}
	if s.cfg.HoldSign {
		s.logf("test hook: holding a sign request until it ends or the daemon drains")
		select {
		case <-ctx.Done():
			return nil, plugin.Errorf(codes.DeadlineExceeded, "test hook: the sign request was held until it ended")
		case <-s.draining:
		}
	}
	tm.Hash, t = time.Since(t), time.Now()
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	tm.Queue, t = time.Since(t), time.Now()
	k, err := s.key(ctx, uri)
	if err != nil {
		return nil, err
	}
	rec.KeyURI, rec.KeyType = k.uri, string(k.Type())
	rec.KeyFingerprint = k.fingerprint
	if in.KeyFingerprint != "" && in.KeyFingerprint != k.fingerprint {
		s.unpublish(in.KeyURI)
		return nil, &refusal{plugin.Errorf(codes.FailedPrecondition, "the key %s is not the one the image was built for (%s, its fingerprint now %s): it changed in the token; run the command again", safeURI(in.KeyURI), in.KeyFingerprint, k.fingerprint)}
	}
	rec.SignatureType = signatureType(k.Type(), in.Pure)
	// The signature leaves the daemon only once its record is durable; the
	// record is written before the token's answer is known, and should the
	// token fail after it, a second record voids it.
	okRec := *rec
	okRec.Result = audit.ResultOK
	req := signer.SignRequest{Payload: payload, Digest: digest, Hash: in.Hash, Pure: in.Pure}
	var sig []byte
	var a committed
	if s.inFlight.Load() > 1 {
		// Other requests are in flight and keep the CPUs busy while this
		// one waits for its fsync: the record is made durable first, and
		// the token is not asked for a signature the log has no room for.
		a.seq, a.err = s.record(okRec)
		tm.Audit, t = time.Since(t), time.Now()
		if a.err != nil {
			return nil, &auditError{a.err}
		}
		sig, err = k.Sign(ctx, req)
		tm.Token = time.Since(t)
	} else {
		// Alone, the record is written and fsynced while the token signs,
		// so the fsync's latency hides behind the token's. (With others in
		// flight that costs more than it hides: the second thread it takes
		// is CPU the other requests need; measured in docs/performance.md.)
		audited := make(chan committed, 1)
		go func() {
			var c committed
			c.seq, c.err = s.record(okRec)
			audited <- c
		}()
		sig, err = k.Sign(ctx, req)
		tm.Token, t = time.Since(t), time.Now()
		a = <-audited
		tm.Audit = time.Since(t)
	}
	if err != nil {
		// The key may be gone or its session broken: look it up afresh
		// next time, and so must clients.
		s.forget(uri)
		s.unpublish(in.KeyURI)
		if a.err == nil {
			rec.Voids = a.seq
		}
		return nil, s.backendErr(err)
	}
	if a.err != nil {
		return nil, &auditError{a.err}
	}
	return &plugin.SignOutput{Signature: sig, Digest: digest, KeyType: k.Type(), Fingerprint: rec.KeyFingerprint,
		AuditSeq: a.seq, Timing: tm}, nil
}

// refused audits a policy refusal of a request that is otherwise not
// audited (lookups, listings).
func (s *Service) refused(ctx context.Context, method, uri string, err error) {
	var r *refusal
	if !errors.As(err, &r) {
		return
	}
	s.reqRefused.Add(1)
	_, _ = s.record(audit.Record{Event: audit.EventRequestRefused, Peer: auditPeer(s.peer(ctx)), Method: method,
		KeyURI: safeURI(uri), Result: audit.ResultRefused, Error: err.Error()})
}

// PublicKey implements plugin.Service.
func (s *Service) PublicKey(ctx context.Context, raw string, purpose plugin.KeyPurpose) (*plugin.KeyInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	uri, err := s.keyURI(raw)
	if err != nil {
		s.refused(ctx, "public-key", raw, err)
		return nil, err
	}
	if purpose == plugin.PurposeSign {
		// Every signing command starts with this lookup; a key already
		// opened and described is answered from memory, without a token
		// slot, so commands do not queue behind other builds' signatures.
		if ki := s.described(uri); ki != nil {
			s.publish(raw, ki)
			return ki, nil
		}
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	switch purpose {
	case plugin.PurposeSign:
		k, err := s.key(ctx, uri)
		if err != nil {
			return nil, err
		}
		ki, err := k.describe(ctx)
		if err != nil {
			s.forget(uri)
			return nil, s.backendErr(err)
		}
		s.publish(raw, ki)
		return ki, nil
	case plugin.PurposePublic:
		pub, err := s.cfg.Backend.PublicKey(ctx, uri)
		if err != nil {
			return nil, backendErr(err)
		}
		kt, err := signer.TypeOf(pub)
		if err != nil {
			return nil, backendErr(err)
		}
		return &plugin.KeyInfo{Type: kt, Public: pub, URI: safeURI(raw), Fingerprint: Fingerprint(pub)}, nil
	case plugin.PurposeDescribe:
		info, err := s.cfg.Backend.Info(ctx, uri)
		if err != nil {
			return nil, backendErr(err)
		}
		ki := keyInfo(info)
		return &ki, nil
	}
	return nil, plugin.Errorf(codes.InvalidArgument, "unknown key purpose %d", purpose)
}

// ListKeys implements plugin.Service.
func (s *Service) ListKeys(ctx context.Context, raw string) ([]plugin.KeyInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	uri, err := s.keyURI(raw)
	if err != nil {
		s.refused(ctx, "list-keys", raw, err)
		return nil, err
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	infos, err := s.cfg.Backend.List(ctx, uri)
	if err != nil {
		return nil, backendErr(err)
	}
	out := make([]plugin.KeyInfo, 0, len(infos))
	for i := range infos {
		out = append(out, keyInfo(&infos[i]))
	}
	return out, nil
}

// GenerateKey implements plugin.Service. A standing daemon generates keys
// only with AllowKeygen: a build that may sign should not be able to add
// keys to the release token. Every outcome is audited.
func (s *Service) GenerateKey(ctx context.Context, raw string, kt signer.KeyType) (*plugin.KeyInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	rec := audit.Record{Event: audit.EventGenerateKey, Peer: auditPeer(s.peer(ctx)), KeyURI: safeURI(raw), KeyType: string(kt)}
	ki, err := s.generate(ctx, raw, kt, &rec)
	if err != nil {
		rec.Result, rec.Error = audit.ResultError, err.Error()
		var r *refusal
		if errors.As(err, &r) {
			rec.Result = audit.ResultRefused
			s.reqRefused.Add(1)
		}
		_, _ = s.record(rec)
		return nil, err
	}
	rec.Result = audit.ResultOK
	if _, err := s.record(rec); err != nil {
		return nil, plugin.Errorf(codes.Internal, "key %s was generated, but mcusignd cannot write its audit log (%v); fix the audit log", ki.URI, err)
	}
	s.keysGenerated.Add(1)
	return ki, nil
}

func (s *Service) generate(ctx context.Context, raw string, kt signer.KeyType, rec *audit.Record) (*plugin.KeyInfo, error) {
	if !s.cfg.AllowKeygen {
		return nil, &refusal{plugin.Errorf(codes.PermissionDenied, "this mcusignd does not generate keys; generate them with the token's administrator tools, or restart mcusignd with --allow-keygen")}
	}
	uri, err := s.keyURI(raw)
	if err != nil {
		return nil, err
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	k, err := s.cfg.Backend.Generate(ctx, uri, kt)
	if err != nil {
		return nil, backendErr(err)
	}
	rec.KeyURI, rec.KeyFingerprint = k.URI(), Fingerprint(k.Public())
	info, err := k.Info(ctx)
	if err != nil {
		return nil, backendErr(err)
	}
	ki := keyInfo(info)
	return &ki, nil
}

// Status implements plugin.Service. Keys are those of the configured
// tokens, else those used since the daemon started, with their signature
// counts.
func (s *Service) Status(ctx context.Context) (*plugin.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	seq, head := s.cfg.Audit.Head()
	st := &plugin.Status{
		Version: s.cfg.Version, Mode: string(s.cfg.Mode), PID: pid(),
		Started: s.started, Uptime: time.Since(s.started),
		Module: s.cfg.Module, Tokens: s.cfg.Tokens, AuditLog: s.cfg.Audit.Path(),
		AuditRecords: seq, AuditHead: head,
		SignaturesOK: s.signOK.Load(), SignaturesFailed: s.signFailed.Load(),
		KeysGenerated: s.keysGenerated.Load(), ConnectionsRefused: s.connRefused.Load(),
		RequestsRefused: s.reqRefused.Load(), InFlight: int(s.inFlight.Load()),
		MaxConcurrent: s.cfg.MaxConcurrent, MaxImageSize: s.cfg.MaxImageSize,
		RequestTimeout: s.cfg.RequestTimeout, KeygenAllowed: s.cfg.AllowKeygen,
	}
	seen := map[string]bool{}
	for _, t := range s.cfg.Tokens {
		uri := pkcs11key.URI{Token: t, ModulePath: s.cfg.Module}.String()
		release, err := s.acquire(ctx)
		if err != nil {
			return nil, err
		}
		infos, err := s.cfg.Backend.List(ctx, uri)
		release()
		if err != nil {
			return nil, backendErr(err)
		}
		for i := range infos {
			ki := keyInfo(&infos[i])
			s.mu.Lock()
			var n uint64
			if u := s.usage[ki.URI]; u != nil {
				n = u.n
			}
			s.mu.Unlock()
			seen[ki.URI] = true
			st.Keys = append(st.Keys, plugin.KeyStatus{Key: ki, Signatures: n})
		}
	}
	s.mu.Lock()
	var used []plugin.KeyStatus
	for uri, u := range s.usage {
		if !seen[uri] {
			used = append(used, plugin.KeyStatus{Key: u.info, Signatures: u.n})
		}
	}
	s.mu.Unlock()
	sort.Slice(used, func(i, j int) bool { return used[i].Key.URI < used[j].Key.URI })
	st.Keys = append(st.Keys, used...)
	return st, nil
}

// publish adds the signing key ki, which a client asked for by raw, to the
// published keys, if it is not there as it is.
func (s *Service) publish(raw string, ki *plugin.KeyInfo) {
	if s.cfg.Publish == nil || ki.Type == "" || ki.Public == nil || ki.Fingerprint == "" {
		return
	}
	s.mu.Lock()
	old, ok := s.published[raw]
	if ok && old.Fingerprint == ki.Fingerprint || !ok && len(s.published) >= plugin.MaxPublishedKeys {
		s.mu.Unlock()
		return
	}
	der, err := x509.MarshalPKIXPublicKey(ki.Public)
	if err != nil {
		s.mu.Unlock()
		return
	}
	s.published[raw] = plugin.PublishedKey{URI: raw, Type: string(ki.Type), PublicKey: der, Fingerprint: ki.Fingerprint}
	s.mu.Unlock()
	go s.sendPublished()
}

// unpublish drops the key published under raw: it changed, or may have,
// and clients must ask again. The list is handed over before unpublish
// returns, so that the client told of the failure does not find the key
// published when it runs again.
func (s *Service) unpublish(raw string) {
	if s.cfg.Publish == nil {
		return
	}
	s.mu.Lock()
	_, ok := s.published[raw]
	delete(s.published, raw)
	s.mu.Unlock()
	if ok {
		s.sendPublished()
	}
}

// sendPublished hands the current list to Publish; calls run one at a
// time, and each sends the list as it is then, so the last one wins.
func (s *Service) sendPublished() {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	s.mu.Lock()
	list := make([]plugin.PublishedKey, 0, len(s.published))
	for _, pk := range s.published {
		list = append(list, pk)
	}
	s.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].URI < list[j].URI })
	s.cfg.Publish(list)
}
