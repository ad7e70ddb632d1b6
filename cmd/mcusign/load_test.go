package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key/p11test"
)

// EnvLoadFull makes TestDaemonLoad run at full size: 16 clients × 1,000
// signatures, RSS compared after 1,000 and 10,000 requests. The default
// (CI) size is 16 × 100, compared after 100 and 1,000.
const EnvLoadFull = "MCUSIGN_LOAD_FULL"

// daemonRSS is the resident set size of pid in KiB.
// It may be called from any goroutine.
func daemonRSS(t *testing.T, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Error(err)
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Error(err)
			}
			return n
		}
	}
	t.Errorf("no VmRSS for pid %d", pid)
	return 0
}

// TestDaemonLoad: 16 clients (goroutines with their own connection through
// the plugin client library, as a build tool would link it) sign at once
// through one standing mcusignd, each image unique (its build number).
// Zero failures; every image verifies; the audit log holds exactly one "ok"
// record for each, and its chain verifies; the daemon's RSS after 10× the
// requests is within 10% of its RSS after the first tenth (no leak per
// request). MCUSIGN_LOAD_FULL=1 runs the full size; see docs/security.md
// for the measured figures.
func TestDaemonLoad(t *testing.T) {
	clients, each := 16, 100
	if os.Getenv(EnvLoadFull) == "1" {
		each = 1000
	}
	total := clients * each
	early := int64(total / 16) // 1,000 at full size
	late := 10 * early
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "fw", signer.ECDSAP256)
	d := startDaemon(t, tok, "", "")
	pid := d.cmd.Process.Pid
	desc, err := plugin.ReadDescriptor(d.sockDir)
	require.NoError(t, err)
	app := make([]byte, 16<<10)
	_, err = rand.Read(app)
	require.NoError(t, err)

	var done atomic.Int64
	var rssEarly, rssLate atomic.Int64
	digests := make([][]string, clients)
	errs := make(chan error, total)
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := plugin.Probe(desc)
			if err != nil {
				errs <- err
				return
			}
			cl, err := plugin.Attach(desc, conn)
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			ctx := context.Background()
			key, err := cl.OpenKey(ctx, standingURI(tok, "fw"))
			if err != nil {
				errs <- err
				return
			}
			for i := 0; i < each; i++ {
				o := signer.Options{Version: signer.Version{Major: 1, Build: uint32(c*each + i)}, HeaderSize: 0x200, PadHeader: true, Align: 4, SlotSize: 0x10000}
				img, err := signer.Build(ctx, app, o, key, nil)
				if err == nil {
					_, err = signer.Verify(img.Bytes, k.Public())
				}
				if err != nil {
					errs <- fmt.Errorf("client %d signature %d: %w", c, i, err)
					continue
				}
				region := img.Bytes[:0x200+len(app)+int(binary.LittleEndian.Uint16(img.Bytes[10:]))]
				sum := sha256.Sum256(region)
				digests[c] = append(digests[c], hex.EncodeToString(sum[:]))
				switch done.Add(1) {
				case early:
					rssEarly.Store(daemonRSS(t, pid))
				case late:
					rssLate.Store(daemonRSS(t, pid))
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.False(t, t.Failed())
	require.EqualValues(t, total, done.Load())

	ok := okDigests(readAudit(t, d.auditLog))
	require.Len(t, ok, total, "one ok record per signature")
	for _, ds := range digests {
		for _, dg := range ds {
			require.Equal(t, 1, ok[dg])
		}
	}
	require.Contains(t, auditVerify(t, d.auditLog), fmt.Sprintf("audit log OK: %d records", total))
	rssEnd := daemonRSS(t, pid)
	t.Logf("%d clients × %d signatures in %s (%.0f/s); daemon RSS %d KiB after %d requests, %d KiB after %d, %d KiB at the end",
		clients, each, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), rssEarly.Load(), early, rssLate.Load(), late, rssEnd)
	if strings.Contains(os.Getenv("GOFLAGS"), "-race") {
		t.Log("mcusignd is built with -race, whose shadow memory grows with every request: RSS not compared")
		return
	}
	require.LessOrEqual(t, rssLate.Load(), rssEarly.Load()*110/100,
		"the daemon's RSS grew by more than 10%% between %d and %d requests", early, late)
}
