package daemon

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mcusign/mcusign/cmd/internal/daemon/audit"
	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/plugin/pb"
	"github.com/mcusign/mcusign/plugin/peercred"
	"github.com/mcusign/mcusign/signer"
)

// signStream is the server side of one Sign call as gRPC hands it to the
// handler: the client's messages in order, then io.EOF.
type signStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs []*pb.SignChunk
	resp *pb.SignResponse
}

func (s *signStream) Context() context.Context { return s.ctx }

func (s *signStream) Recv() (*pb.SignChunk, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

func (s *signStream) SendAndClose(r *pb.SignResponse) error {
	s.resp = r
	return nil
}

// fuzzMarker is put into pin-values: no error or audit record may show it.
const fuzzMarker = "NEVERPRINT"

// pinValueOnly reports whether the marker is in uri, and only as the start
// of a pin-value in the query.
func pinValueOnly(uri string) bool {
	q := strings.Index(uri, "?")
	pv := strings.Index(uri, "pin-value="+fuzzMarker)
	n := strings.Count(uri, fuzzMarker)
	return n > 0 && q >= 0 && pv > q && n == strings.Count(uri, "pin-value="+fuzzMarker)
}

// FuzzSignRequest drives mcusignd's request decoding end to end, from the
// gRPC messages of a Sign call (a SignStart, then data chunks) through the
// plugin adapter (plugin.NewServer) and the daemon's policy (URI rules,
// hash, declared size, limits, ParseSignedRegion, digest check) to the
// audit log, with a software key behind a fake backend. Properties: it never
// panics or hangs; a signature is returned only for bytes that are exactly
// a to-be-signed region, declared with their size, and only with its audit
// record written (the response names it); every request the service sees
// leaves exactly one record; every refusal carries a specific gRPC code and
// one line; a pin-value never reaches an error or the audit log; an image
// built for another key (SignStart.key_fingerprint) is never signed.
func FuzzSignRequest(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	backend := &fakeBackend{keys: map[string]crypto.Signer{"fw": key}}
	dir := f.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "mcusign-fuzz-"); err == nil { // fsync is free on tmpfs
		dir = shm
		f.Cleanup(func() { os.RemoveAll(shm) })
	}
	logPath := filepath.Join(dir, "audit.jsonl")
	alog, err := audit.Open(logPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { alog.Close() })
	svc, err := New(Config{Mode: Standing, Version: "fuzz", Backend: backend, Audit: alog, Module: "/lib/pkcs11.so",
		Tokens: []string{"t"}, Access: Access{UIDs: []uint32{1000}}, Peer: &peercred.Cred{UID: 1000, PID: 42},
		MaxImageSize: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	srv := plugin.NewServer(svc)

	o := signer.Options{Version: signer.Version{Major: 1, Minor: 2, Revision: 3}, HeaderSize: 0x200, PadHeader: true, Align: 1, Vector: "payload"}
	c := uint32(3)
	o.SecurityCounter = &c
	img, err := signer.Build(context.Background(), make([]byte, 700), o, signer.CryptoKey{Signer: key}, nil)
	if err != nil {
		f.Fatal(err)
	}
	good := img.Bytes
	o.BigEndian, o.SecurityCounter = true, nil
	img, err = signer.Build(context.Background(), []byte("tiny"), o, signer.CryptoKey{Signer: key}, nil)
	if err != nil {
		f.Fatal(err)
	}
	big := img.Bytes
	//         uri, hash, pure, sizeDelta, digestMode, region, chunk, restart, noStart, fpMode, fp
	f.Add("pkcs11:object=fw", uint8(1), false, int64(0), uint8(0), good, uint16(100), false, false, uint8(0), "")
	f.Add("pkcs11:token=t;object=fw", uint8(3), false, int64(0), uint8(1), big, uint16(0xffff), false, false, uint8(0), "")
	f.Add("pkcs11:object=fw", uint8(2), true, int64(0), uint8(0), good, uint16(7), false, false, uint8(0), "")
	f.Add("pkcs11:object=fw", uint8(1), false, int64(1), uint8(0), good, uint16(100), false, false, uint8(0), "")
	f.Add("pkcs11:object=fw", uint8(1), false, int64(-1), uint8(0), good, uint16(100), false, false, uint8(0), "")
	f.Add("pkcs11:object=fw", uint8(1), false, int64(-1<<40), uint8(0), good, uint16(100), false, false, uint8(0), "")
	f.Add("pkcs11:object=fw", uint8(0), false, int64(0), uint8(2), good, uint16(100), true, false, uint8(0), "")
	f.Add("pkcs11:object=fw", uint8(1), false, int64(0), uint8(0), good, uint16(100), false, true, uint8(0), "")
	f.Add("pkcs11:object=fw?pin-value="+fuzzMarker, uint8(1), false, int64(0), uint8(0), good, uint16(100), false, false, uint8(0), "")
	f.Add("pkcs11:object=fw;bad=1?pin-value="+fuzzMarker, uint8(1), false, int64(0), uint8(0), good, uint16(100), false, false, uint8(0), "")
	f.Add("pkcs11:token=other;object=fw?module-path=/tmp/x.so", uint8(1), false, int64(0), uint8(0), []byte{0x3d, 0xb8, 0xf3, 0x96}, uint16(1), false, false, uint8(0), "")
	f.Add("pkcs11:object=fw", uint8(1), false, int64(0), uint8(0), good, uint16(100), false, false, uint8(1), "")
	f.Add("pkcs11:object=fw", uint8(1), false, int64(0), uint8(0), good, uint16(100), false, false, uint8(2), "sha256:"+strings.Repeat("0", 64))
	f.Add("pkcs11:object=fw", uint8(1), false, int64(0), uint8(0), good, uint16(100), false, false, uint8(2), "sha256:x\nforged line")

	hashes := []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}
	keyFP := Fingerprint(key.Public())
	f.Fuzz(func(t *testing.T, uri string, hash uint8, pure bool, sizeDelta int64, digestMode uint8, region []byte, chunk uint16, restart, noStart bool, fpMode uint8, fp string) {
		backend.uris = backend.uris[:0]
		if seq, _ := alog.Head(); seq%500 == 0 && seq > 0 { // keep the log small; the chain continues
			if err := os.Remove(logPath); err != nil {
				t.Fatal(err)
			}
			if err := alog.Reopen(); err != nil {
				t.Fatal(err)
			}
		}
		pbHash := pb.HashAlgorithm(hash % 5)
		start := &pb.SignStart{KeyUri: uri, Hash: pbHash, Pure: pure, Size: uint64(int64(len(region)) + sizeDelta)}
		switch fpMode % 3 { // none, the key's, any string
		case 1:
			start.KeyFingerprint = keyFP
		case 2:
			start.KeyFingerprint = fp
		}
		if h := int(pbHash) - 1; h >= 0 && h < len(hashes) {
			switch digestMode % 3 {
			case 0:
				d := hashes[h].New()
				d.Write(region)
				start.Digest = d.Sum(nil)
			case 2:
				start.Digest = make([]byte, hashes[h].Size())
			}
		}
		var msgs []*pb.SignChunk
		if !noStart {
			msgs = append(msgs, &pb.SignChunk{Msg: &pb.SignChunk_Start{Start: start}})
		}
		n := int(chunk) + 1
		for p := region; len(p) > 0; {
			k := min(n, len(p))
			msgs = append(msgs, &pb.SignChunk{Msg: &pb.SignChunk_Data{Data: p[:k]}})
			p = p[k:]
			if restart {
				msgs = append(msgs, &pb.SignChunk{Msg: &pb.SignChunk_Start{Start: start}})
				restart = false
			}
		}
		before, _ := alog.Head()
		var logSize int64
		if st, err := os.Stat(logPath); err == nil {
			logSize = st.Size()
		}
		stream := &signStream{ctx: context.Background(), msgs: msgs}
		err := srv.Sign(stream)
		after, _ := alog.Head()

		if err == nil {
			if after != before+1 || stream.resp == nil || stream.resp.AuditSeq != after {
				t.Fatalf("a signature without its audit record (records %d -> %d, response %v)", before, after, stream.resp)
			}
			r, perr := signer.ParseSignedRegion(region)
			if noStart || perr != nil || r.Size() != len(region) || start.Size != uint64(len(region)) {
				t.Fatalf("signed %d bytes declared as %d that are not exactly a region: %v", len(region), start.Size, perr)
			}
			if start.KeyFingerprint != "" && start.KeyFingerprint != keyFP {
				t.Fatalf("signed an image built for key %q with key %s", start.KeyFingerprint, keyFP)
			}
			h := hashes[pbHash-1]
			d := h.New()
			d.Write(region)
			req := signer.SignRequest{Payload: region, Digest: d.Sum(nil), Hash: h, Pure: pure}
			if err := signer.VerifySignature(key.Public(), req, stream.resp.Signature); err != nil {
				t.Fatalf("the signature does not verify: %v", err)
			}
			return
		}
		s, _ := status.FromError(err)
		if s.Code() == codes.OK || s.Code() == codes.Unknown || strings.Contains(s.Message(), "\n") {
			t.Fatalf("refusal without a specific code or on several lines: %v", err)
		}
		// One record, or two when the token failed after the request's
		// record was made durable: the second voids the first.
		if after > before+2 || (after == before+2 && !voidsPrevious(t, logPath)) {
			t.Fatalf("one request made %d audit records", after-before)
		}
		if pinValueOnly(uri) {
			if strings.Contains(s.Message(), fuzzMarker) {
				t.Fatalf("the error shows the pin-value: %v", err)
			}
			data, err := os.ReadFile(logPath)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			// Only this request's record: earlier inputs may have put the
			// marker elsewhere in their URIs, legitimately.
			if int64(len(data)) >= logSize && strings.Contains(string(data[logSize:]), fuzzMarker) {
				t.Fatal("the audit log shows the pin-value")
			}
		}
	})
}

// voidsPrevious reports whether the log's last record voids the one
// before it.
func voidsPrevious(t *testing.T, logPath string) bool {
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 {
		return false
	}
	var prev, last audit.Record
	if json.Unmarshal([]byte(lines[len(lines)-2]), &prev) != nil || json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil {
		return false
	}
	return prev.Result == audit.ResultOK && last.Result != audit.ResultOK && last.Voids == prev.Seq
}
