package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/mcusign/mcusign/cmd/internal/daemon"
	"github.com/mcusign/mcusign/cmd/internal/daemon/audit"
	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/plugin/fdpass"
	"github.com/mcusign/mcusign/plugin/peercred"
	"github.com/mcusign/mcusign/signer/pkcs11key"
)

// go-plugin reads the socket directory and group from these.
const (
	envPluginSocketDir   = "PLUGIN_UNIX_SOCKET_DIR"
	envPluginSocketGroup = "PLUGIN_UNIX_SOCKET_GROUP"
)

type serveFlags struct {
	module, pinFile, pinEnv    string
	socketDir, group, auditLog string
	tokens, allowUID, allowGID []string
	maxImageSize               string
	requestTimeout             time.Duration
	maxConcurrent              int
	allowKeygen                bool
	onDemand, testHoldSign     bool
	pinFD, parentFD, parentPID int
}

func newServeCmd(stderr io.Writer) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Serve signing requests on a unix socket until SIGTERM",
		Long: `Serve signing requests on a unix socket in --socket-dir until SIGTERM.

The PIN comes from --pin-file or from the environment variable named by
--pin-env, never from the command line. The socket is usable by this user
only, or by --group; every connection's peer credentials are checked
against --allow-uid/--allow-gid (default: this user, and --group) before any
request. Every signing request is recorded in --audit-log, and fsynced,
before the signature is returned.

Signals: SIGTERM/SIGINT finish the requests in flight, remove the socket and
the descriptor and exit; SIGHUP reopens the audit log (after rotation).`,
		Example: `  mcusignd serve --pin-file /etc/mcusign/pin --token release \
      --socket-dir /run/mcusign --group signers --audit-log /var/log/mcusign/audit.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Before the PIN is read or the token asked: a nonsense limit
			// must not quietly become the default, nor fail as a login
			// that timed out.
			if f.requestTimeout <= 0 {
				return usagef("--request-timeout %s is not a positive duration; use e.g. 30s or 2m", f.requestTimeout)
			}
			switch n := pkcs11key.SessionPoolSize; {
			case f.maxConcurrent < 1:
				return usagef("--max-concurrent %d allows no token operation; use 1 to %d", f.maxConcurrent, n)
			case f.maxConcurrent > n:
				return usagef("--max-concurrent %d exceeds the %d PKCS#11 sessions mcusignd keeps per token; use at most %d", f.maxConcurrent, n, n)
			}
			if f.onDemand {
				return serveOnDemand(f, stderr)
			}
			return serveStanding(f, stderr)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.module, "module", "", "PKCS#11 library (default: $"+pkcs11key.EnvModule+", else the system SoftHSM2)")
	fl.StringVar(&f.pinFile, "pin-file", "", "file holding the token's user PIN (one trailing newline is ignored)")
	fl.StringVar(&f.pinEnv, "pin-env", "", "name of an environment variable holding the PIN (removed from the environment once read)")
	fl.StringArrayVar(&f.tokens, "token", nil, "serve only this token (label; repeatable); logs in at start, so a wrong PIN fails at once")
	fl.StringVar(&f.socketDir, "socket-dir", "", "directory for the socket and its descriptor, created and owned by mcusignd (default $XDG_RUNTIME_DIR/mcusign)")
	fl.StringVar(&f.group, "group", "", "group (name or gid) whose members may use the socket; default: this user only")
	fl.StringArrayVar(&f.allowUID, "allow-uid", nil, "user (name or uid) allowed to connect; repeatable or comma-separated (default: this user)")
	fl.StringArrayVar(&f.allowGID, "allow-gid", nil, "group (name or gid) whose members may connect; repeatable or comma-separated (default: --group)")
	fl.StringVar(&f.auditLog, "audit-log", "", "append-only audit log (default ${XDG_STATE_HOME:-$HOME/.local/state}/mcusign/audit.jsonl)")
	fl.StringVar(&f.maxImageSize, "max-image-size", "32MiB", "largest image accepted for signing (bytes, or with KiB/MiB/GiB)")
	fl.DurationVar(&f.requestTimeout, "request-timeout", daemon.DefaultRequestTimeout, "deadline of one request, from arrival to signature")
	fl.IntVar(&f.maxConcurrent, "max-concurrent", pkcs11key.SessionPoolSize, "token operations at once; more requests queue until their deadline")
	fl.BoolVar(&f.allowKeygen, "allow-keygen", false, "let clients generate keys in the token (mcusign keygen)")
	// Internal: how mcusign runs mcusignd for one command.
	fl.BoolVar(&f.onDemand, "on-demand", false, "run as a go-plugin subprocess of one mcusign command")
	fl.IntVar(&f.pinFD, "pin-fd", -1, "read the PIN from this inherited file descriptor (on-demand)")
	fl.IntVar(&f.parentFD, "parent-fd", -1, "exit when this inherited pipe closes, i.e. the parent died (on-demand)")
	fl.IntVar(&f.parentPID, "parent-pid", 0, "the one process to admit (on-demand; default: the parent process, which a wrapper script would be)")
	fl.BoolVar(&f.testHoldSign, "test-hold-sign", false, "test hook: hold every sign request until it is cancelled")
	for _, h := range []string{"on-demand", "pin-fd", "parent-fd", "parent-pid", "test-hold-sign"} {
		_ = fl.MarkHidden(h)
	}
	return cmd
}

// logger writes the daemon's diagnostics: one line each, never a PIN.
type logger struct{ w io.Writer }

func (l logger) logf(format string, args ...any) {
	fmt.Fprintf(l.w, "mcusignd: "+format+"\n", args...)
}

// readPIN reads the PIN from a file or an environment variable, never argv.
func readPIN(f *serveFlags) (string, error) {
	switch {
	case f.pinFile != "" && f.pinEnv != "":
		return "", usagef("give the PIN with --pin-file or --pin-env, not both")
	case f.pinFile != "":
		st, err := os.Stat(f.pinFile)
		if err != nil {
			return "", fmt.Errorf("cannot read the PIN file: %v; create it (mode 0600) or fix --pin-file", err)
		}
		if st.Mode().Perm()&0o007 != 0 {
			return "", fmt.Errorf("the PIN file %s is readable by other users (mode %04o); chmod 0600 it", f.pinFile, st.Mode().Perm())
		}
		data, err := os.ReadFile(f.pinFile)
		if err != nil {
			return "", fmt.Errorf("cannot read the PIN file: %v", err)
		}
		return trimPIN(string(data), "the PIN file "+f.pinFile)
	case f.pinEnv != "":
		pin := os.Getenv(f.pinEnv)
		_ = os.Unsetenv(f.pinEnv)
		return trimPIN(pin, "environment variable "+f.pinEnv)
	}
	return "", usagef("no PIN source: pass --pin-file PATH (or --pin-env NAME); the PIN is never accepted on the command line")
}

func readPINFD(fd int) (string, error) {
	f := os.NewFile(uintptr(fd), "pin")
	if f == nil {
		return "", fmt.Errorf("--pin-fd %d is not an open file descriptor", fd)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return "", fmt.Errorf("reading the PIN from the parent: %v", err)
	}
	return trimPIN(string(data), "the PIN from mcusign")
}

func trimPIN(pin, from string) (string, error) {
	if s, ok := strings.CutSuffix(pin, "\r\n"); ok {
		pin = s
	} else {
		pin = strings.TrimSuffix(pin, "\n")
	}
	if pin == "" {
		return "", fmt.Errorf("%s is empty; it must hold the token's user PIN", from)
	}
	return pin, nil
}

// pinOptions hands the daemon's PIN to pkcs11key as its prompt, the last
// PIN source pkcs11key consults: standing daemons refuse URIs with
// pin-source/pin-value and drop MCUSIGN_PIN_FILE, so it is the only one.
func pinOptions(pin string, warn func(string)) pkcs11key.Options {
	o := pkcs11key.Options{Warn: warn}
	if pin != "" {
		o.Prompt = func(context.Context, string) (string, error) { return pin, nil }
	}
	return o
}

func defaultAuditLog() (string, error) {
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" {
		home := os.Getenv("HOME")
		if home == "" {
			return "", usagef("neither XDG_STATE_HOME nor HOME is set; pass --audit-log PATH")
		}
		state = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(state, "mcusign", "audit.jsonl"), nil
}

func defaultSocketDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "mcusign")
	}
	return filepath.Join("/run/user", strconv.Itoa(os.Getuid()), "mcusign")
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	t := strings.TrimSpace(s)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = v, u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 0, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, usagef("--max-image-size %q is not a size; use e.g. 33554432 or 32MiB", s)
	}
	return n * mult, nil
}

func lookupIDs(vals []string, group bool) ([]uint32, error) {
	var out []uint32
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			id, err := lookupID(s, group)
			if err != nil {
				return nil, err
			}
			out = append(out, id)
		}
	}
	return out, nil
}

func lookupID(s string, group bool) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	var id string
	if group {
		g, err := user.LookupGroup(s)
		if err != nil {
			return 0, usagef("unknown group %q; give a group name or a numeric gid", s)
		}
		id = g.Gid
	} else {
		u, err := user.Lookup(s)
		if err != nil {
			return 0, usagef("unknown user %q; give a user name or a numeric uid", s)
		}
		id = u.Uid
	}
	n, err := strconv.ParseUint(id, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q has the non-numeric id %q", s, id)
	}
	return uint32(n), nil
}

// prepareSocketDir creates dir (or checks an existing one): owned by us,
// mode 0700, or 0750 with group gid so its members can reach the socket.
func prepareSocketDir(dir string, gid int) error {
	st, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(dir, 0o700); err != nil {
			return fmt.Errorf("cannot create the socket directory %s: %v; create its parent or pass another --socket-dir", dir, err)
		}
	case err != nil:
		return fmt.Errorf("socket directory %s: %v", dir, err)
	case !st.IsDir():
		return fmt.Errorf("socket directory %s is not a directory (a symlink?); remove it or pass another --socket-dir", dir)
	default:
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
			return fmt.Errorf("socket directory %s belongs to uid %d; mcusignd must own its socket directory (remove it or pass another --socket-dir)", dir, sys.Uid)
		}
	}
	mode := os.FileMode(0o700)
	if gid >= 0 {
		if err := os.Chown(dir, -1, gid); err != nil {
			return fmt.Errorf("cannot give the socket directory %s to group %d: %v", dir, gid, err)
		}
		mode = 0o750
	}
	return os.Chmod(dir, mode)
}

// clearStale refuses to start beside a live daemon and removes what a dead
// one (SIGKILL, power loss) left behind: its descriptor and sockets.
func clearStale(dir string) error {
	if d, err := plugin.ReadDescriptor(dir); err == nil {
		if conn, err := plugin.Probe(d); err == nil {
			conn.Close()
			return fmt.Errorf("another mcusignd (pid %d) is serving in %s; stop it first, or pass another --socket-dir", d.PID, dir)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == plugin.DescriptorName || (strings.HasPrefix(e.Name(), "plugin") && e.Type()&fs.ModeSocket != 0) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("cannot remove the stale %s: %v", filepath.Join(dir, e.Name()), err)
			}
		}
	}
	return nil
}

func serveStanding(f *serveFlags, stderr io.Writer) error {
	lg := logger{stderr}
	if f.pinFD >= 0 || f.parentFD >= 0 || f.parentPID != 0 {
		return usagef("--pin-fd, --parent-fd and --parent-pid are for on-demand mode only")
	}
	pin, err := readPIN(f)
	if err != nil {
		return err
	}
	// Our PIN is the only one: no file named in the environment either.
	_ = os.Unsetenv(pkcs11key.EnvPINFile)
	if f.module != "" && !filepath.IsAbs(f.module) {
		return usagef("--module must be an absolute path to the PKCS#11 library")
	}
	module, err := pkcs11key.ResolveModule(f.module)
	if err != nil {
		return err
	}
	maxSize, err := parseSize(f.maxImageSize)
	if err != nil {
		return err
	}
	gid := -1
	if f.group != "" {
		id, err := lookupID(f.group, true)
		if err != nil {
			return err
		}
		gid = int(id)
	}
	access := daemon.Access{}
	if access.UIDs, err = lookupIDs(f.allowUID, false); err != nil {
		return err
	}
	if access.GIDs, err = lookupIDs(f.allowGID, true); err != nil {
		return err
	}
	if len(access.UIDs) == 0 && len(access.GIDs) == 0 {
		access.UIDs = []uint32{uint32(os.Geteuid())}
		if gid >= 0 {
			access.GIDs = []uint32{uint32(gid)}
		}
	}
	dir := f.socketDir
	if dir == "" {
		dir = defaultSocketDir()
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	logPath := f.auditLog
	if logPath == "" {
		if logPath, err = defaultAuditLog(); err != nil {
			return err
		}
	}

	// Sockets, descriptor and audit log: ours alone unless a group is named.
	syscall.Umask(0o077)
	if err := prepareSocketDir(dir, gid); err != nil {
		return err
	}
	if err := clearStale(dir); err != nil {
		return err
	}
	alog, err := audit.Open(logPath)
	if err != nil {
		return err
	}
	defer alog.Close()

	descMode := os.FileMode(0o600)
	if gid >= 0 {
		descMode = 0o640
	}
	desc := &descriptorFile{dir: dir, mode: descMode, gid: gid, logf: lg.logf}
	svc, err := daemon.New(daemon.Config{
		Mode:    daemon.Standing,
		Version: Version,
		Backend: daemon.PKCS11{Options: pinOptions(pin, func(m string) { lg.logf("warning: %s", m) })},
		Audit:   alog,
		Module:  module,
		Tokens:  f.tokens,
		Access:  access,

		MaxImageSize:   maxSize,
		RequestTimeout: f.requestTimeout,
		MaxConcurrent:  f.maxConcurrent,
		AllowKeygen:    f.allowKeygen,
		HoldSign:       f.testHoldSign,
		Logf:           lg.logf,
		Publish:        desc.publish,
	})
	if err != nil {
		return usageError{err}
	}
	// Log in now: a wrong PIN or a missing token should stop the service
	// from starting, not fail the first build.
	for _, t := range f.tokens {
		uri := pkcs11key.URI{Token: t, ModulePath: module}.String()
		ctx, cancel := context.WithTimeout(context.Background(), f.requestTimeout)
		_, err := daemon.PKCS11{Options: pinOptions(pin, nil)}.List(ctx, uri)
		cancel()
		if err != nil {
			return fmt.Errorf("cannot log in to token %q: %w", t, err)
		}
	}

	// Catch signals before anyone can learn of the socket, so that a stop
	// right after the start is still a clean one.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	os.Setenv(envPluginSocketDir, dir)
	if gid >= 0 {
		os.Setenv(envPluginSocketGroup, strconv.Itoa(gid))
	} else {
		os.Unsetenv(envPluginSocketGroup)
	}
	servers := make(chan *grpc.Server, 1)
	scfg := plugin.ServerConfig{
		Creds:    peercred.NewServerCredentials(svc.Admit, peercred.WrapConn(fdpass.Wrap)),
		Standing: true,
		Refused:  svc.ShutdownRefused,
		Created:  func(s *grpc.Server) { servers <- s },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reattach := make(chan *goplugin.ReattachConfig, 1)
	closed := make(chan struct{})
	go goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: plugin.Handshake,
		Plugins:         plugin.PluginMap(svc),
		GRPCServer:      scfg.GRPCServer(),
		Logger:          hclog.New(&hclog.LoggerOptions{Name: "mcusignd", Level: hclog.Warn, Output: stderr}),
		// Test mode is go-plugin's long-running server: no stdout
		// handshake, no magic cookie, and clients that reattach with
		// Test set never stop it.
		Test: &goplugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattach, CloseCh: closed},
	})
	var rc *goplugin.ReattachConfig
	select {
	case rc = <-reattach:
	case <-closed:
		return fmt.Errorf("cannot serve on a socket in %s (see the message above)", dir)
	}
	srv := <-servers
	socket := rc.Addr.String()
	if gid < 0 {
		_ = os.Chmod(socket, 0o600)
	}
	if err := desc.write(&plugin.Descriptor{
		Protocol: string(rc.Protocol), ProtocolVersion: rc.ProtocolVersion,
		Network: rc.Addr.Network(), Address: socket, PID: os.Getpid(),
		Version: Version, Started: time.Now().UTC(),
	}); err != nil {
		srv.Stop()
		<-closed
		return fmt.Errorf("cannot write the descriptor in %s: %v", dir, err)
	}
	defer desc.remove()
	defer os.Remove(socket)
	lg.logf("serving on %s (pid %d, version %s, module %s, audit log %s, admits %s)", socket, os.Getpid(), Version, module, logPath, access)

	for {
		select {
		case <-closed:
			return errors.New("the gRPC server stopped unexpectedly")
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if err := alog.Reopen(); err != nil {
					lg.logf("AUDIT FAILURE: reopening the audit log: %v; signing requests fail until it can be written", err)
				} else {
					lg.logf("reopened the audit log %s", logPath)
				}
				continue
			}
			lg.logf("%s: finishing the requests in flight, then stopping", sig)
			// Clients no longer find us; requests in flight finish.
			desc.remove()
			svc.Drain()
			drained := make(chan struct{})
			go func() { srv.GracefulStop(); close(drained) }()
			select {
			case <-drained:
			case <-time.After(f.requestTimeout + 5*time.Second):
				lg.logf("requests still running after the request deadline; closing their connections")
				srv.Stop()
			}
			cancel()
			<-closed
			lg.logf("stopped")
			return nil
		}
	}
}

// serveOnDemand runs as the go-plugin subprocess of one mcusign command:
// the client's URIs are used as given (same user, the user's own module
// and PIN sources), the socket admits the launching mcusign alone (by its
// kernel-checked peer credentials), and the process ends when the client
// shuts it down or dies.
func serveOnDemand(f *serveFlags, stderr io.Writer) error {
	lg := logger{stderr}
	syscall.Umask(0o077)
	var pin string
	if f.pinFD >= 0 {
		var err error
		if pin, err = readPINFD(f.pinFD); err != nil {
			return err
		}
	}
	if f.socketDir != "" {
		os.Setenv(envPluginSocketDir, f.socketDir)
	}
	if f.parentFD >= 0 {
		// The parent holds the other end of this pipe; EOF means it is gone.
		parent := os.NewFile(uintptr(f.parentFD), "parent")
		go func() {
			_, _ = io.Copy(io.Discard, parent)
			lg.logf("mcusign exited; stopping")
			os.Exit(0)
		}()
	}
	logPath := f.auditLog
	if logPath == "" {
		var err error
		if logPath, err = defaultAuditLog(); err != nil {
			return err
		}
	}
	maxSize, err := parseSize(f.maxImageSize)
	if err != nil {
		return err
	}
	alog, err := audit.Open(logPath)
	if err != nil {
		return err
	}
	defer alog.Close()
	go pkcs11key.Preload()
	parentPID := f.parentPID
	if parentPID == 0 {
		parentPID = os.Getppid()
	}
	parent := &peercred.Cred{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), PID: int32(parentPID)}
	parent.Exe, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", parent.PID))
	module := f.module
	if module != "" {
		if module, err = pkcs11key.ResolveModule(module); err != nil {
			return err
		}
	}
	svc, err := daemon.New(daemon.Config{
		Mode:           daemon.OnDemand,
		Version:        Version,
		Backend:        daemon.PKCS11{Options: pinOptions(pin, func(string) {})}, // mcusign prints URI warnings itself
		Audit:          alog,
		Module:         module,
		Peer:           parent,
		MaxImageSize:   maxSize,
		RequestTimeout: f.requestTimeout,
		MaxConcurrent:  f.maxConcurrent,
		HoldSign:       f.testHoldSign,
		Logf:           lg.logf,
	})
	if err != nil {
		return usageError{err}
	}
	// Only the mcusign that launched us may connect: same user and pid, as
	// the kernel reports them (go-plugin's AutoMTLS did the same with two
	// P-521 certificates and a TLS handshake, half of an on-demand
	// command's time). Shutdown is allowed: the client owns us.
	scfg := plugin.ServerConfig{Creds: peercred.NewServerCredentials(func(c *peercred.Cred) error {
		if c.UID != parent.UID || c.PID != parent.PID {
			return fmt.Errorf("this on-demand mcusignd serves only the process that started it (uid %d, pid %d), not %s", parent.UID, parent.PID, c)
		}
		return nil
	}, peercred.WrapConn(fdpass.Wrap))}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: plugin.Handshake,
		Plugins:         plugin.PluginMap(svc),
		GRPCServer:      scfg.GRPCServer(),
		Logger:          hclog.New(&hclog.LoggerOptions{Name: "mcusignd", Level: hclog.Error, Output: stderr}),
	})
	return nil
}

// descriptorFile keeps a standing daemon's descriptor: written once the
// socket is known, rewritten when the published keys change, and never
// again once removed (a late rewrite would announce a daemon that is gone).
type descriptorFile struct {
	dir  string
	mode os.FileMode
	gid  int
	logf func(format string, args ...any)

	mu      sync.Mutex
	d       *plugin.Descriptor // nil until written
	keys    []plugin.PublishedKey
	removed bool
}

func (w *descriptorFile) write(d *plugin.Descriptor) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	d.Keys, w.d = w.keys, d
	return plugin.WriteDescriptor(w.dir, d, w.mode, w.gid)
}

// publish is daemon.Config.Publish.
func (w *descriptorFile) publish(keys []plugin.PublishedKey) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keys = keys
	if w.d == nil || w.removed {
		return
	}
	w.d.Keys = keys
	if err := plugin.WriteDescriptor(w.dir, w.d, w.mode, w.gid); err != nil {
		w.logf("warning: cannot publish keys in the descriptor (%v); clients look them up instead", err)
	}
}

func (w *descriptorFile) remove() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.removed = true
	_ = os.Remove(filepath.Join(w.dir, plugin.DescriptorName))
}
