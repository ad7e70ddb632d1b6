package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/signer"
)

// EnvTrace=1 makes mcusign print where a command's time went, as one line
// on stderr when it ends:
//
//	mcusign: trace: t0=<unix ns> read=1.2ms connect=310µs ... key=published via=file region=in-place total=9.8ms peak-rss=<bytes>
//
// t0 is the wall clock when mcusign's main package was initialised (after
// the runtime and every imported package), so a caller that noted when it
// started the process knows the start-up cost. Then come the phases, and
// facts about the signing call: key, where a daemon's key came from
// (published: the daemon's descriptor; asked: a lookup call); via, how the
// image reached the daemon (file: a sealed memory file; message; stream);
// region, for a file, whether it was the memory the image was built in
// (in-place) or a copy. peak-rss is the most memory the process held. Only
// durations, that size and these words are printed: never a key, URI,
// path or PIN. For benchmarks (BenchmarkSignCommand) and for finding where
// a slow build's time goes.
const EnvTrace = "MCUSIGN_TRACE"

var traceT0 = time.Now()

// tracer sums durations per phase, in the order phases first appear, and
// keeps facts (name=word) in the order they were first set.
type tracer struct {
	on     bool
	mu     sync.Mutex
	names  []string
	phases map[string]time.Duration
	facts  [][2]string
}

var trace = &tracer{on: os.Getenv(EnvTrace) == "1", phases: map[string]time.Duration{}}

func (t *tracer) add(name string, d time.Duration) {
	if !t.on {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.phases[name]; !ok {
		t.names = append(t.names, name)
	}
	t.phases[name] += d
}

func (t *tracer) since(name string, start time.Time) { t.add(name, time.Since(start)) }

// fact sets name to value (a word, never a secret).
func (t *tracer) fact(name, value string) {
	if !t.on {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.facts {
		if t.facts[i][0] == name {
			t.facts[i][1] = value
			return
		}
	}
	t.facts = append(t.facts, [2]string{name, value})
}

// setVia notes how the image reached the daemon.
func (t *tracer) setVia(via string, inPlace bool) {
	t.fact("via", via)
	if via == "file" {
		region := "copy"
		if inPlace {
			region = "in-place"
		}
		t.fact("region", region)
	}
}

func (t *tracer) get(name string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.phases[name]
}

func (t *tracer) print(w io.Writer) {
	if !t.on {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "mcusign: trace: t0=%d", traceT0.UnixNano())
	for _, n := range t.names {
		fmt.Fprintf(&b, " %s=%s", n, t.phases[n])
	}
	for _, f := range t.facts {
		fmt.Fprintf(&b, " %s=%s", f[0], f[1])
	}
	fmt.Fprintf(&b, " total=%s", time.Since(traceT0))
	if hwm := peakRSS(); hwm > 0 {
		fmt.Fprintf(&b, " peak-rss=%d", hwm)
	}
	b.WriteString("\n")
	io.WriteString(w, b.String())
}

// peakRSS is the process's peak resident set size in bytes (Linux's
// VmHWM: this program's own, unlike getrusage's ru_maxrss, which also
// counts the parent's memory at exec), or 0 where unknown.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

// tracedBuild runs signer.Build (or BuildApp) and splits its time into
// hash (layout and hashing, up to the signature), the signature, and
// verify (checking the signature, the unprotected TLVs). A daemon key's
// signature is split further with the daemon's own timing: upload (the
// daemon receiving the region), check (its parsing, hashing and waiting
// for a token slot), sign (the token), audit (its record), rpc (the rest
// of the call: stream set-up, the reply, scheduling).
func tracedBuild(key signer.Key, build func(ctx context.Context, key signer.Key) (*signer.Image, error)) (*signer.Image, error) {
	ctx := context.Background()
	if !trace.on {
		return build(ctx, key)
	}
	var dt plugin.SignTiming
	ctx = plugin.WithSignTiming(ctx, &dt)
	var tk *tracedKey
	if key != nil {
		tk = &tracedKey{Key: key}
		key = tk
	}
	start := time.Now()
	img, err := build(ctx, key)
	end := time.Now()
	if tk == nil || tk.first.IsZero() {
		trace.add("hash", end.Sub(start))
		return img, err
	}
	trace.add("hash", tk.first.Sub(start))
	if dt.Token > 0 {
		trace.add("upload", dt.Receive)
		trace.add("check", dt.Hash+dt.Queue)
		trace.add("sign", dt.Token)
		trace.add("audit", dt.Audit)
		trace.add("rpc", tk.in-dt.Receive-dt.Hash-dt.Queue-dt.Token-dt.Audit)
		trace.setVia(dt.Via, dt.InPlace)
	} else {
		trace.add("sign", tk.in)
	}
	trace.add("verify", end.Sub(tk.last))
	return img, err
}

// tracedKey notes when the engine called the key and for how long.
type tracedKey struct {
	signer.Key
	first, last time.Time
	in          time.Duration
}

func (k *tracedKey) Sign(ctx context.Context, req signer.SignRequest) ([]byte, error) {
	t := time.Now()
	if k.first.IsZero() {
		k.first = t
	}
	sig, err := k.Key.Sign(ctx, req)
	k.last = time.Now()
	k.in += k.last.Sub(t)
	return sig, err
}
