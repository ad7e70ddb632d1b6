package daemon

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/mcusign/mcusign/cmd/internal/daemon/audit"
	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/plugin/peercred"
	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key"
)

// fakeBackend holds software keys by label: the policy is tested here, the
// token in mcusignd's process tests.
type fakeBackend struct {
	keys map[string]crypto.Signer
	mu   sync.Mutex // lookups run concurrently
	uris []string   // every URI the backend was handed
}

type fakeKey struct {
	signer.CryptoKey
	label string
}

func (k fakeKey) Type() signer.KeyType { t, _ := signer.TypeOf(k.Public()); return t }
func (k fakeKey) URI() string          { return "pkcs11:token=t;object=" + k.label + ";type=private" }
func (k fakeKey) Label() string        { return k.label }
func (k fakeKey) Token() string        { return "t" }
func (k fakeKey) Info(context.Context) (*pkcs11key.KeyInfo, error) {
	return &pkcs11key.KeyInfo{Type: k.Type(), Label: k.label, Token: "t", URI: k.URI(), Public: k.Public(), HasPrivate: true, Sign: true}, nil
}

func (b *fakeBackend) lookup(uri string) (fakeKey, error) {
	b.mu.Lock()
	b.uris = append(b.uris, uri)
	b.mu.Unlock()
	u, err := pkcs11key.ParseURI(uri)
	if err != nil {
		return fakeKey{}, err
	}
	s, ok := b.keys[u.Object]
	if !ok {
		return fakeKey{}, pkcs11key.ErrKeyNotFound
	}
	return fakeKey{signer.CryptoKey{Signer: s}, u.Object}, nil
}
func (b *fakeBackend) Open(_ context.Context, uri string) (BackendKey, error) { return b.lookup(uri) }
func (b *fakeBackend) PublicKey(_ context.Context, uri string) (crypto.PublicKey, error) {
	k, err := b.lookup(uri)
	return k.Public(), err
}
func (b *fakeBackend) Info(ctx context.Context, uri string) (*pkcs11key.KeyInfo, error) {
	k, err := b.lookup(uri)
	if err != nil {
		return nil, err
	}
	return k.Info(ctx)
}
func (b *fakeBackend) List(ctx context.Context, uri string) ([]pkcs11key.KeyInfo, error) {
	ki, err := b.Info(ctx, "pkcs11:object=fw")
	if err != nil {
		return nil, err
	}
	return []pkcs11key.KeyInfo{*ki}, nil
}
func (b *fakeBackend) Generate(_ context.Context, uri string, kt signer.KeyType) (BackendKey, error) {
	u, _ := pkcs11key.ParseURI(uri)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b.keys[u.Object] = k
	return b.lookup(uri)
}

type fixture struct {
	svc     *Service
	backend *fakeBackend
	log     *audit.Log
	path    string
}

func newFixture(t *testing.T, mode Mode, mutate func(*Config)) *fixture {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := &fixture{backend: &fakeBackend{keys: map[string]crypto.Signer{"fw": key}}}
	f.path = filepath.Join(t.TempDir(), "audit.jsonl")
	var err error
	f.log, err = audit.Open(f.path)
	require.NoError(t, err)
	t.Cleanup(func() { f.log.Close() })
	cfg := Config{Mode: mode, Version: "test", Backend: f.backend, Audit: f.log, Module: "/lib/pkcs11.so",
		Access: Access{UIDs: []uint32{1000}}, Peer: &peercred.Cred{UID: 1000, PID: 42}}
	if mutate != nil {
		mutate(&cfg)
	}
	f.svc, err = New(cfg)
	require.NoError(t, err)
	return f
}

func (f *fixture) records(t *testing.T) []string {
	data, err := os.ReadFile(f.path)
	require.NoError(t, err)
	s := strings.TrimSpace(string(data))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// region is a real to-be-signed region (what the engine hands a Key).
func region(t *testing.T) []byte {
	o := signer.Options{Version: signer.Version{Major: 1, Minor: 2, Revision: 3}, HeaderSize: 0x200, PadHeader: true, Align: 1, Vector: "payload"}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	img, err := signer.Build(context.Background(), make([]byte, 3000), o, signer.CryptoKey{Signer: key}, nil)
	require.NoError(t, err)
	return img.Bytes
}

func input(uri string, payload []byte) plugin.SignInput {
	sum := sha256.Sum256(payload)
	return plugin.SignInput{KeyURI: uri, Hash: crypto.SHA256, Size: int64(len(payload)), Digest: sum[:],
		Read: func(context.Context) ([]byte, error) { return payload, nil }}
}

func TestSign(t *testing.T) {
	f := newFixture(t, Standing, func(c *Config) { c.Tokens = []string{"t"} })
	payload := region(t)
	out, err := f.svc.Sign(context.Background(), input("pkcs11:object=fw", payload))
	require.NoError(t, err)
	sum := sha256.Sum256(payload)
	pub := f.backend.keys["fw"].Public()
	require.NoError(t, signer.VerifySignature(pub, signer.SignRequest{Payload: payload, Digest: sum[:], Hash: crypto.SHA256}, out.Signature))
	require.Equal(t, Fingerprint(pub), out.Fingerprint)
	require.EqualValues(t, 1, out.AuditSeq)
	// The daemon's own module and token went to the backend.
	require.Equal(t, []string{"pkcs11:token=t;object=fw?module-path=/lib/pkcs11.so"}, f.backend.uris)

	recs := f.records(t)
	require.Len(t, recs, 1)
	for _, want := range []string{`"event":"sign"`, `"mode":"standing"`, `"uid":1000`, `"result":"ok"`,
		`"key_fingerprint":"` + out.Fingerprint, `"version":"1.2.3+0"`, `"size":` + strconv.Itoa(len(payload)), `"signature_type":"ECDSA-P256"`} {
		require.Contains(t, recs[0], want)
	}
	st, err := f.svc.Status(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 1, st.SignaturesOK)
	require.Len(t, st.Keys, 1)
	require.EqualValues(t, 1, st.Keys[0].Signatures)
}

// Each refusal is one line with the fix, has the right code, is audited,
// and never echoes a PIN.
func TestSignRefusals(t *testing.T) {
	const pin = "Pin-NEVER-PRINT-42"
	good := region(t)
	for _, tc := range []struct {
		name   string
		mode   Mode
		cfg    func(*Config)
		in     func() plugin.SignInput
		code   codes.Code
		want   string
		result string
	}{
		{"module-path", Standing, nil, func() plugin.SignInput { return input("pkcs11:object=fw?module-path=/tmp/evil.so", good) },
			codes.PermissionDenied, "refuses module-path", "refused"},
		{"pin-value", Standing, nil, func() plugin.SignInput { return input("pkcs11:object=fw?pin-value="+pin, good) },
			codes.PermissionDenied, "refuses pin-value", "refused"},
		{"pin-source", Standing, nil, func() plugin.SignInput { return input("pkcs11:object=fw?pin-source=/etc/pin", good) },
			codes.PermissionDenied, "refuses pin-source", "refused"},
		{"other token", Standing, func(c *Config) { c.Tokens = []string{"release"} }, func() plugin.SignInput { return input("pkcs11:token=dev;object=fw", good) },
			codes.PermissionDenied, "serves only token release", "refused"},
		{"bad URI", Standing, nil, func() plugin.SignInput { return input("pkcs11:object=fw;bogus=1?pin-value="+pin, good) },
			codes.InvalidArgument, "bogus", "error"},
		{"not an image", Standing, nil, func() plugin.SignInput { return input("pkcs11:object=fw", []byte(strings.Repeat("x", 100))) },
			codes.InvalidArgument, "signs only MCUboot images", "error"},
		{"whole image instead of region", Standing, nil, func() plugin.SignInput {
			return input("pkcs11:object=fw", append(append([]byte(nil), good...), 7, 0x69, 4, 0))
		},
			codes.InvalidArgument, "were sent", "error"},
		{"too large", Standing, func(c *Config) { c.MaxImageSize = 1000 }, func() plugin.SignInput { return input("pkcs11:object=fw", good) },
			codes.InvalidArgument, "--max-image-size", "error"},
		{"digest mismatch", Standing, nil, func() plugin.SignInput {
			in := input("pkcs11:object=fw", good)
			in.Digest = make([]byte, 32)
			return in
		}, codes.InvalidArgument, "digest does not match", "error"},
		{"unknown key", OnDemand, nil, func() plugin.SignInput { return input("pkcs11:object=nope", good) },
			codes.NotFound, "key not found", "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.mode, tc.cfg)
			_, err := f.svc.Sign(context.Background(), tc.in())
			require.Error(t, err)
			require.Equal(t, tc.code, statusCode(err), err.Error())
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "\n")
			require.NotContains(t, err.Error(), pin)
			recs := f.records(t)
			require.Len(t, recs, 1)
			require.Contains(t, recs[0], `"result":"`+tc.result+`"`)
			require.NotContains(t, recs[0], pin)
		})
	}
}

func statusCode(err error) codes.Code {
	var pe *plugin.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return codes.Unknown
}

// On-demand daemons serve the user's own URIs as given.
func TestOnDemandPassesURIs(t *testing.T) {
	f := newFixture(t, OnDemand, nil)
	uri := "pkcs11:object=fw?module-path=/usr/lib/x.so&pin-source=/home/me/pin"
	_, err := f.svc.Sign(context.Background(), input(uri, region(t)))
	require.NoError(t, err)
	require.Equal(t, []string{uri}, f.backend.uris)
	require.Contains(t, f.records(t)[0], `"pid":42`) // the launching parent
}

// How a request orders its audit record and the token's signature depends
// on whether other requests are in flight (written while the token signs
// when alone, first otherwise); the trail must not tell the difference.
var inFlightCases = []struct {
	name   string
	others int32
}{{"alone", 0}, {"others in flight", 1}}

// othersInFlight makes the service see n other sign requests in flight.
func (f *fixture) othersInFlight(t *testing.T, n int32) {
	f.svc.inFlight.Add(n)
	t.Cleanup(func() { f.svc.inFlight.Add(-n) })
}

// No signature leaves the daemon without its audit record; with others in
// flight, where the record is written first, the token is not even asked.
func TestNoSignatureWithoutRecord(t *testing.T) {
	for _, c := range inFlightCases {
		t.Run(c.name, func(t *testing.T) {
			f, b := newCountingFixture(t, nil)
			f.othersInFlight(t, c.others)
			require.NoError(t, f.log.Close())
			out, err := f.svc.Sign(context.Background(), input("pkcs11:object=fw", region(t)))
			require.Nil(t, out)
			require.ErrorContains(t, err, "issues no signature without a record")
			if c.others > 0 {
				require.Zero(t, b.total, "the token signed although the record could not be written")
			}
		})
	}
}

// Either order gives one record per signature, numbered as the reply says.
func TestSignRecordEitherOrder(t *testing.T) {
	var recs [2]audit.Record
	for i, c := range inFlightCases {
		t.Run(c.name, func(t *testing.T) {
			f, b := newCountingFixture(t, nil)
			f.othersInFlight(t, c.others)
			out, err := f.svc.Sign(context.Background(), input("pkcs11:object=fw", region(t)))
			require.NoError(t, err)
			require.Equal(t, 1, b.total)
			lines := f.records(t)
			require.Len(t, lines, 1)
			require.NoError(t, json.Unmarshal([]byte(lines[0]), &recs[i]))
			require.Equal(t, audit.ResultOK, recs[i].Result)
			require.Equal(t, recs[i].Seq, out.AuditSeq)
			require.Equal(t, hex.EncodeToString(out.Digest), recs[i].Image.Digest)
			require.Positive(t, out.Timing.Token)
		})
	}
	require.Equal(t, recs[0].SignatureType, recs[1].SignatureType)
	require.Equal(t, recs[0].Image.Size, recs[1].Image.Size)
}

func TestKeygenPolicy(t *testing.T) {
	f := newFixture(t, Standing, nil)
	_, err := f.svc.GenerateKey(context.Background(), "pkcs11:object=new", signer.ECDSAP256)
	require.ErrorContains(t, err, "--allow-keygen")
	f = newFixture(t, Standing, func(c *Config) { c.AllowKeygen = true })
	k, err := f.svc.GenerateKey(context.Background(), "pkcs11:object=new", signer.ECDSAP256)
	require.NoError(t, err)
	require.Equal(t, signer.ECDSAP256, k.Type)
	recs := f.records(t)
	require.Len(t, recs, 1)
	require.Contains(t, recs[0], `"event":"generate-key"`)
	require.Contains(t, recs[0], `"result":"ok"`)
}

func TestAdmit(t *testing.T) {
	f := newFixture(t, Standing, func(c *Config) { c.Access = Access{UIDs: []uint32{1000}, GIDs: []uint32{50}} })
	for _, tc := range []struct {
		name string
		c    peercred.Cred
		ok   bool
	}{
		{"listed uid", peercred.Cred{UID: 1000, GID: 1000}, true},
		{"primary group", peercred.Cred{UID: 2000, GID: 50}, true},
		{"supplementary group", peercred.Cred{UID: 2000, GID: 2000, Groups: []uint32{7, 50}}, true},
		{"root is not special", peercred.Cred{UID: 0, GID: 0}, false},
		{"other user", peercred.Cred{UID: 2000, GID: 2000, Groups: []uint32{7}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.svc.Admit(&tc.c)
			require.Equal(t, tc.ok, err == nil, "%v", err)
		})
	}
	recs := f.records(t)
	require.Len(t, recs, 2)
	require.Contains(t, recs[0], `"event":"connection-refused"`)
	require.Contains(t, recs[0], `"uid":0`)
}

// An upload that stalls ends at the request deadline, audited.
func TestRequestDeadline(t *testing.T) {
	f := newFixture(t, Standing, func(c *Config) { c.RequestTimeout = 50 * time.Millisecond })
	in := input("pkcs11:object=fw", region(t))
	in.Read = func(ctx context.Context) ([]byte, error) { <-ctx.Done(); return nil, ctx.Err() }
	_, err := f.svc.Sign(context.Background(), in)
	require.Equal(t, codes.DeadlineExceeded, statusCode(err), "%v", err)
	require.Contains(t, f.records(t)[0], "request deadline")
}

// A client that goes away mid-upload is reported as such even when the
// transport's error arrives before the cancellation reaches the request's
// ctx (CI caught that moment once as a "receiving the image" backend error).
func TestClientGoneMidUpload(t *testing.T) {
	for _, c := range []struct {
		name      string
		cancelled bool // the request's ctx has seen the cancellation
		read      func(context.Context) ([]byte, error)
	}{
		{"ctx already cancelled", true, func(ctx context.Context) ([]byte, error) { <-ctx.Done(); return nil, ctx.Err() }},
		{"ctx not yet cancelled", false, func(context.Context) ([]byte, error) {
			return nil, fmt.Errorf("receiving the image: %w", context.Canceled)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, Standing, nil)
			in := input("pkcs11:object=fw", region(t))
			in.Read = c.read
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.cancelled {
				cancel()
			}
			_, err := f.svc.Sign(ctx, in)
			require.Equal(t, codes.Canceled, statusCode(err), "%v", err)
			require.Contains(t, err.Error(), "went away")
			recs := f.records(t)
			require.Len(t, recs, 1)
			require.Contains(t, recs[0], `"result":"error"`)
			require.Contains(t, recs[0], "went away")
		})
	}
}

// newCountingFixture is a standing fixture whose backend counts signatures.
func newCountingFixture(t *testing.T, mutate func(*Config)) (*fixture, *countingBackend) {
	var b *countingBackend
	f := newFixture(t, Standing, func(c *Config) {
		b = &countingBackend{fakeBackend: c.Backend.(*fakeBackend)}
		c.Backend = b
		if mutate != nil {
			mutate(c)
		}
	})
	return f, b
}

// countingBackend records how many signatures run at once, and in all.
type countingBackend struct {
	*fakeBackend
	mu              sync.Mutex
	now, max, total int
}

type countingKey struct {
	BackendKey
	b *countingBackend
}

func (b *countingBackend) Open(ctx context.Context, uri string) (BackendKey, error) {
	k, err := b.fakeBackend.Open(ctx, uri)
	return countingKey{k, b}, err
}

func (k countingKey) Sign(ctx context.Context, req signer.SignRequest) ([]byte, error) {
	k.b.mu.Lock()
	k.b.now++
	k.b.total++
	k.b.max = max(k.b.max, k.b.now)
	k.b.mu.Unlock()
	defer func() { k.b.mu.Lock(); k.b.now--; k.b.mu.Unlock() }()
	runtime.Gosched()
	return k.BackendKey.Sign(ctx, req)
}

// A signing command's key lookup does not queue behind signatures: with
// every token slot taken, a key the daemon has described already is
// answered at once, and only a key it has never opened waits for a slot.
func TestLookupNeedsNoSlotOnceDescribed(t *testing.T) {
	f := newFixture(t, Standing, func(c *Config) { c.MaxConcurrent, c.RequestTimeout = 1, 200*time.Millisecond })
	ctx := context.Background()
	first, err := f.svc.PublicKey(ctx, "pkcs11:object=fw", plugin.PurposeSign)
	require.NoError(t, err)
	release, err := f.svc.acquire(ctx) // the only slot, as a long signature would hold it
	require.NoError(t, err)
	defer release()
	again, err := f.svc.PublicKey(ctx, "pkcs11:object=fw", plugin.PurposeSign)
	require.NoError(t, err)
	require.Equal(t, first, again)
	f.backend.keys["other"] = f.backend.keys["fw"]
	_, err = f.svc.PublicKey(ctx, "pkcs11:object=other", plugin.PurposeSign)
	require.Equal(t, codes.DeadlineExceeded, statusCode(err), "%v", err)
}

// No more than MaxConcurrent token operations run at once; the rest queue.
func TestBoundedConcurrency(t *testing.T) {
	f, cb := newCountingFixture(t, func(c *Config) { c.MaxConcurrent = 2 })
	payload := region(t)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.svc.Sign(context.Background(), input("pkcs11:object=fw", payload))
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, cb.max, 2)
	require.Len(t, f.records(t), 16)
	_, err := New(Config{Mode: OnDemand, Backend: cb, Audit: f.log, MaxConcurrent: pkcs11key.SessionPoolSize + 1})
	require.ErrorContains(t, err, "--max-concurrent")
}

// failingBackend's keys fail in the token, after the daemon has made the
// request's record durable.
type failingBackend struct{ *fakeBackend }

type failingKey struct{ BackendKey }

func (b failingBackend) Open(ctx context.Context, uri string) (BackendKey, error) {
	k, err := b.fakeBackend.Open(ctx, uri)
	return failingKey{k}, err
}

func (failingKey) Sign(context.Context, signer.SignRequest) ([]byte, error) {
	return nil, errors.New("CKR_DEVICE_ERROR")
}

// The record of a signature is written while the token signs; when the
// token then fails, a second record voids the first, so the trail counts
// exactly the signatures issued.
func TestTokenFailureVoidsRecord(t *testing.T) {
	for _, c := range inFlightCases {
		t.Run(c.name, func(t *testing.T) { testTokenFailureVoidsRecord(t, c.others) })
	}
}

func testTokenFailureVoidsRecord(t *testing.T, others int32) {
	f := newFixture(t, Standing, func(c *Config) { c.Backend = failingBackend{c.Backend.(*fakeBackend)} })
	f.othersInFlight(t, others)
	out, err := f.svc.Sign(context.Background(), input("pkcs11:object=fw", region(t)))
	require.Nil(t, out)
	require.ErrorContains(t, err, "CKR_DEVICE_ERROR")
	recs := f.records(t)
	require.Len(t, recs, 2)
	var first, second audit.Record
	require.NoError(t, json.Unmarshal([]byte(recs[0]), &first))
	require.NoError(t, json.Unmarshal([]byte(recs[1]), &second))
	require.Equal(t, audit.ResultOK, first.Result)
	require.NotNil(t, first.Image)
	require.Equal(t, audit.ResultError, second.Result)
	require.Equal(t, first.Seq, second.Voids)
	require.Contains(t, second.Error, "CKR_DEVICE_ERROR")
	require.Equal(t, first.Image.Digest, second.Image.Digest)
	st, err := f.svc.Status(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 0, st.SignaturesOK)
	require.EqualValues(t, 1, st.SignaturesFailed)
	var v audit.Verifier
	require.NoError(t, v.File(f.path, strings.NewReader(strings.Join(recs, "\n")+"\n")))
	require.Equal(t, 2, v.Summary().Records)
}

// A signing key described to a client is published, once, under the URI
// the client asked by (getpub lookups publish nothing); a signing request
// that names another fingerprint than the key's is refused before the
// token is asked, audited, and the key is unpublished, so that the next
// command asks again.
func TestPublishedKeys(t *testing.T) {
	lists := make(chan []plugin.PublishedKey, 8)
	f, cb := newCountingFixture(t, func(c *Config) { c.Publish = func(l []plugin.PublishedKey) { lists <- l } })
	ctx := context.Background()
	const uri = "pkcs11:object=fw"
	ki, err := f.svc.PublicKey(ctx, uri, plugin.PurposeSign)
	require.NoError(t, err)
	got := <-lists
	require.Len(t, got, 1)
	require.Equal(t, uri, got[0].URI)
	require.Equal(t, string(signer.ECDSAP256), got[0].Type)
	require.Equal(t, ki.Fingerprint, got[0].Fingerprint)
	pub, err := x509.ParsePKIXPublicKey(got[0].PublicKey)
	require.NoError(t, err)
	require.True(t, pub.(*ecdsa.PublicKey).Equal(ki.Public))

	_, err = f.svc.PublicKey(ctx, uri, plugin.PurposeSign)
	require.NoError(t, err)
	_, err = f.svc.PublicKey(ctx, "pkcs11:object=fw;type=private", plugin.PurposePublic)
	require.NoError(t, err)
	select {
	case l := <-lists:
		t.Fatalf("published again: %v", l)
	case <-time.After(100 * time.Millisecond):
	}

	in := input(uri, region(t))
	in.KeyFingerprint = ki.Fingerprint
	_, err = f.svc.Sign(ctx, in)
	require.NoError(t, err)
	in.KeyFingerprint = "sha256:" + strings.Repeat("0", 64)
	_, err = f.svc.Sign(ctx, in)
	require.Equal(t, codes.FailedPrecondition, statusCode(err), "%v", err)
	require.ErrorContains(t, err, "changed in the token; run the command again")
	require.Equal(t, 1, cb.total, "the token signed for a key the image was not built for")
	recs := f.records(t)
	require.Len(t, recs, 2)
	require.Contains(t, recs[1], `"result":"refused"`)
	require.Empty(t, <-lists, "the key stays published")

	// A fingerprint that is not one is refused as such, on one line that
	// does not repeat it (the client sent it; the refusal of a mismatch
	// quotes what it compares).
	for _, bad := range []string{"sha256:x\nforged line", "sha256:" + strings.Repeat("A", 64), "md5:" + strings.Repeat("0", 32), ki.Fingerprint + "0"} {
		in.KeyFingerprint = bad
		_, err = f.svc.Sign(ctx, in)
		require.Equal(t, codes.InvalidArgument, statusCode(err), "%q: %v", bad, err)
		require.ErrorContains(t, err, "malformed key fingerprint")
		require.NotContains(t, err.Error(), "forged")
	}
	require.Equal(t, 1, cb.total)
}

// A descriptor lists at most MaxPublishedKeys keys.
func TestPublishedKeysBounded(t *testing.T) {
	var mu sync.Mutex
	var last []plugin.PublishedKey
	f := newFixture(t, Standing, func(c *Config) {
		c.Publish = func(l []plugin.PublishedKey) { mu.Lock(); last = l; mu.Unlock() }
	})
	for i := 0; i <= plugin.MaxPublishedKeys; i++ {
		name := fmt.Sprintf("k%d", i)
		f.backend.keys[name] = f.backend.keys["fw"]
		_, err := f.svc.PublicKey(context.Background(), "pkcs11:object="+name, plugin.PurposeSign)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(last) == plugin.MaxPublishedKeys
	}, 5*time.Second, 10*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, last, plugin.MaxPublishedKeys)
}
