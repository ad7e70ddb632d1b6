package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/signer/pkcs11key"
)

// Where mcusign finds mcusignd.
const (
	// EnvSocketDir names the directory of a standing mcusignd's socket and
	// descriptor. When set, a standing daemon is required there.
	EnvSocketDir = "MCUSIGN_SOCKET_DIR"
	// EnvDaemon names the mcusignd executable to launch on demand.
	EnvDaemon = "MCUSIGN_DAEMON"
	// EnvInProcess=1 opens pkcs11: keys inside mcusign, without mcusignd:
	// the raw path, for benchmarks and for debugging a token.
	EnvInProcess = "MCUSIGN_INPROCESS"
)

func inProcess() bool {
	v := os.Getenv(EnvInProcess)
	return v == "1" || strings.EqualFold(v, "true")
}

// socketDir is where a standing daemon announces itself, and whether the
// user chose it explicitly.
func socketDir() (string, bool) {
	if d := os.Getenv(EnvSocketDir); d != "" {
		return d, true
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "mcusign"), false
	}
	return filepath.Join("/run/user", strconv.Itoa(os.Getuid()), "mcusign"), false
}

// connectDaemon attaches to the standing mcusignd if one serves in the
// socket directory, else launches one for this command. uri (may be empty)
// is the key the command will use; an on-demand daemon may need its PIN.
//
// A command's operations share its connection to a standing daemon (the
// images of a --build-dir, -E's public key): the first connects, later ones
// get a view of it, and run closes it when the command ends.
func (e *env) connectDaemon(uri string) (*plugin.Conn, error) {
	defer trace.since("connect", time.Now())
	if e.standing != nil {
		return e.standing.Share(), nil
	}
	dir, explicit := socketDir()
	d, err := plugin.ReadDescriptor(dir)
	switch {
	case err == nil:
		conn, perr := plugin.Probe(d)
		if perr == nil {
			// The gRPC connection is made while the command goes on
			// (reading its input); calls wait for it.
			c, err := plugin.AttachInBackground(d, conn)
			if err != nil {
				return nil, err
			}
			e.standing = c
			return c.Share(), nil
		}
		if errors.Is(perr, syscall.EACCES) || errors.Is(perr, syscall.EPERM) {
			return nil, fmt.Errorf("mcusignd at %s does not let this user (uid %d) connect: permission denied on its socket; ask to be added to its --group", d.Address, os.Getuid())
		}
		if explicit {
			return nil, fmt.Errorf("no mcusignd is running in %s=%s (pid %d left a stale descriptor: %v); start it (systemctl start mcusignd) or unset %s to use an on-demand daemon", EnvSocketDir, dir, d.PID, perr, EnvSocketDir)
		}
	case !errors.Is(err, plugin.ErrNoDescriptor):
		return nil, err
	case explicit:
		return nil, fmt.Errorf("no mcusignd is running in %s=%s; start it (systemctl start mcusignd) or unset %s to use an on-demand daemon", EnvSocketDir, dir, EnvSocketDir)
	}
	return e.launchDaemon(uri)
}

// findDaemon locates mcusignd: $MCUSIGN_DAEMON (an explicit choice wins),
// next to this executable (how releases install them), then $PATH.
func findDaemon() (string, error) {
	if p := os.Getenv(EnvDaemon); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %v; point it at the mcusignd executable", EnvDaemon, p, err)
		}
		return p, nil
	}
	var next string
	if self, err := os.Executable(); err == nil {
		next = filepath.Join(filepath.Dir(self), "mcusignd")
		if st, err := os.Stat(next); err == nil && !st.IsDir() {
			return next, nil
		}
	}
	if p, err := exec.LookPath("mcusignd"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("mcusignd not found (looked for %s, in $PATH and $%s): install it next to mcusign, or set %s=/path/to/mcusignd, or %s=1 to use the token inside mcusign", next, EnvDaemon, EnvDaemon, EnvInProcess)
}

// needsPIN reports whether an on-demand daemon would have no PIN source
// for uri, so mcusign should ask on the terminal and hand the PIN over.
func (e *env) needsPIN(uri string) (string, bool) {
	if uri == "" || os.Getenv(pkcs11key.EnvPINFile) != "" {
		return "", false
	}
	u, err := pkcs11key.ParseURI(uri)
	if err != nil || u.PINSource != "" || u.HasPINValue() {
		return "", false
	}
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", false
	}
	return u.Token, true
}

// tailBuffer keeps the last bytes a daemon wrote to stderr, for messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 8<<10 {
		b.buf = b.buf[len(b.buf)-8<<10:]
	}
	return len(p), nil
}

func (b *tailBuffer) lastLine() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(b.buf)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// launchDaemon starts mcusignd as a go-plugin subprocess for one command.
// It gets a private socket directory that admits this process alone, a
// pipe whose closing tells it this process died, and, if it would have
// none, the PIN over a pipe (never argv or the environment).
func (e *env) launchDaemon(uri string) (*plugin.Conn, error) {
	path, err := findDaemon()
	if err != nil {
		return nil, err
	}
	var pin []byte
	if token, ok := e.needsPIN(uri); ok {
		p, err := e.promptPIN(context.Background(), fmt.Sprintf("PIN for token %q: ", token))
		if err != nil {
			return nil, fmt.Errorf("reading the PIN for token %q: %w", token, err)
		}
		pin = []byte(p)
	}
	sockDir, err := os.MkdirTemp("", "mcusign-ondemand-")
	if err != nil {
		return nil, err
	}
	parentR, parentW, err := os.Pipe()
	if err != nil {
		os.RemoveAll(sockDir)
		return nil, err
	}
	// --parent-pid: the daemon admits this process alone, also when
	// MCUSIGN_DAEMON is a wrapper script that does not exec it.
	args := []string{"serve", "--on-demand", "--socket-dir", sockDir, "--parent-fd", "3", "--parent-pid", strconv.Itoa(os.Getpid())}
	files := []*os.File{parentR}
	var pinR *os.File
	if len(pin) > 0 {
		var pinW *os.File
		if pinR, pinW, err = os.Pipe(); err != nil {
			parentR.Close()
			parentW.Close()
			os.RemoveAll(sockDir)
			return nil, err
		}
		// A PIN is far below the pipe buffer, so this does not block.
		_, err = pinW.Write(pin)
		pinW.Close()
		clear(pin)
		if err != nil {
			return nil, err
		}
		files = append(files, pinR)
		args = append(args, "--pin-fd", "4")
	}
	cmd := exec.Command(path, args...)
	cmd.ExtraFiles = files
	var stderr tailBuffer
	conn, err := plugin.Launch(cmd, sockDir, &stderr)
	parentR.Close()
	if pinR != nil {
		pinR.Close()
	}
	cleanup := func() {
		parentW.Close()
		os.RemoveAll(sockDir)
	}
	if err != nil {
		cleanup()
		why := stderr.lastLine()
		if why == "" {
			why = err.Error()
		}
		return nil, fmt.Errorf("cannot start %s for this command: %s", path, strings.TrimPrefix(why, "mcusignd serve: error: "))
	}
	// The daemon exits when this pipe closes: closed first, so that it goes
	// even if its Shutdown call fails (go-plugin's Kill then waits for the
	// daemon's output to end, which a wrapper script's orphaned child
	// would otherwise hold open).
	conn.BeforeClose(func() { parentW.Close() })
	conn.AfterClose(func() { os.RemoveAll(sockDir) })
	return conn, nil
}
