package main

// Benchmarks behind scripts/bench.sh and docs/performance.md. Every row
// pairs what mcusign does with a baseline measured in the same run, as
// sub-benchmarks that differ in one name component, so that
// `benchstat -col /path` (or /key) prints the ratio:
//
//	BenchmarkSignRate     key=K/c=N/path=raw|daemon     token signatures per second
//	                      key=K/c=N/path=trip           the floor: bare round trips to the same daemon
//	BenchmarkSignCommand  key=file|daemon               one `mcusign sign` of a 1 MiB image, with its phases
//	BenchmarkPeakRSS      size=4KiB|64MiB               peak RSS of `mcusign sign` with a PEM key
//
// They need SoftHSM2 and run only with -bench; `go test ./...` skips them.

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key/p11test"
)

// benchKeys are the key types of the signing-rate rows.
var benchKeys = []signer.KeyType{signer.RSA2048, signer.ECDSAP256, signer.ECDSAP384, signer.Ed25519}

// benchToken is a token holding the vector key of every benchKeys type,
// labelled by type: the same keys the PEM files hold.
func benchToken(b *testing.B) *p11test.Token {
	tok := p11test.NewToken(b)
	for _, kt := range benchKeys {
		tok.ImportPEM(b, string(kt), filepath.Join(vectorsDir, "keys", string(kt)+".pem"))
	}
	return tok
}

// cpuTime is the CPU time this process and the processes pids have used
// so far: getrusage for this one, the scheduler's nanosecond run time of
// every thread (/proc/PID/task/*/schedstat) for the others.
func cpuTime(pids ...int) time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
		for _, task := range tasks {
			data, err := os.ReadFile(task)
			if err != nil {
				continue
			}
			if f := strings.Fields(string(data)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				t += time.Duration(ns)
			}
		}
	}
	return t
}

// concurrently runs b.N calls of op spread over c goroutines (op gets its
// worker number) and reports the aggregate rate in rate (e.g. "sig/s"),
// and the CPU time per call of this process and of the processes pids (a
// daemon) in cpu-µs/op.
func concurrently(b *testing.B, c int, rate string, op func(w int) error, pids ...int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	b.ResetTimer()
	cpu0 := cpuTime(pids...)
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := op(w); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime(pids...) - cpu0
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), rate)
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

// benchRegion is the to-be-signed region of a 64 KiB image for kt, and its
// digest: what a client streams to the daemon.
func benchRegion(b *testing.B, kt signer.KeyType) ([]byte, []byte, crypto.Hash) {
	app := make([]byte, 64<<10)
	rand.Read(app)
	h := crypto.SHA256
	if kt == signer.ECDSAP384 {
		h = crypto.SHA384
	}
	opts := signer.Options{Version: signer.Version{Major: 1}, HeaderSize: 0x200, PadHeader: true, Hash: h}
	opts.Vector = "payload"
	img, err := signer.Build(context.Background(), app, opts, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	return img.Bytes, img.Digest, h
}

// rawMechanism is the bare PKCS#11 mechanism MCUboot signatures use:
// RSA-PSS (SHA-256, MGF1-SHA256, salt 32) or ECDSA on the digest, EdDSA.
func rawMechanism(kt signer.KeyType) []*pkcs11.Mechanism {
	switch kt {
	case signer.RSA2048, signer.RSA3072:
		return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.NewPSSParams(pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, 32))}
	case signer.Ed25519:
		return []*pkcs11.Mechanism{pkcs11.NewMechanism(0x1057, nil)} // CKM_EDDSA
	}
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}
}

// BenchmarkSignRate compares the signing rate of the daemon, end to end
// (64 KiB image regions streamed through the gRPC client to a standing
// mcusignd, which parses, hashes, signs and fsyncs its audit record), with
// the raw PKCS#11 rate on the same token and key in this process:
// C_SignInit + C_Sign through miekg/pkcs11 on one session per worker,
// nothing else. c is the number of concurrent requests, each worker with
// its own connection, as concurrent builds have.
//
// path=daemon keeps its audit log in the benchmark's temporary directory,
// so every record costs a real fsync of that file system. path=daemon-tmpfs
// is a diagnostic: the same daemon with its audit log on tmpfs, where fsync
// costs nothing (and guarantees nothing); the difference between the two
// is what durability costs on this machine.
//
// path=trip measures the transport's floor on the same connections: gRPC's
// health check, which the daemon answers without doing anything (no key,
// no token, no audit), i.e. one bare round trip between the two
// processes. A signature through the daemon cannot cost less than the
// token's work plus that round trip, which puts a ceiling on the
// daemon/raw ratio an implementation over this transport can be expected
// to reach on this machine (scripts/benchtable estimates it). Until
// 2026-11-26 the floor was a cached key lookup, whose handler work put the
// ceiling too low.
func BenchmarkSignRate(b *testing.B) {
	tok := benchToken(b)
	shm, err := os.MkdirTemp("/dev/shm", "mcusign-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(shm) })
	daemons := map[string]*daemonProc{
		"daemon":       startDaemon(b, tok, "", ""),
		"daemon-tmpfs": startDaemon(b, tok, "", filepath.Join(shm, "audit.jsonl")),
	}
	const maxC = 8
	ctx := context.Background()
	for _, kt := range benchKeys {
		region, digest, hash := benchRegion(b, kt)
		keys := map[string][]*plugin.Key{}
		var clients []*plugin.Client // of the path=daemon connections
		for path, d := range daemons {
			desc, err := plugin.ReadDescriptor(d.sockDir)
			if err != nil {
				b.Fatal(err)
			}
			for range maxC {
				nc, err := plugin.Probe(desc)
				if err != nil {
					b.Fatal(err)
				}
				conn, err := plugin.Attach(desc, nc)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(conn.Close)
				k, err := conn.OpenKey(ctx, standingURI(tok, string(kt)))
				if err != nil {
					b.Fatal(err)
				}
				keys[path] = append(keys[path], k)
				if path == "daemon" {
					clients = append(clients, conn.Client)
				}
			}
		}
		for _, c := range []int{1, 2, 8} {
			b.Run(fmt.Sprintf("key=%s/c=%d/path=raw", kt, c), func(b *testing.B) {
				rawSign(b, tok, kt, c, digest)
			})
			b.Run(fmt.Sprintf("key=%s/c=%d/path=trip", kt, c), func(b *testing.B) {
				concurrently(b, c, "trips/s", func(w int) error {
					return clients[w].Ping(ctx)
				}, daemons["daemon"].cmd.Process.Pid)
			})
			for _, path := range []string{"daemon", "daemon-tmpfs"} {
				b.Run(fmt.Sprintf("key=%s/c=%d/path=%s", kt, c, path), func(b *testing.B) {
					req := signer.SignRequest{Payload: region, Digest: digest, Hash: hash}
					concurrently(b, c, "sig/s", func(w int) error {
						_, err := keys[path][w].Sign(ctx, req)
						return err
					}, daemons[path].cmd.Process.Pid)
				})
			}
		}
	}
}

// rawSign runs the raw PKCS#11 signing loop with c sessions of the
// benchmark process's own (logged-in) SoftHSM instance.
func rawSign(b *testing.B, tok *p11test.Token, kt signer.KeyType, c int, digest []byte) {
	tok.Raw(b, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
		si, err := p.GetSessionInfo(sh)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, string(kt)),
		}); err != nil {
			b.Fatal(err)
		}
		objs, _, err := p.FindObjects(sh, 2)
		_ = p.FindObjectsFinal(sh)
		if err != nil || len(objs) != 1 {
			b.Fatalf("finding key %s: %d objects, %v", kt, len(objs), err)
		}
		priv := objs[0]
		sessions := make([]pkcs11.SessionHandle, c)
		for i := range sessions {
			if sessions[i], err = p.OpenSession(si.SlotID, pkcs11.CKF_SERIAL_SESSION); err != nil {
				b.Fatal(err)
			}
			defer p.CloseSession(sessions[i])
		}
		mech := rawMechanism(kt)
		concurrently(b, c, "sig/s", func(w int) error {
			if err := p.SignInit(sessions[w], mech, priv); err != nil {
				return err
			}
			_, err := p.Sign(sessions[w], digest)
			return err
		})
	})
}

// traceLine is one MCUSIGN_TRACE=1 line: phase durations, the wall
// clock at which mcusign's main package started (t0, unix ns), the facts
// (key, via, region: every name=word that is not a duration), and the
// peak RSS in bytes.
type traceLine struct {
	t0, peakRSS int64
	facts       map[string]string
	phases      map[string]time.Duration
}

func parseTrace(stderr string) (*traceLine, bool) {
	for _, l := range strings.Split(stderr, "\n") {
		rest, ok := strings.CutPrefix(l, "mcusign: trace: ")
		if !ok {
			continue
		}
		tl := &traceLine{phases: map[string]time.Duration{}, facts: map[string]string{}}
		for _, f := range strings.Fields(rest) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "t0":
				tl.t0, _ = strconv.ParseInt(v, 10, 64)
				continue
			case "peak-rss":
				tl.peakRSS, _ = strconv.ParseInt(v, 10, 64)
				continue
			}
			if d, err := time.ParseDuration(v); err == nil {
				tl.phases[k] = d
			} else {
				tl.facts[k] = v
			}
		}
		return tl, true
	}
	return nil, false
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkSignCommand runs `mcusign sign` on a 1 MiB image, the way a
// build does, with the ECDSA P-256 key in the token through a standing
// mcusignd (key=daemon) and with the same key as a PEM file (key=file, the
// baseline). ns/op is the wall time of the whole command; with
// MCUSIGN_TRACE=1 mcusign reports its phases, whose medians are reported
// in ms: start (exec to main), connect (descriptor, dial; the gRPC
// connection is then made in the background) and lookup (the key's public
// half: from the descriptor, an RPC, or a PEM parse), both while the input
// is read, read, key-wait (the wait for the key after the read), hash
// (layout and hashing before the signature), sign (the HSM's time, as the
// daemon measured it), audit (the wait for the record's fsync after the
// token's signature), rpc (the rest of the signing call: waiting for the
// connection, the daemon's parse and hash, replies), verify, write, exit.
// The daemon publishes the key at the first command, so the others take
// it from the descriptor, as a build's commands do.
func BenchmarkSignCommand(b *testing.B) {
	tok := benchToken(b)
	d := startDaemon(b, tok, "", "")
	work := b.TempDir()
	app := filepath.Join(work, "app-1m.bin")
	data := make([]byte, 1<<20)
	rand.Read(data)
	if err := os.WriteFile(app, data, 0o644); err != nil {
		b.Fatal(err)
	}
	pem, _ := filepath.Abs(filepath.Join(vectorsDir, "keys", "ecdsa-p256.pem"))
	for _, m := range []struct{ name, key string }{
		{"file", pem},
		{"daemon", standingURI(tok, string(signer.ECDSAP256))},
	} {
		b.Run("key="+m.name, func(b *testing.B) {
			env := append(d.env(), "MCUSIGN_TRACE=1")
			out := filepath.Join(work, m.name+".signed.bin")
			args := []string{"sign", "-k", m.key, "-v", "1.2.3+4", "-H", "0x200", "--pad-header", "-S", "0x200000", "--align", "4", app, out}
			phases := map[string][]time.Duration{}
			var walls []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cmd := exec.Command(mcusignBin, args...)
				cmd.Env = env
				var stderr strings.Builder
				cmd.Stderr = &stderr
				before := time.Now()
				err := cmd.Run()
				wall := time.Since(before)
				if err != nil {
					b.Fatalf("mcusign sign: %v: %s", err, stderr.String())
				}
				walls = append(walls, wall)
				tl, ok := parseTrace(stderr.String())
				if !ok {
					continue // a mcusign without MCUSIGN_TRACE
				}
				var inside time.Duration
				for k, v := range tl.phases {
					if k == "total" {
						inside = v
						continue
					}
					phases[k] = append(phases[k], v)
				}
				start := time.Duration(tl.t0 - before.UnixNano())
				phases["start"] = append(phases["start"], start)
				phases["exit"] = append(phases["exit"], wall-start-inside)
			}
			b.StopTimer()
			b.ReportMetric(float64(median(walls))/1e6, "wall-ms")
			for k, v := range phases {
				b.ReportMetric(float64(median(v))/1e6, k+"-ms")
			}
		})
	}
}

// BenchmarkPeakRSS signs an image with a PEM key through the mcusign
// binary and reports the process's peak RSS (MiB), its ratio to the image
// size, and how far it is below the target 1.25 × size + 32 MiB
// (margin-MiB). The 4 KiB image is the baseline: the process's own floor.
// The 64 MiB one is padded into a slot (--pad), so the erased fill and
// trailer are written too. The peak is mcusign's own VmHWM, which
// MCUSIGN_TRACE=1 reports (getrusage's ru_maxrss would include this test
// process's memory at the time of exec).
func BenchmarkPeakRSS(b *testing.B) {
	work := b.TempDir()
	pem, _ := filepath.Abs(filepath.Join(vectorsDir, "keys", "ecdsa-p256.pem"))
	for _, size := range []int{4 << 10, 64 << 20} {
		name := fmt.Sprintf("size=%dKiB", size>>10)
		if size >= 1<<20 {
			name = fmt.Sprintf("size=%dMiB", size>>20)
		}
		app := filepath.Join(work, name+".bin")
		f, err := os.Create(app)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		buf := make([]byte, 1<<20)
		for n := 0; n < size; n += len(buf) {
			rand.Read(buf)
			w.Write(buf[:min(len(buf), size-n)])
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		slot := size + size/16 + 1<<20
		b.Run(name, func(b *testing.B) {
			var peak int64
			for i := 0; i < b.N; i++ {
				out := filepath.Join(work, "out.bin")
				cmd := exec.Command(mcusignBin, "sign", "-k", pem, "-v", "1.2.3", "-H", "0x200", "--pad-header",
					"-S", strconv.Itoa(slot), "--align", "4", "--pad", app, out)
				cmd.Env = append(os.Environ(), EnvTrace+"=1")
				msg, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("mcusign sign: %v: %s", err, msg)
				}
				tl, ok := parseTrace(string(msg))
				if !ok || tl.peakRSS == 0 {
					b.Fatalf("mcusign did not report its peak RSS: %s", msg)
				}
				peak = max(peak, tl.peakRSS)
				os.Remove(out)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
			b.ReportMetric(float64(peak)/float64(size), "x-image")
			b.ReportMetric((1.25*float64(size)+32<<20-float64(peak))/(1<<20), "margin-MiB")
		})
	}
}
