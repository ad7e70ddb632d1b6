package main

// Tests of mcusign with mcusignd: real processes, real sockets, throwaway
// SoftHSM tokens. A standing daemon is started per test with its own socket
// directory, PIN file and audit log; commands reach it through
// MCUSIGN_SOCKET_DIR.

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/filekey"
	"github.com/mcusign/mcusign/signer/pkcs11key"
	"github.com/mcusign/mcusign/signer/pkcs11key/p11test"
)

// daemonWaitLimit bounds every wait on a process; it is generous so that a
// loaded CI machine never fails a test by timing.
const daemonWaitLimit = 2 * time.Minute

// procLines collects a process's output and lets tests wait for a line.
type procLines struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	cond  *sync.Cond
	done  bool
	ended chan struct{} // closed when the stream has been read to its end
}

func newProcLines(r io.Reader) *procLines {
	l := &procLines{ended: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	go func() {
		defer close(l.ended)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.buf.WriteString(sc.Text() + "\n")
			l.cond.Broadcast()
			l.mu.Unlock()
		}
		l.mu.Lock()
		l.done = true
		l.cond.Broadcast()
		l.mu.Unlock()
	}()
	return l
}

func (l *procLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor waits until the output contains s; false if the stream ended
// first.
func (l *procLines) waitFor(t testing.TB, s string) bool {
	t.Helper()
	timer := time.AfterFunc(daemonWaitLimit, func() {
		l.mu.Lock()
		l.done = true
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	defer timer.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for !strings.Contains(l.buf.String(), s) {
		if l.done {
			return false
		}
		l.cond.Wait()
	}
	return true
}

type daemonProc struct {
	cmd      *exec.Cmd
	sockDir  string
	auditLog string
	stderr   *procLines
	exited   chan struct{}
	exitErr  error
}

// startDaemon runs `mcusignd serve` for tok's token with its PIN file and
// waits until it serves. sockDir and auditLog may be "" for fresh ones.
func startDaemon(t testing.TB, tok *p11test.Token, sockDir, auditLog string, extra ...string) *daemonProc {
	t.Helper()
	if sockDir == "" {
		sockDir = filepath.Join(t.TempDir(), "sock")
	}
	if auditLog == "" {
		auditLog = filepath.Join(t.TempDir(), "audit.jsonl")
	}
	args := append([]string{"serve", "--pin-file", tok.PINFile, "--token", tok.Label,
		"--socket-dir", sockDir, "--audit-log", auditLog}, extra...)
	cmd := exec.Command(mcusigndBin, args...)
	errPipe, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	d := &daemonProc{cmd: cmd, sockDir: sockDir, auditLog: auditLog, stderr: newProcLines(errPipe), exited: make(chan struct{})}
	go func() {
		// Wait closes the pipe: only after its last lines were read.
		<-d.stderr.ended
		d.exitErr = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() { d.stop(t) })
	require.True(t, d.stderr.waitFor(t, "mcusignd: serving on"), "mcusignd did not start:\n%s", d.stderr)
	return d
}

// stop ends the daemon with SIGTERM, as systemd does.
func (d *daemonProc) stop(t testing.TB) {
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(daemonWaitLimit):
			_ = d.cmd.Process.Kill()
			<-d.exited
			t.Errorf("mcusignd ignored SIGTERM:\n%s", d.stderr)
		}
	}
	// Built with -race (GOFLAGS=-race go test), the daemon reports here.
	if strings.Contains(d.stderr.String(), "DATA RACE") {
		t.Errorf("mcusignd has a data race:\n%s", d.stderr)
	}
}

func (d *daemonProc) env() []string {
	return append(os.Environ(), EnvSocketDir+"="+d.sockDir)
}

// runEnv runs mcusign with env in dir; it returns stdout, stderr and the exit
// code, and fails if either PIN appears.
func runEnv(t testing.TB, env []string, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(mcusignBin, args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	out, errOut := stdout.String(), stderr.String()
	require.NotContains(t, out+errOut, p11test.PIN, "the PIN leaked")
	require.NotContains(t, out+errOut, p11test.SOPIN, "the SO PIN leaked")
	return out, errOut, cmd.ProcessState.ExitCode()
}

// standingURI names a key without module or PIN, as a standing daemon wants.
func standingURI(tok *p11test.Token, object string) string {
	return pkcs11key.URI{Token: tok.Label, Object: object}.String()
}

var daemonSignArgs = []string{"-v", "1.2.3+4", "-H", "0x200", "--pad-header", "-S", "0x60000", "--align", "4"}

func daemonApp(t testing.TB) string {
	app, err := filepath.Abs(filepath.Join(vectorsDir, "inputs", "app-100k.bin"))
	require.NoError(t, err)
	return app
}

func daemonSign(t testing.TB, env []string, dir, key, out string, extra ...string) (string, int) {
	t.Helper()
	args := append(append([]string{"sign", "-k", key}, daemonSignArgs...), extra...)
	_, errOut, rc := runEnv(t, env, dir, append(args, daemonApp(t), out)...)
	return errOut, rc
}

// sameOutsideSignature: both images verify with pub and are identical
// except for the signature value (RSA-PSS and ECDSA are randomized).
func sameOutsideSignature(t *testing.T, pub crypto.PublicKey, a, b []byte) {
	t.Helper()
	_, err := signer.Verify(a, pub)
	require.NoError(t, err)
	_, err = signer.Verify(b, pub)
	require.NoError(t, err)
	ia, err := signer.Inspect(a, "a")
	require.NoError(t, err)
	ib, err := signer.Inspect(b, "b")
	require.NoError(t, err)
	end := int(ia.Header.HdrSize) + int(ia.Header.ImgSize) + int(ia.Header.ProtectedTLVSize)
	require.Equal(t, a[:end], b[:end])
	require.Equal(t, len(ia.TLVs), len(ib.TLVs))
	for i := range ia.TLVs {
		require.Equal(t, ia.TLVs[i].Type, ib.TLVs[i].Type)
		switch ia.TLVs[i].Type {
		case signer.TLVECDSASig, signer.TLVRSA2048, signer.TLVRSA3072:
			continue
		}
		require.Equal(t, ia.TLVs[i], ib.TLVs[i])
	}
}

func auditRecords(t *testing.T, path, event string) []string {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if strings.Contains(l, `"event":"`+event+`"`) {
			out = append(out, l)
		}
	}
	return out
}

// Standing daemon: every key type signs through it, and the image equals
// what mcusign makes with the token in-process (byte for byte for Ed25519,
// outside the randomized signature for RSA and ECDSA). getpub agrees too.
// SIGTERM then removes the socket and the descriptor.
func TestDaemonStandingSignsLikeInProcess(t *testing.T) {
	tok, _ := vectorToken(t)
	d := startDaemon(t, tok, "", "")
	work := t.TempDir()
	inproc := append(os.Environ(), EnvInProcess+"=1")
	cases := []struct{ name, kt string }{
		{"rsa-2048", "rsa-2048"}, {"rsa-3072", "rsa-3072"}, {"ecdsa-p256", "ecdsa-p256"},
		{"ecdsa-p384", "ecdsa-p384"}, {"ed25519", "ed25519"}, {"ed25519-pure", "ed25519"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var extra []string
			if strings.HasSuffix(c.name, "-pure") {
				extra = []string{"--pure"}
			}
			viaDaemon := filepath.Join(work, c.name+".daemon.bin")
			errOut, rc := daemonSign(t, d.env(), work, standingURI(tok, c.kt), viaDaemon, extra...)
			require.Zero(t, rc, errOut)
			inProc := filepath.Join(work, c.name+".inproc.bin")
			errOut, rc = daemonSign(t, inproc, work, tok.URI(c.kt), inProc, extra...)
			require.Zero(t, rc, errOut)

			a, _ := os.ReadFile(viaDaemon)
			b, _ := os.ReadFile(inProc)
			k, err := filekey.LoadFile(filepath.Join(vectorsDir, "keys", c.kt+".pem"), nil)
			require.NoError(t, err)
			if c.kt == "ed25519" {
				require.Equal(t, b, a, "Ed25519 signatures are deterministic: the images must be identical")
			}
			sameOutsideSignature(t, k.Public, a, b)

			out1, errOut, rc := runEnv(t, d.env(), work, "getpub", "-k", standingURI(tok, c.kt))
			require.Zero(t, rc, errOut)
			out2, errOut, rc := runEnv(t, inproc, work, "getpub", "-k", tok.URI(c.kt))
			require.Zero(t, rc, errOut)
			require.Equal(t, out2, out1)
		})
	}

	out, errOut, rc := runEnv(t, d.env(), work, "status")
	require.Zero(t, rc, errOut)
	require.Contains(t, out, "mode:       standing mcusignd")
	require.Contains(t, out, "version:    "+Version)
	require.Contains(t, out, "signatures: 6 made, 0 failed")
	require.Contains(t, out, "ed25519    pkcs11:token="+tok.Label+";object=ed25519;") // the served token's keys
	recs := auditRecords(t, d.auditLog, "sign")
	require.Len(t, recs, 6)
	require.Contains(t, recs[5], `"signature_type":"Ed25519-pure"`)
	require.Contains(t, recs[0], `"version":"1.2.3+4"`)
	require.Contains(t, recs[0], fmt.Sprintf(`"peer":{"uid":%d`, os.Getuid()))
	require.Contains(t, recs[0], `"exe":"`+mcusignBin+`"`)

	d.stop(t)
	require.NoError(t, d.exitErr, d.stderr.String())
	entries, err := os.ReadDir(d.sockDir)
	require.NoError(t, err)
	require.Empty(t, entries, "SIGTERM must remove the socket and the descriptor")
	require.Contains(t, d.stderr.String(), "finishing the requests in flight")
}

// mcusigndProcs lists the running processes whose executable is exe.
func mcusigndProcs(t *testing.T, exe string) []int {
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && p == exe {
			pids = append(pids, pid)
		}
	}
	return pids
}

func copyExecutable(t *testing.T, from, to string) {
	data, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, data, 0o755))
}

// The test binary doubles as a stranger to an on-demand daemon: with
// MCUSIGN_TEST_DIAL set to a socket it asks the daemon for its status and
// prints the gRPC code it got.
func init() {
	if sock := os.Getenv("MCUSIGN_TEST_DIAL"); sock != "" {
		cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), daemonWaitLimit)
			_, err = plugin.NewClient(cc).Status(ctx)
			cancel()
		}
		fmt.Println(plugin.Code(err))
		os.Exit(0)
	}
}

// An on-demand daemon serves the process that started it and nobody else:
// another process of the same user that finds its socket is refused by
// the kernel-reported peer pid, while the parent's own calls work.
func TestOnDemandAdmitsOnlyItsParent(t *testing.T) {
	sockDir := t.TempDir()
	cmd := exec.Command(mcusigndBin, "serve", "--on-demand", "--socket-dir", sockDir, "--audit-log", filepath.Join(t.TempDir(), "audit.jsonl"))
	var stderr bytes.Buffer
	conn, err := plugin.Launch(cmd, sockDir, &stderr)
	require.NoError(t, err, stderr.String())
	defer conn.Close()
	st, err := conn.Status(context.Background())
	require.NoError(t, err)
	require.Equal(t, "on-demand", st.Mode)

	socks, err := filepath.Glob(filepath.Join(sockDir, "plugin*"))
	require.NoError(t, err)
	require.Len(t, socks, 1, "the daemon's socket")
	stranger := exec.Command(os.Args[0], "-test.run=^$")
	stranger.Env = append(os.Environ(), "MCUSIGN_TEST_DIAL="+socks[0])
	out, err := stranger.Output()
	require.NoError(t, err)
	require.Equal(t, codes.Unavailable.String(), strings.TrimSpace(string(out)), "a process other than the parent got through")

	_, err = conn.Status(context.Background()) // the parent still can
	require.NoError(t, err)
}

// MCUSIGN_DAEMON may be a wrapper script that runs mcusignd as its child
// (not exec): the daemon is told which process to admit, so it is still
// the mcusign command, not the script. A wrapper that makes the daemon
// refuse mcusign (here: admit pid 1 instead) gives a one-line error at
// once; the daemon, orphaned by the killed script, still goes.
func TestOnDemandThroughWrapper(t *testing.T) {
	tok := p11test.NewToken(t)
	tok.Generate(t, "fw", signer.ECDSAP256)
	dir, work := t.TempDir(), t.TempDir()
	for _, tc := range []struct {
		name, extra string
		ok          bool
	}{{"runs mcusignd", "", true}, {"makes it refuse mcusign", " --parent-pid 1", false}} {
		t.Run(tc.name, func(t *testing.T) {
			wrapper := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			script := "#!/bin/sh\n" + strconv.Quote(mcusigndBin) + " \"$@\"" + tc.extra + "\n"
			require.NoError(t, os.WriteFile(wrapper, []byte(script), 0o755))
			ctx, cancel := context.WithTimeout(context.Background(), daemonWaitLimit)
			defer cancel()
			out := filepath.Join(work, tc.name+".bin")
			cmd := exec.CommandContext(ctx, mcusignBin, append(append([]string{"sign", "-k", tok.URI("fw")}, daemonSignArgs...), daemonApp(t), out)...)
			cmd.Env = append(os.Environ(), EnvDaemon+"="+wrapper)
			msg, err := cmd.CombinedOutput()
			require.NoError(t, ctx.Err(), "mcusign hung")
			if tc.ok {
				require.NoError(t, err, "%s", msg)
				return
			}
			require.Error(t, err)
			require.Equal(t, 1, strings.Count(strings.TrimSpace(string(msg)), "\n")+1, "one line: %s", msg)
			require.Contains(t, string(msg), "closed the connection")
			require.NoFileExists(t, out)
		})
	}
}

// Without a standing daemon, mcusign starts mcusignd (found next to
// itself) for each command, which audits into the user's state directory
// and is gone when the command ends.
func TestDaemonOnDemand(t *testing.T) {
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "fw", signer.ECDSAP256)
	bin := t.TempDir()
	copyExecutable(t, mcusignBin, filepath.Join(bin, "mcusign"))
	copyExecutable(t, mcusigndBin, filepath.Join(bin, "mcusignd"))
	state := t.TempDir()
	env := append(os.Environ(), "XDG_STATE_HOME="+state)
	work := t.TempDir()
	runBin := func(args ...string) (string, string, int) {
		cmd := exec.Command(filepath.Join(bin, "mcusign"), args...)
		cmd.Dir, cmd.Env = work, env
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		_ = cmd.Run()
		require.NotContains(t, o.String()+e.String(), p11test.PIN)
		return o.String(), e.String(), cmd.ProcessState.ExitCode()
	}

	out, errOut, rc := runBin("status")
	require.Zero(t, rc, errOut)
	require.Contains(t, out, "mode:       on-demand")
	require.Contains(t, out, filepath.Join(bin, "mcusignd"))

	signed := filepath.Join(work, "signed.bin")
	_, errOut, rc = runBin(append(append([]string{"sign", "-k", tok.URI("fw")}, daemonSignArgs...), daemonApp(t), signed)...)
	require.Zero(t, rc, errOut)
	img, err := os.ReadFile(signed)
	require.NoError(t, err)
	_, err = signer.Verify(img, k.Public())
	require.NoError(t, err)
	require.Empty(t, mcusigndProcs(t, filepath.Join(bin, "mcusignd")), "an on-demand mcusignd outlived its command")

	logPath := filepath.Join(state, "mcusign", "audit.jsonl")
	recs := auditRecords(t, logPath, "sign")
	require.Len(t, recs, 1)
	require.Contains(t, recs[0], `"mode":"on-demand"`)
	require.Contains(t, recs[0], `"exe":"`+filepath.Join(bin, "mcusign")+`"`)
	out, errOut, rc = runBin("audit", "verify", logPath)
	require.Zero(t, rc, errOut)
	require.Contains(t, out, "audit log OK: 1 records")

	// Without mcusignd anywhere, the error says how to get one.
	require.NoError(t, os.Remove(filepath.Join(bin, "mcusignd")))
	env = append(env, "PATH=/nonexistent")
	_, errOut, rc = runBin(append(append([]string{"sign", "-k", tok.URI("fw")}, daemonSignArgs...), daemonApp(t), signed+"2")...)
	require.Equal(t, 1, rc)
	require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	require.Contains(t, errOut, "mcusignd not found")
	require.Contains(t, errOut, EnvDaemon)
	require.NoFileExists(t, signed+"2")
}

// 8 clients sign 25 images each at once through one daemon: all succeed
// and verify, the audit log holds exactly 200 records and verifies, and
// editing one byte or deleting a line makes verification fail naming the
// line.
func TestDaemonConcurrentClientsAudit(t *testing.T) {
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "fw", signer.ECDSAP256)
	d := startDaemon(t, tok, "", "", "--max-concurrent", "4")
	work := t.TempDir()
	const clients, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan string, clients*each)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				out := filepath.Join(work, fmt.Sprintf("c%d-%d.bin", c, i))
				cmd := exec.Command(mcusignBin, append(append([]string{"sign", "-k", standingURI(tok, "fw")}, daemonSignArgs...), daemonApp(t), out)...)
				cmd.Env = d.env()
				if msg, err := cmd.CombinedOutput(); err != nil {
					errs <- fmt.Sprintf("client %d image %d: %v: %s", c, i, err, msg)
					continue
				}
				img, err := os.ReadFile(out)
				if err == nil {
					_, err = signer.Verify(img, k.Public())
				}
				if err != nil {
					errs <- fmt.Sprintf("client %d image %d: %v", c, i, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	require.False(t, t.Failed())

	require.Len(t, auditRecords(t, d.auditLog, "sign"), clients*each)
	out, errOut, rc := runEnv(t, os.Environ(), work, "audit", "verify", d.auditLog)
	require.Zero(t, rc, errOut)
	require.Contains(t, out, "audit log OK: 200 records")

	orig, err := os.ReadFile(d.auditLog)
	require.NoError(t, err)
	ls := strings.SplitAfter(string(orig), "\n")
	tampered := filepath.Join(work, "tampered.jsonl")
	// One byte of line 17 (its image digest) changed.
	edited := strings.Join(ls[:16], "") + flipDigestByte(ls[16]) + strings.Join(ls[17:], "")
	require.NoError(t, os.WriteFile(tampered, []byte(edited), 0o600))
	_, errOut, rc = runEnv(t, os.Environ(), work, "audit", "verify", tampered)
	require.Equal(t, 1, rc)
	require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	require.Contains(t, errOut, "line 17: record altered")
	// Line 42 removed.
	require.NoError(t, os.WriteFile(tampered, []byte(strings.Join(ls[:41], "")+strings.Join(ls[42:], "")), 0o600))
	_, errOut, rc = runEnv(t, os.Environ(), work, "audit", "verify", tampered)
	require.Equal(t, 1, rc)
	require.Contains(t, errOut, "line 42: hash chain broken")
}

// flipDigestByte changes one character in the middle of an audit line.
func flipDigestByte(line string) string {
	b := []byte(line)
	i := strings.Index(line, `"digest":"`) + len(`"digest":"`)
	if b[i] == '0' {
		b[i] = '1'
	} else {
		b[i] = '0'
	}
	return string(b)
}

// A peer outside the allow list is refused at connect time, before any
// RPC, and the refusal is audited: first root excluded by --allow-uid, then
// uid 65534 (through the --group socket) refused by its peer credentials.
// A client cannot shut the daemon down with go-plugin's Shutdown RPC.
func TestDaemonAccessControl(t *testing.T) {
	tok := p11test.NewToken(t)
	tok.Generate(t, "fw", signer.Ed25519)
	work := t.TempDir()

	t.Run("uid not allowed", func(t *testing.T) {
		d := startDaemon(t, tok, "", "", "--allow-uid", "4242")
		out := filepath.Join(work, "refused.bin")
		errOut, rc := daemonSign(t, d.env(), work, standingURI(tok, "fw"), out)
		require.Equal(t, 1, rc)
		require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
		require.Contains(t, errOut, fmt.Sprintf("does not allow this user (uid %d)", os.Getuid()))
		require.NoFileExists(t, out)
		refused := auditRecords(t, d.auditLog, "connection-refused")
		require.NotEmpty(t, refused)
		require.Contains(t, refused[0], fmt.Sprintf(`"peer":{"uid":%d`, os.Getuid()))
		require.Contains(t, refused[0], `"exe":"`+mcusignBin+`"`)
		require.Contains(t, refused[0], "not allowed")
		require.Empty(t, auditRecords(t, d.auditLog, "sign"), "no request may get through")
	})

	t.Run("another user through the group socket", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("needs root to run the client as uid 65534")
		}
		// Everything the client touches must be reachable by uid 65534.
		base, err := os.MkdirTemp("", "mcusign-acl-")
		require.NoError(t, err)
		defer os.RemoveAll(base)
		require.NoError(t, os.Chmod(base, 0o755))
		bin := filepath.Join(base, "mcusign")
		copyExecutable(t, mcusignBin, bin)
		cwd := filepath.Join(base, "work")
		require.NoError(t, os.Mkdir(cwd, 0o777))
		require.NoError(t, os.Chmod(cwd, 0o777))
		app := filepath.Join(base, "app.bin")
		copyExecutable(t, daemonApp(t), app)
		d := startDaemon(t, tok, filepath.Join(base, "sock"), "", "--group", "65534", "--allow-uid", "0")
		st, err := os.Stat(d.sockDir)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o750), st.Mode().Perm())
		desc, err := plugin.ReadDescriptor(d.sockDir)
		require.NoError(t, err)
		st, err = os.Stat(desc.Address)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o660), st.Mode().Perm())
		require.EqualValues(t, 65534, st.Sys().(*syscall.Stat_t).Gid)

		cmd := exec.Command(bin, append(append([]string{"sign", "-k", standingURI(tok, "fw")}, daemonSignArgs...), app, "out.bin")...)
		cmd.Dir, cmd.Env = cwd, append(d.env(), "HOME="+cwd)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		msg, err := cmd.CombinedOutput()
		require.Error(t, err)
		require.Contains(t, string(msg), "does not allow this user (uid 65534)")
		require.NoFileExists(t, filepath.Join(cwd, "out.bin"))
		refused := auditRecords(t, d.auditLog, "connection-refused")
		require.NotEmpty(t, refused) // gRPC may have redialled once
		for _, r := range refused {
			require.Contains(t, r, `"peer":{"uid":65534,"gid":65534`)
		}
		require.Empty(t, auditRecords(t, d.auditLog, "sign"))
	})

	t.Run("clients cannot shut it down", func(t *testing.T) {
		d := startDaemon(t, tok, "", "")
		desc, err := plugin.ReadDescriptor(d.sockDir)
		require.NoError(t, err)
		cc, err := grpc.Dial("unix://"+desc.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		defer cc.Close()
		err = cc.Invoke(context.Background(), plugin.ShutdownMethod, &emptypb.Empty{}, &emptypb.Empty{})
		require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

		// go-plugin's own client sends Shutdown when it closes; attach
		// through it as mcusign does, close, and sign again.
		for i := 0; i < 2; i++ {
			conn, err := plugin.Probe(desc)
			require.NoError(t, err)
			c, err := plugin.Attach(desc, conn)
			require.NoError(t, err)
			_, err = c.Status(context.Background())
			require.NoError(t, err)
			require.NoError(t, c.Ping(context.Background()), "the health check a standing daemon serves")
			c.Close()
		}
		out := filepath.Join(work, "after-shutdown.bin")
		errOut, rc := daemonSign(t, d.env(), work, standingURI(tok, "fw"), out)
		require.Zero(t, rc, errOut)
		require.FileExists(t, out)
		select {
		case <-d.exited:
			t.Fatalf("mcusignd exited:\n%s", d.stderr)
		default:
		}
		refused := auditRecords(t, d.auditLog, "request-refused")
		require.Len(t, refused, 1)
		require.Contains(t, refused[0], `"method":"`+plugin.ShutdownMethod+`"`)
	})
}

// SIGKILL while a request is in flight: the client fails with one clear
// line and writes nothing; a restarted daemon (same socket directory,
// stale descriptor) serves the next request.
func TestDaemonKilledMidRequest(t *testing.T) {
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "fw", signer.ECDSAP384)
	d := startDaemon(t, tok, "", "", "--test-hold-sign")
	work := t.TempDir()
	out := filepath.Join(work, "out.bin")
	cmd := exec.Command(mcusignBin, append(append([]string{"sign", "-k", standingURI(tok, "fw")}, daemonSignArgs...), daemonApp(t), out)...)
	cmd.Dir, cmd.Env = work, d.env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	require.True(t, d.stderr.waitFor(t, "test hook: holding a sign request"), d.stderr.String())
	require.NoError(t, d.cmd.Process.Kill())
	<-d.exited
	select {
	case <-done:
	case <-time.After(daemonWaitLimit):
		_ = cmd.Process.Kill()
		t.Fatal("mcusign hung after the daemon died")
	}
	require.Equal(t, 1, cmd.ProcessState.ExitCode())
	msg := stderr.String()
	require.Equal(t, 1, strings.Count(msg, "\n"), msg)
	require.Contains(t, msg, "closed the connection while")
	require.NotContains(t, msg, "panic")
	require.NoFileExists(t, out)
	assertNoTempFiles(t, work)

	d2 := startDaemon(t, tok, d.sockDir, d.auditLog)
	errOut, rc := daemonSign(t, d2.env(), work, standingURI(tok, "fw"), out)
	require.Zero(t, rc, errOut)
	img, err := os.ReadFile(out)
	require.NoError(t, err)
	_, err = signer.Verify(img, k.Public())
	require.NoError(t, err)
	_, errOut, rc = runEnv(t, os.Environ(), work, "audit", "verify", d.auditLog)
	require.Zero(t, rc, errOut)
}

// SIGTERM with a request in flight: the request completes with a valid
// signature and its audit record, then the daemon exits cleanly, removing
// its socket and descriptor. The socket was owner-only.
func TestDaemonSIGTERMDrains(t *testing.T) {
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "fw", signer.RSA2048)
	d := startDaemon(t, tok, "", "", "--test-hold-sign")
	desc, err := plugin.ReadDescriptor(d.sockDir)
	require.NoError(t, err)
	require.Equal(t, d.cmd.Process.Pid, desc.PID)
	st, err := os.Stat(desc.Address)
	require.NoError(t, err)
	require.Equal(t, os.ModeSocket|0o600, st.Mode()&(os.ModeSocket|os.ModePerm))
	st, err = os.Stat(d.sockDir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())

	work := t.TempDir()
	out := filepath.Join(work, "out.bin")
	cmd := exec.Command(mcusignBin, append(append([]string{"sign", "-k", standingURI(tok, "fw")}, daemonSignArgs...), daemonApp(t), out)...)
	cmd.Dir, cmd.Env = work, d.env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	require.True(t, d.stderr.waitFor(t, "test hook: holding a sign request"), d.stderr.String())
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), stderr.String())
	img, err := os.ReadFile(out)
	require.NoError(t, err)
	_, err = signer.Verify(img, k.Public())
	require.NoError(t, err)
	select {
	case <-d.exited:
	case <-time.After(daemonWaitLimit):
		t.Fatalf("mcusignd did not exit after draining:\n%s", d.stderr)
	}
	require.NoError(t, d.exitErr, d.stderr.String())
	require.NoFileExists(t, desc.Address)
	require.NoFileExists(t, filepath.Join(d.sockDir, plugin.DescriptorName))
	require.Len(t, auditRecords(t, d.auditLog, "sign"), 1)
}

// The PIN is in no argv, log line, audit record or error, even when a
// client puts it in a URI or the daemon is given a wrong one. SIGHUP
// reopens the audit log after rotation without breaking the chain.
func TestDaemonPINNeverLeaks(t *testing.T) {
	tok := p11test.NewToken(t)
	tok.Generate(t, "fw", signer.ECDSAP256)
	work := t.TempDir()
	d := startDaemon(t, tok, "", "")
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", d.cmd.Process.Pid))
	require.NoError(t, err)
	require.NotContains(t, string(cmdline), p11test.PIN)

	withPIN := pkcs11key.URI{Token: tok.Label, Object: "fw"}.String() + "?pin-value=" + p11test.PIN
	for _, tc := range []struct {
		key, want string
	}{
		{withPIN, "refuses pin-value"},
		{standingURI(tok, "nope"), "fw"},
		{tok.URI("fw"), "refuses module-path, pin-source"},
		{"pkcs11:token=" + tok.Label + ";object=fw;junk=1?pin-value=" + p11test.PIN, "junk"},
	} {
		out := filepath.Join(work, "out.bin")
		errOut, rc := daemonSign(t, d.env(), work, tc.key, out)
		require.NotZero(t, rc)
		require.Equal(t, 1, strings.Count(errOut, "error:"), errOut) // plus the pin-value warning
		require.Contains(t, errOut, tc.want)
		require.NoFileExists(t, out)
	}
	errOut, rc := daemonSign(t, d.env(), work, standingURI(tok, "fw"), filepath.Join(work, "ok.bin"))
	require.Zero(t, rc, errOut)

	// Rotate: SIGHUP makes the daemon continue the chain in a new file.
	require.NoError(t, os.Rename(d.auditLog, d.auditLog+".1"))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.True(t, d.stderr.waitFor(t, "reopened the audit log"), d.stderr.String())
	errOut, rc = daemonSign(t, d.env(), work, standingURI(tok, "fw"), filepath.Join(work, "ok2.bin"))
	require.Zero(t, rc, errOut)
	out, errOut, rc := runEnv(t, os.Environ(), work, "audit", "verify", d.auditLog+".1", d.auditLog)
	require.Zero(t, rc, errOut)
	// 2 refused lookups (pin-value; module-path and pin-source) and a
	// signature before the rotation, a signature after it. Lookups that
	// merely fail (no such key) are not audited; the junk URI never left
	// mcusign.
	require.Contains(t, out, "audit log OK: 4 records")
	d.stop(t)

	// A wrong PIN stops the daemon at start, naming the problem.
	wrong := filepath.Join(work, "wrong.pin")
	require.NoError(t, os.WriteFile(wrong, []byte("Wrong-PIN-8d1e\n"), 0o600))
	bad := exec.Command(mcusigndBin, "serve", "--pin-file", wrong, "--token", tok.Label,
		"--socket-dir", filepath.Join(work, "sock2"), "--audit-log", filepath.Join(work, "a2.jsonl"))
	msg, err := bad.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(msg), "wrong PIN")
	require.NotContains(t, string(msg), "Wrong-PIN-8d1e")

	// --pin-env works and leaves no trace in argv.
	pe := exec.Command(mcusigndBin, "serve", "--pin-env", "MCUSIGN_TEST_PIN", "--token", tok.Label,
		"--socket-dir", filepath.Join(work, "sock3"), "--audit-log", filepath.Join(work, "a3.jsonl"))
	pe.Env = append(os.Environ(), "MCUSIGN_TEST_PIN="+p11test.PIN)
	errPipe, err := pe.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, pe.Start())
	peLog := newProcLines(errPipe)
	require.True(t, peLog.waitFor(t, "serving on"), peLog.String())
	cmdline, err = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pe.Process.Pid))
	require.NoError(t, err)
	require.NotContains(t, string(cmdline), p11test.PIN)
	require.NoError(t, pe.Process.Signal(syscall.SIGTERM))
	<-peLog.ended // all of its output, before Wait closes the pipe
	require.NoError(t, pe.Wait())

	for _, f := range []string{d.auditLog, d.auditLog + ".1", filepath.Join(work, "a2.jsonl")} {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		require.NotContains(t, string(data), p11test.PIN, f)
	}
	require.NotContains(t, d.stderr.String()+peLog.String(), p11test.PIN)
	require.Len(t, auditRecords(t, d.auditLog+".1", "request-refused"), 2)
}

// BenchmarkSignPKCS11 runs `mcusign sign` with a token key three ways: in
// process (MCUSIGN_INPROCESS=1, the raw PKCS#11 path), through a standing
// mcusignd, and through one started on demand for each command.
//
//	go test -run '^$' -bench SignPKCS11 ./cmd/mcusign/
func BenchmarkSignPKCS11(b *testing.B) {
	tok := p11test.NewToken(b)
	tok.Generate(b, "fw", signer.ECDSAP256)
	d := startDaemon(b, tok, "", "")
	work := b.TempDir()
	for _, m := range []struct {
		name, key string
		env       []string
	}{
		{"in-process", tok.URI("fw"), append(os.Environ(), EnvInProcess+"=1")},
		{"standing", standingURI(tok, "fw"), d.env()},
		{"on-demand", tok.URI("fw"), os.Environ()},
	} {
		b.Run(m.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if errOut, rc := daemonSign(b, m.env, work, m.key, filepath.Join(work, "out.bin")); rc != 0 {
					b.Fatal(errOut)
				}
			}
		})
	}
}
