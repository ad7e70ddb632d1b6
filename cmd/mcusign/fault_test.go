package main

// Fault tests with real processes: the token taken away from a running
// mcusignd and given back, the audit log's filesystem full or read-only,
// the daemon SIGKILLed under load and restarted, clients that die or stall
// mid-upload. The invariant throughout: no signature leaves the daemon
// without its audit record, and the daemon recovers without a restart.

import (
	"bufio"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/plugin/pb"
	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key"
	"github.com/mcusign/mcusign/signer/pkcs11key/p11test"
)

// The test binary doubles as a client that dies mid-upload: with
// MCUSIGN_TEST_HALF_SIGN set to a socket directory it starts a Sign call
// for MCUSIGN_TEST_KEY, sends the start and one chunk of a declared 1 MiB,
// says so on stdout and waits to be killed.
func init() {
	if dir := os.Getenv("MCUSIGN_TEST_HALF_SIGN"); dir != "" {
		if err := halfSign(dir, os.Getenv("MCUSIGN_TEST_KEY")); err != nil {
			fmt.Fprintln(os.Stderr, "half-sign:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
}

func halfSign(dir, key string) error {
	desc, err := plugin.ReadDescriptor(dir)
	if err != nil {
		return err
	}
	cc, err := grpc.Dial("unix://"+desc.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	stream, err := pb.NewSignerClient(cc).Sign(context.Background())
	if err != nil {
		return err
	}
	if err := stream.Send(&pb.SignChunk{Msg: &pb.SignChunk_Start{Start: &pb.SignStart{KeyUri: key, Hash: pb.HashAlgorithm_HASH_ALGORITHM_SHA256, Size: 1 << 20}}}); err != nil {
		return err
	}
	if err := stream.Send(&pb.SignChunk{Msg: &pb.SignChunk_Data{Data: make([]byte, plugin.ChunkSize)}}); err != nil {
		return err
	}
	fmt.Println("upload started")
	select {}
}

// rawSigner is a bare gRPC client of a standing daemon, for requests
// mcusign would never send.
func rawSigner(t *testing.T, d *daemonProc) pb.SignerClient {
	t.Helper()
	desc, err := plugin.ReadDescriptor(d.sockDir)
	require.NoError(t, err)
	cc, err := grpc.Dial("unix://"+desc.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return pb.NewSignerClient(cc)
}

func daemonStatus(t *testing.T, c pb.SignerClient) *pb.StatusResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), daemonWaitLimit)
	defer cancel()
	st, err := c.Status(ctx, &pb.StatusRequest{})
	require.NoError(t, err)
	return st
}

// eventually polls cond (each poll is a round trip to the daemon, so this
// is bounded by attempts, each well under a second) for at most
// daemonWaitLimit.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(daemonWaitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func openFDs(t *testing.T, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	return len(ents)
}

func (d *daemonProc) alive(t *testing.T) {
	t.Helper()
	select {
	case <-d.exited:
		t.Fatalf("mcusignd exited:\n%s", d.stderr)
	default:
	}
}

// auditLine is what these tests read from audit records.
type auditLine struct {
	Seq            uint64 `json:"seq"`
	Event          string `json:"event"`
	Result         string `json:"result"`
	Error          string `json:"error"`
	KeyFingerprint string `json:"key_fingerprint"`
	Voids          uint64 `json:"voids"`
	Image          *struct {
		Digest string `json:"digest"`
	} `json:"image"`
}

func readAudit(t *testing.T, paths ...string) []auditLine {
	t.Helper()
	var out []auditLine
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if l == "" {
				continue
			}
			var r auditLine
			require.NoError(t, json.Unmarshal([]byte(l), &r), l)
			out = append(out, r)
		}
	}
	return out
}

// okDigests counts the "ok" sign records per image digest.
func okDigests(recs []auditLine) map[string]int {
	voided := map[uint64]bool{}
	for _, r := range recs {
		if r.Voids != 0 {
			voided[r.Voids] = true
		}
	}
	m := map[string]int{}
	for _, r := range recs {
		if r.Event == "sign" && r.Result == "ok" && r.Image != nil && !voided[r.Seq] {
			m[r.Image.Digest]++
		}
	}
	return m
}

// regionDigest is the SHA-256 of a signed image's to-be-signed region:
// what the daemon records as the image digest.
func regionDigest(t *testing.T, img []byte) string {
	t.Helper()
	info, err := signer.Inspect(img, "x")
	require.NoError(t, err)
	end := int(info.Header.HdrSize) + int(info.Header.ImgSize) + int(info.Header.ProtectedTLVSize)
	sum := sha256.Sum256(img[:end])
	return hex.EncodeToString(sum[:])
}

func auditVerify(t *testing.T, files ...string) string {
	t.Helper()
	out, errOut, rc := runEnv(t, os.Environ(), t.TempDir(), append([]string{"audit", "verify"}, files...)...)
	require.Zero(t, rc, errOut)
	return out
}

func verifyImage(t *testing.T, path string, pub crypto.PublicKey) []byte {
	t.Helper()
	img, err := os.ReadFile(path)
	require.NoError(t, err)
	_, err = signer.Verify(img, pub)
	require.NoError(t, err, path)
	return img
}

// The token's directory is moved away while mcusignd serves it (SoftHSM's
// equivalent of pulling a USB token). mcusign commands fail with one line
// saying the token is not present (at the key lookup), so do signing
// requests of a client that opened its key before (audited), while the
// daemon keeps running and logs the fault. Moved back, the same daemon
// signs again with every key type, without a restart, and so does the
// client's open key.
func TestDaemonTokenRemovedAndBack(t *testing.T) {
	tok := p11test.NewToken(t)
	keys := map[string]crypto.PublicKey{}
	for _, kt := range []signer.KeyType{signer.ECDSAP256, signer.Ed25519, signer.RSA2048} {
		keys[string(kt)] = tok.Generate(t, string(kt), kt).Public()
	}
	d := startDaemon(t, tok, "", "")
	pid := d.cmd.Process.Pid
	work := t.TempDir()
	sign := func(key, out string) (string, int) {
		return daemonSign(t, d.env(), work, standingURI(tok, key), filepath.Join(work, out))
	}
	for key, pub := range keys {
		errOut, rc := sign(key, key+"-before.bin")
		require.Zero(t, rc, errOut)
		verifyImage(t, filepath.Join(work, key+"-before.bin"), pub)
	}
	// A long-lived client (a build tool linking the plugin package) with
	// the key open before the fault.
	desc, err := plugin.ReadDescriptor(d.sockDir)
	require.NoError(t, err)
	conn, err := plugin.Probe(desc)
	require.NoError(t, err)
	client, err := plugin.Attach(desc, conn)
	require.NoError(t, err)
	defer client.Close()
	ctx := context.Background()
	open, err := client.OpenKey(ctx, standingURI(tok, string(signer.ECDSAP256)))
	require.NoError(t, err)
	app, err := os.ReadFile(daemonApp(t))
	require.NoError(t, err)
	opts := signer.Options{Version: signer.Version{Major: 1}, HeaderSize: 0x200, PadHeader: true, Align: 4, SlotSize: 0x60000}
	_, err = signer.Build(ctx, app, opts, open, nil)
	require.NoError(t, err)

	away := filepath.Join(t.TempDir(), "away")
	require.NoError(t, os.Rename(tok.Dir, away))
	for i := 0; i < 2; i++ { // the fault itself, then a daemon without the token
		for key := range keys {
			out := fmt.Sprintf("%s-gone-%d.bin", key, i)
			errOut, rc := sign(key, out)
			require.Equal(t, 1, rc, errOut)
			require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
			require.Contains(t, errOut, fmt.Sprintf("token %q is not present", tok.Label))
			require.Contains(t, errOut, "without a restart")
			require.NoFileExists(t, filepath.Join(work, out))
		}
		_, err = signer.Build(ctx, app, opts, open, nil)
		require.ErrorContains(t, err, "is not present")
		require.Equal(t, codes.FailedPrecondition, plugin.Code(err))
	}
	_, errOut, rc := runEnv(t, d.env(), work, "status")
	require.NotZero(t, rc)
	require.Contains(t, errOut, "not present")
	d.alive(t)
	require.Contains(t, d.stderr.String(), "dropped its sessions and logins, initialising it again")
	require.Contains(t, d.stderr.String(), "TOKEN FAULT")

	require.NoError(t, os.Rename(away, tok.Dir))
	for key, pub := range keys {
		errOut, rc := sign(key, key+"-after.bin")
		require.Zero(t, rc, "%s after the token came back: %s", key, errOut)
		verifyImage(t, filepath.Join(work, key+"-after.bin"), pub)
	}
	img, err := signer.Build(ctx, app, opts, open, nil)
	require.NoError(t, err, "the client's open key after the token came back")
	_, err = signer.Verify(img.Bytes, keys[string(signer.ECDSAP256)])
	require.NoError(t, err)
	out, errOut, rc := runEnv(t, d.env(), work, "status")
	require.Zero(t, rc, errOut)
	require.Equal(t, pid, d.cmd.Process.Pid)
	d.alive(t)

	// The client's two requests failed in Sign; mcusign's usually fail at
	// the key lookup before it (not audited: lookups are read-only), but
	// may get to Sign when the token's library still had the key cached.
	recs := readAudit(t, d.auditLog)
	var errs int
	for _, r := range recs {
		if r.Event == "sign" && r.Result == "error" {
			errs++
			require.Contains(t, r.Error, "not present")
		}
	}
	require.GreaterOrEqual(t, errs, 2)
	require.Contains(t, out, fmt.Sprintf("signatures: %d made, %d failed", 2*len(keys)+2, errs), "every failed signing request is audited")
	oks := 0
	for _, n := range okDigests(recs) {
		oks += n
	}
	require.Equal(t, 2*len(keys)+2, oks)
	require.Contains(t, auditVerify(t, d.auditLog), fmt.Sprintf("audit log OK: %d records", len(recs)))
}

// The token is deleted and created again under the same label while
// mcusignd runs (a restore). Restored with the same key, the daemon signs
// on at once, no request fails. Restored with another key under the same
// label and id, the first request fails naming the change, and the next
// signs with the new key, whose fingerprint its audit record carries: a
// signature is never attributed to the wrong key.
func TestDaemonTokenReinitialised(t *testing.T) {
	tok := p11test.NewToken(t)
	pemPath := filepath.Join(vectorsDir, "keys", "ecdsa-p256.pem")
	k := tok.ImportPEM(t, "fw", pemPath)
	d := startDaemon(t, tok, "", "")
	work := t.TempDir()
	sign := func(out string) (string, int) {
		return daemonSign(t, d.env(), work, standingURI(tok, "fw"), filepath.Join(work, out))
	}
	errOut, rc := sign("before.bin")
	require.Zero(t, rc, errOut)

	withID := tok.BaseURI()
	withID.Object, withID.ID = "fw", k.ID()
	recreate := func() {
		require.NoError(t, os.RemoveAll(tok.Dir))
		before, err := filepath.Glob(filepath.Join(p11test.TokenDir(t), "*"))
		require.NoError(t, err)
		u := pkcs11key.URI{Token: tok.Label, ModulePath: tok.Module}
		require.NoError(t, pkcs11key.InitToken(context.Background(), u.String(), p11test.SOPIN, p11test.PIN))
		after, err := filepath.Glob(filepath.Join(p11test.TokenDir(t), "*"))
		require.NoError(t, err)
		for _, dir := range after {
			if !strings.Contains(strings.Join(before, "\n"), dir) {
				tok.Dir = dir
			}
		}
	}

	recreate()
	_, err := pkcs11key.Import(context.Background(), withID.String(), p11test.ReadPEM(t, pemPath), pkcs11key.Options{Warn: func(m string) { t.Log(m) }})
	require.NoError(t, err)
	errOut, rc = sign("restored.bin")
	require.Zero(t, rc, "restored with the same key: %s", errOut)
	verifyImage(t, filepath.Join(work, "restored.bin"), k.Public())

	recreate()
	k2, err := pkcs11key.Generate(context.Background(), withID.String(), signer.ECDSAP256, pkcs11key.Options{})
	require.NoError(t, err)
	errOut, rc = sign("changed.bin")
	require.Equal(t, 1, rc)
	require.Contains(t, errOut, "no longer the key this process opened")
	require.NoFileExists(t, filepath.Join(work, "changed.bin"))
	errOut, rc = sign("new-key.bin")
	require.Zero(t, rc, errOut)
	img := verifyImage(t, filepath.Join(work, "new-key.bin"), k2.Public())
	d.alive(t)

	recs := readAudit(t, d.auditLog)
	last := recs[len(recs)-1]
	require.Equal(t, "ok", last.Result)
	require.Equal(t, regionDigest(t, img), last.Image.Digest)
	pubBytes, err := signer.PublicKeyBytes(k2.Public())
	require.NoError(t, err)
	sum := sha256.Sum256(pubBytes)
	require.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), last.KeyFingerprint)
	auditVerify(t, d.auditLog)
}

// mountTmpfs mounts a small tmpfs on a fresh directory (unmounted at the
// end of the test), or skips the test where mounting is not permitted.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(dir, 0o700))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { unmountAll(dir) })
	return dir
}

func unmountAll(dir string) {
	for i := 0; i < 4; i++ {
		if exec.Command("umount", dir).Run() != nil {
			return
		}
	}
}

// fill writes to dir until its filesystem is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 512)
	for {
		if _, err := f.Write(buf); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return path
		}
	}
}

// The audit log's filesystem fills up: every request fails with one line
// saying the log cannot be written, no image is written, the daemon keeps
// running, and the log keeps a valid chain (no partial record). Once space
// is freed, the next request signs and continues the chain; the log holds
// exactly one "ok" record per image delivered.
func TestDaemonAuditDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, "size=64k,mode=0700")
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "fw", signer.ECDSAP256)
	d := startDaemon(t, tok, "", filepath.Join(mnt, "audit.jsonl"))
	work := t.TempDir()
	var delivered []string
	sign := func(out string) (string, int) {
		errOut, rc := daemonSign(t, d.env(), work, standingURI(tok, "fw"), filepath.Join(work, out), "-v", "1.0.0+"+strconv.Itoa(len(delivered)))
		if rc == 0 {
			delivered = append(delivered, regionDigest(t, verifyImage(t, filepath.Join(work, out), k.Public())))
		}
		return errOut, rc
	}
	errOut, rc := sign("ok-1.bin")
	require.Zero(t, rc, errOut)

	filler := fill(t, mnt)
	// The log's last page may still have room for a few records.
	for i := 0; ; i++ {
		require.Less(t, i, 20, "the audit log never ran out of space")
		if _, rc := sign(fmt.Sprintf("filling-%d.bin", i)); rc != 0 {
			break
		}
	}
	for i := 0; i < 5; i++ {
		out := fmt.Sprintf("full-%d.bin", i)
		errOut, rc := sign(out)
		require.Equal(t, 1, rc, errOut)
		require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
		require.Contains(t, errOut, "cannot write its audit log")
		require.Contains(t, errOut, "no space left on device")
		require.NoFileExists(t, filepath.Join(work, out))
	}
	assertNoTempFiles(t, work)
	d.alive(t)
	require.Contains(t, d.stderr.String(), "AUDIT FAILURE")

	require.NoError(t, os.Remove(filler))
	errOut, rc = sign("ok-2.bin")
	require.Zero(t, rc, "after space was freed: %s", errOut)
	errOut, rc = sign("ok-3.bin")
	require.Zero(t, rc, errOut)

	auditVerify(t, d.auditLog)
	ok := okDigests(readAudit(t, d.auditLog))
	require.Len(t, ok, len(delivered), "one ok record per image delivered, none for the refused ones")
	for _, dg := range delivered {
		require.Equal(t, 1, ok[dg])
	}
}

// The audit log on a read-only filesystem: mcusignd refuses to start with
// it, naming the log; and when log rotation (SIGHUP) finds the log's
// directory read-only, requests fail until a later SIGHUP finds it
// writable, and the rotated files still form one valid chain.
func TestDaemonAuditReadOnly(t *testing.T) {
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "fw", signer.Ed25519)

	ro := mountTmpfs(t, "size=64k,ro")
	cmd := exec.Command(mcusigndBin, "serve", "--pin-file", tok.PINFile, "--token", tok.Label,
		"--socket-dir", filepath.Join(t.TempDir(), "sock"), "--audit-log", filepath.Join(ro, "audit.jsonl"))
	msg, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(msg), "cannot open audit log "+filepath.Join(ro, "audit.jsonl"))
	require.Contains(t, string(msg), "read-only file system")

	mnt := mountTmpfs(t, "size=256k,mode=0700")
	logPath := filepath.Join(mnt, "audit.jsonl")
	d := startDaemon(t, tok, "", logPath)
	work := t.TempDir()
	n := 0
	sign := func() (string, int) {
		n++
		out := filepath.Join(work, fmt.Sprintf("%d.bin", n))
		errOut, rc := daemonSign(t, d.env(), work, standingURI(tok, "fw"), out, "-v", "1.0.0+"+strconv.Itoa(n))
		if rc == 0 {
			verifyImage(t, out, k.Public())
		} else {
			require.NoFileExists(t, out)
		}
		return errOut, rc
	}
	errOut, rc := sign()
	require.Zero(t, rc, errOut)

	// Rotate onto a read-only filesystem mounted over the log's directory.
	require.NoError(t, os.Rename(logPath, logPath+".1"))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", mnt).CombinedOutput()
	require.NoError(t, err, string(out))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.True(t, d.stderr.waitFor(t, "AUDIT FAILURE: reopening the audit log"), d.stderr.String())
	require.Contains(t, d.stderr.String(), "read-only file system")
	for i := 0; i < 3; i++ {
		errOut, rc := sign()
		require.Equal(t, 1, rc)
		require.Contains(t, errOut, "cannot write its audit log")
	}
	d.alive(t)

	out, err = exec.Command("umount", mnt).CombinedOutput()
	require.NoError(t, err, string(out))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.True(t, d.stderr.waitFor(t, "reopened the audit log"), d.stderr.String())
	errOut, rc = sign()
	require.Zero(t, rc, errOut)

	require.Contains(t, auditVerify(t, logPath+".1", logPath), "audit log OK: 2 records")
}

// mcusignd is SIGKILLed three times while four clients sign in a loop, and
// restarted in the same socket directory with the same audit log. Every
// request either delivers an image that verifies or fails with one line
// and writes nothing; every delivered image has its "ok" record in the
// audit log (records without a delivered image may exist: the daemon died
// between its record and its reply); the chain verifies across restarts.
func TestDaemonKilledUnderLoad(t *testing.T) {
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "fw", signer.ECDSAP256)
	d := startDaemon(t, tok, "", "")
	sockDir, auditLog := d.sockDir, d.auditLog
	work := t.TempDir()
	const clients, rounds = 4, 3
	var okCount atomic.Int64
	var stop atomic.Bool
	var mu sync.Mutex
	var delivered []string
	failures := map[string]int{}
	env := d.env()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				out := filepath.Join(work, fmt.Sprintf("c%d-%d.bin", c, i))
				args := []string{"sign", "-k", standingURI(tok, "fw"), "-v", fmt.Sprintf("1.0.0+%d", c*1000000+i),
					"-H", "0x200", "--pad-header", "-S", "0x60000", "--align", "4", daemonApp(t), out}
				cmd := exec.Command(mcusignBin, args...)
				cmd.Env = env
				msg, err := cmd.CombinedOutput()
				mu.Lock()
				if err == nil {
					delivered = append(delivered, out)
					okCount.Add(1)
				} else {
					if _, serr := os.Stat(out); serr == nil {
						t.Errorf("a failed request left %s", out)
					}
					if strings.Count(string(msg), "\n") != 1 || strings.Contains(string(msg), "panic") {
						t.Errorf("failure is not one line: %q", msg)
					}
					failures[firstWords(string(msg))]++
				}
				mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { // also when a require below ends the test early
		stop.Store(true)
		wg.Wait()
	})
	for r := 0; r < rounds; r++ {
		base := okCount.Load()
		eventually(t, "signatures before the kill", func() bool { return okCount.Load() >= base+8 || t.Failed() })
		require.NoError(t, d.cmd.Process.Kill())
		<-d.exited
		d = startDaemon(t, tok, sockDir, auditLog)
	}
	base := okCount.Load()
	eventually(t, "signatures after the last restart", func() bool { return okCount.Load() >= base+8 || t.Failed() })
	stop.Store(true)
	wg.Wait()

	recs := readAudit(t, auditLog)
	ok := okDigests(recs)
	for _, out := range delivered {
		img := verifyImage(t, out, k.Public())
		require.GreaterOrEqual(t, ok[regionDigest(t, img)], 1, "%s was delivered without its audit record", out)
	}
	auditVerify(t, auditLog)
	assertNoTempFiles(t, work)
	t.Logf("%d images delivered, %d ok records, failures while the daemon was down: %v", len(delivered), len(ok), failures)
}

func firstWords(s string) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(len(f), 6)], " ")
}

// Clients that die mid-upload (SIGKILL after the start message and one
// chunk of a declared 1 MiB) do not leak: each time the daemon sees the
// connection go, ends the request (audited as an error), and its in-flight
// count and open descriptors return to where they were. The request
// deadline is 10 minutes, so it is the disconnect that frees them.
func TestDaemonClientKilledMidStream(t *testing.T) {
	tok := p11test.NewToken(t)
	tok.Generate(t, "fw", signer.ECDSAP256)
	d := startDaemon(t, tok, "", "", "--request-timeout", "10m")
	c := rawSigner(t, d)
	pid := d.cmd.Process.Pid
	require.Zero(t, daemonStatus(t, c).InFlight)
	baseFDs := openFDs(t, pid)

	const kills = 8
	for i := 0; i < kills; i++ {
		helper := exec.Command(os.Args[0], "-test.run=^$")
		helper.Env = append(os.Environ(), "MCUSIGN_TEST_HALF_SIGN="+d.sockDir, "MCUSIGN_TEST_KEY="+standingURI(tok, "fw"))
		stdout, err := helper.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, helper.Start())
		line, err := bufio.NewReader(stdout).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "upload started\n", line)
		eventually(t, "the upload in flight", func() bool { return daemonStatus(t, c).InFlight == 1 })
		require.NoError(t, helper.Process.Kill())
		_ = helper.Wait()
		eventually(t, "the daemon to end the abandoned request", func() bool { return daemonStatus(t, c).InFlight == 0 })
	}
	eventually(t, "the daemon's descriptors to return to their count before", func() bool { return openFDs(t, pid) <= baseFDs })

	errOut, rc := daemonSign(t, d.env(), t.TempDir(), standingURI(tok, "fw"), filepath.Join(t.TempDir(), "after.bin"))
	require.Zero(t, rc, errOut)
	var aborted int
	for _, r := range readAudit(t, d.auditLog) {
		if r.Event == "sign" && r.Result == "error" {
			aborted++
			require.Contains(t, r.Error, "went away")
		}
	}
	require.Equal(t, kills, aborted)
}

// Slow clients: 20 uploads that stall after their first chunk (more than
// --max-concurrent) do not keep a normal client from signing, since token
// slots are taken only once an image has arrived; each stalled upload ends
// at the request deadline (10 s, far more than setting up the stalls
// takes) with DeadlineExceeded, is audited, and leaves nothing in flight.
func TestDaemonSlowClients(t *testing.T) {
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "fw", signer.Ed25519)
	d := startDaemon(t, tok, "", "", "--request-timeout", "10s", "--max-concurrent", "4")
	c := rawSigner(t, d)
	const stalled = 20
	type result struct {
		code codes.Code
		msg  string
	}
	results := make(chan result, stalled)
	for i := 0; i < stalled; i++ {
		stream, err := c.Sign(context.Background())
		require.NoError(t, err)
		require.NoError(t, stream.Send(&pb.SignChunk{Msg: &pb.SignChunk_Start{Start: &pb.SignStart{KeyUri: standingURI(tok, "fw"), Hash: pb.HashAlgorithm_HASH_ALGORITHM_SHA256, Size: 1 << 20}}}))
		require.NoError(t, stream.Send(&pb.SignChunk{Msg: &pb.SignChunk_Data{Data: make([]byte, 1000)}}))
		go func() {
			// Wait for the daemon's answer without ever finishing the upload.
			err := stream.RecvMsg(new(pb.SignResponse))
			s, _ := status.FromError(err)
			results <- result{s.Code(), s.Message()}
		}()
	}
	eventually(t, "the stalled uploads in flight", func() bool { return daemonStatus(t, c).InFlight == stalled })
	work := t.TempDir()
	errOut, rc := daemonSign(t, d.env(), work, standingURI(tok, "fw"), filepath.Join(work, "normal.bin"))
	require.Zero(t, rc, "a normal client behind %d stalled ones: %s", stalled, errOut)
	verifyImage(t, filepath.Join(work, "normal.bin"), k.Public())

	timer := time.NewTimer(daemonWaitLimit)
	defer timer.Stop()
	for i := 0; i < stalled; i++ {
		select {
		case r := <-results:
			require.Equal(t, codes.DeadlineExceeded, r.code, r.msg)
			require.Contains(t, r.msg, "did not arrive within mcusignd's request deadline")
		case <-timer.C:
			t.Fatal("stalled uploads were never ended by the daemon")
		}
	}
	eventually(t, "nothing in flight", func() bool { return daemonStatus(t, c).InFlight == 0 })
	var timedOut int
	for _, r := range readAudit(t, d.auditLog) {
		if r.Event == "sign" && r.Result == "error" && strings.Contains(r.Error, "deadline") {
			timedOut++
		}
	}
	require.Equal(t, stalled, timedOut)
}
