package audit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func appendN(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		_, err := l.Append(Record{Event: EventSign, KeyURI: fmt.Sprintf("pkcs11:token=t;object=k%d", i), Result: ResultOK,
			Image: &Image{Digest: "00", Hash: "sha256", Version: "1.2.3+4", Size: 100}})
		require.NoError(t, err)
	}
}

func verifyFiles(continued bool, paths ...string) (Summary, error) {
	v := &Verifier{Continued: continued}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return Summary{}, err
		}
		if err := v.File(filepath.Base(p), bytes.NewReader(data)); err != nil {
			return Summary{}, err
		}
	}
	return v.Summary(), nil
}

func TestAppendVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.jsonl")
	l, err := Open(path)
	require.NoError(t, err)
	appendN(t, l, 5)
	require.NoError(t, l.Close())
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// A second writer (another process) continues the same chain.
	l2, err := Open(path)
	require.NoError(t, err)
	appendN(t, l2, 2)
	seq, head := l2.Head()
	require.EqualValues(t, 7, seq)
	s, err := verifyFiles(false, path)
	require.NoError(t, err)
	require.Equal(t, 7, s.Records)
	require.Equal(t, head, s.LastHash)

	data, _ := os.ReadFile(path)
	first := strings.SplitN(string(data), "\n", 2)[0]
	require.Contains(t, first, `"prev":"`+Genesis+`"`)
	require.True(t, strings.HasPrefix(first, `{"time":"`), first)
}

// Every single-byte edit, deleted line or swapped pair is found, and the
// error names the line.
func TestVerifyDetectsTampering(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	require.NoError(t, err)
	appendN(t, l, 4)
	l.Close()
	orig, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(orig), "\n")
	lines = lines[:len(lines)-1]
	check := func(t *testing.T, data string, wantLine int) {
		t.Helper()
		require.NoError(t, os.WriteFile(path, []byte(data), 0o600))
		_, err := verifyFiles(false, path)
		require.Error(t, err)
		var le *LineError
		require.ErrorAs(t, err, &le, err.Error())
		require.Equal(t, wantLine, le.Line, err.Error())
	}
	// Every byte of line 3, including its hash and newline.
	start := len(lines[0]) + len(lines[1])
	for i := start; i < start+len(lines[2]); i++ {
		b := []byte(string(orig))
		b[i] ^= 0x01
		check(t, string(b), 3)
	}
	check(t, lines[0]+lines[2]+lines[3], 2)          // line 2 removed
	check(t, lines[1]+lines[2]+lines[3], 1)          // line 1 removed
	check(t, lines[0]+lines[2]+lines[1]+lines[3], 2) // reordered
	check(t, lines[0]+lines[1]+lines[2]+lines[3][:len(lines[3])-1], 4)
	check(t, lines[0]+"\n"+lines[1], 2)
}

// A rotated log continues the chain; verified together they pass, alone
// the new file needs --continued.
func TestReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path)
	require.NoError(t, err)
	appendN(t, l, 3)
	require.NoError(t, os.Rename(path, path+".1"))
	require.NoError(t, l.Reopen())
	appendN(t, l, 2)
	l.Close()
	s, err := verifyFiles(false, path+".1", path)
	require.NoError(t, err)
	require.Equal(t, 5, s.Records)
	_, err = verifyFiles(false, path)
	require.ErrorContains(t, err, "line 1: hash chain broken")
	s, err = verifyFiles(true, path)
	require.NoError(t, err)
	require.EqualValues(t, 5, s.LastSeq)
}

// Several writers (goroutines here, processes in mcusignd's tests) keep
// one unbroken chain.
func TestConcurrentAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		l, err := Open(path)
		require.NoError(t, err)
		defer l.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			appendN(t, l, 25)
		}()
	}
	wg.Wait()
	s, err := verifyFiles(false, path)
	require.NoError(t, err)
	require.Equal(t, 100, s.Records)
}

// A log whose last line is cut refuses further records: no signature may
// follow a record that is not whole.
func TestPartialTailRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	require.NoError(t, err)
	appendN(t, l, 2)
	l.Close()
	data, _ := os.ReadFile(path)
	require.NoError(t, os.WriteFile(path, data[:len(data)-10], 0o600))
	_, err = Open(path)
	require.ErrorContains(t, err, "partial line")

	require.NoError(t, os.WriteFile(path, data, 0o600))
	l, err = Open(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data[:len(data)-10], 0o600))
	_, err = l.Append(Record{Event: EventSign, Result: ResultOK})
	require.ErrorContains(t, err, "partial line")
}

// Verification reads files anyone may have edited: it must never panic,
// and what it accepts must decode.
func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	l, err := Open(filepath.Join(dir, "a.jsonl"))
	if err != nil {
		f.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := l.Append(Record{Event: EventSign, Result: ResultOK}); err != nil {
			f.Fatal(err)
		}
	}
	l.Close()
	data, _ := os.ReadFile(filepath.Join(dir, "a.jsonl"))
	f.Add(data)
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v := &Verifier{}
		if v.File("f", bytes.NewReader(b)) == nil && v.Summary().Records != bytes.Count(b, []byte("\n")) {
			t.Fatalf("accepted %d records from %d lines", v.Summary().Records, bytes.Count(b, []byte("\n")))
		}
	})
}

// BenchmarkAppend measures records per second with c concurrent writers
// on one Log, each record fsynced before its Append returns: group commit
// lets concurrent records share an fsync. The log is in the benchmark's
// temporary directory, so the fsyncs are the file system's real ones.
func BenchmarkAppend(b *testing.B) {
	rec := Record{Event: EventSign, Mode: "standing", KeyURI: "pkcs11:token=release;object=fw-signing;id=%01;type=private", KeyType: "ecdsa-p256",
		KeyFingerprint: "sha256:61921511c0b6d3e0f0c1f6c1f6c1f6c1f6c1f6c1f6c1f6c1f6c1f6c1f6c1f6c1", Result: ResultOK, SignatureType: "ECDSA-P256",
		Peer:  &Peer{UID: 1001, GID: 1001, PID: 4242, Exe: "/usr/local/bin/mcusign"},
		Image: &Image{Digest: strings.Repeat("ab", 32), Hash: "sha256", Version: "1.2.3+4", Size: 100512, HdrSize: 512, ImgSize: 100000}}
	for _, c := range []int{1, 2, 8} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			l, err := Open(filepath.Join(b.TempDir(), "audit.jsonl"))
			require.NoError(b, err)
			defer l.Close()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < c; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := l.Append(rec); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			b.StopTimer()
			seq, _ := l.Head()
			require.EqualValues(b, b.N, seq)
		})
	}
}

// Group commit: records that arrive while an fsync runs share the next
// one, and no Append returns before the fsync that covers its record.
func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	require.NoError(t, err)
	defer l.Close()
	var mu sync.Mutex
	var syncs int
	var durable uint64 // records known to be on disk
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	l.sync = func(f *os.File) error {
		err := f.Sync()
		mu.Lock()
		syncs++
		first := syncs == 1
		mu.Unlock()
		if first { // hold the first commit until the others have queued
			entered <- struct{}{}
			<-release
		}
		seq, _, _ := tail(path)
		mu.Lock()
		durable = seq
		mu.Unlock()
		return err
	}
	const n = 20
	var wg sync.WaitGroup
	appendOne := func(i int) {
		defer wg.Done()
		seq, err := l.Append(Record{Event: EventSign, KeyURI: fmt.Sprintf("pkcs11:object=k%d", i), Result: ResultOK})
		assert.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		assert.LessOrEqual(t, seq, durable, "Append returned before its record was synced")
	}
	wg.Add(1)
	go appendOne(0)
	<-entered
	for i := 1; i < n; i++ {
		wg.Add(1)
		go appendOne(i)
	}
	// Wait until all of them are queued behind the held commit.
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.queue) == n-1
	}, 10*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	require.Equal(t, 2, syncs, "the queued records should have shared one fsync")
	s, err := verifyFiles(false, path)
	require.NoError(t, err)
	require.Equal(t, n, s.Records)
}

// A record written by another process between two commits is found (the
// file changed), and the chain continues after it.
func TestAppendAfterOtherWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := Open(path)
	require.NoError(t, err)
	defer a.Close()
	b, err := Open(path)
	require.NoError(t, err)
	defer b.Close()
	for i := 0; i < 3; i++ {
		appendN(t, a, 1)
		appendN(t, b, 2)
	}
	s, err := verifyFiles(false, path)
	require.NoError(t, err)
	require.Equal(t, 9, s.Records)
	seq, head := a.Head()
	require.EqualValues(t, 7, seq) // a's own view: its last record
	_, head2 := b.Head()
	require.Equal(t, s.LastHash, head2)
	require.NotEqual(t, head, head2)
}
