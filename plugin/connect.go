package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc"

	"github.com/mcusign/mcusign/plugin/fdpass"
)

// Handshake is shared by mcusign and mcusignd. Bump ProtocolVersion on any
// incompatible change of the proto.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "MCUSIGND_PLUGIN",
	MagicCookieValue: "c4a1e5f0-mcusignd-signer",
}

// PluginName is the one plugin mcusignd serves.
const PluginName = "signer"

// PluginMap is the go-plugin plugin set; svc is nil on the client side.
func PluginMap(svc Service) goplugin.PluginSet {
	return goplugin.PluginSet{PluginName: &SignerPlugin{Impl: svc}}
}

// SignerPlugin is the go-plugin glue for the Signer service.
type SignerPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	Impl Service
}

// GRPCServer registers the server adapter.
func (p *SignerPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	registerSigner(s, p.Impl)
	return nil
}

// GRPCClient returns the client adapter.
func (p *SignerPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

// DescriptorName is the file a standing daemon writes next to its socket.
const DescriptorName = "mcusignd.json"

// Descriptor tells clients how to reattach to a standing daemon.
type Descriptor struct {
	Protocol        string    `json:"protocol"` // "grpc"
	ProtocolVersion int       `json:"protocol_version"`
	Network         string    `json:"network"` // "unix"
	Address         string    `json:"address"` // socket path
	PID             int       `json:"pid"`
	Version         string    `json:"version"` // mcusignd's
	Started         time.Time `json:"started"`
	// Keys are the signing keys the daemon has described to clients.
	Keys []PublishedKey `json:"keys,omitempty"`
}

// PublishedKey is a signing key a standing daemon has described, under
// the URI a client asked for it by. A client signing with the same URI
// takes the key's description from the descriptor instead of asking the
// daemon (a round trip less per command), and names the fingerprint it
// expects in the signing call: the daemon refuses to sign with a key that
// has another. A public key is no secret; the descriptor is readable by
// the users the daemon admits, who could list the keys anyway.
type PublishedKey struct {
	URI         string `json:"uri"`         // exactly as clients ask for it
	Type        string `json:"type"`        // MCUboot key type
	PublicKey   []byte `json:"public_key"`  // PKIX SubjectPublicKeyInfo DER
	Fingerprint string `json:"fingerprint"` // "sha256:<hex>" of the MCUboot public key encoding
}

// MaxPublishedKeys bounds a descriptor's key list.
const MaxPublishedKeys = 64

// ErrNoDescriptor means no standing daemon has announced itself in a directory.
var ErrNoDescriptor = errors.New("no mcusignd descriptor")

// ReadDescriptor reads dir's descriptor.
func ReadDescriptor(dir string) (*Descriptor, error) {
	path := filepath.Join(dir, DescriptorName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoDescriptor, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the mcusignd descriptor %s: %w", path, err)
	}
	var d Descriptor
	if err := json.Unmarshal(data, &d); err != nil || d.Address == "" {
		return nil, fmt.Errorf("the mcusignd descriptor %s is damaged; restart mcusignd to rewrite it", path)
	}
	return &d, nil
}

// WriteDescriptor writes dir's descriptor atomically with the given mode.
func WriteDescriptor(dir string, d *Descriptor, mode os.FileMode, gid int) error {
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".mcusignd-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if gid >= 0 {
		if err := tmp.Chown(-1, gid); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, DescriptorName))
}

// Conn is a connection to a daemon: a Client plus how to let go of it.
type Conn struct {
	*Client
	Standing bool   // attached to a standing daemon, else launched for this command
	Where    string // socket path (standing) or executable (on demand)

	once          sync.Once
	close         func()
	before, after []func()
}

// Close releases the connection. For a daemon launched on demand it stops
// the process and waits for it; a standing daemon is never stopped.
func (c *Conn) Close() {
	c.once.Do(func() {
		for _, fn := range c.before {
			fn()
		}
		if c.close != nil {
			c.close()
		}
		for _, fn := range c.after {
			fn()
		}
	})
}

// BeforeClose registers fn to run when Close starts, before it releases
// the connection (to tell a launched daemon to go by other means too).
func (c *Conn) BeforeClose(fn func()) { c.before = append(c.before, fn) }

// AfterClose registers fn to run after Close has released the connection
// (to remove what the caller set up for it).
func (c *Conn) AfterClose(fn func()) { c.after = append(c.after, fn) }

// Share returns another Conn over c's connection, for a later operation of
// the same command: closing it does nothing, c's own Close releases the
// connection.
func (c *Conn) Share() *Conn { return &Conn{Client: c.Client, Standing: c.Standing, Where: c.Where} }

// Probe connects to a standing daemon's socket. ECONNREFUSED or ENOENT mean
// no daemon is listening there (a stale descriptor).
func Probe(d *Descriptor) (net.Conn, error) {
	if d.Network != "" && d.Network != "unix" {
		return nil, fmt.Errorf("mcusignd descriptor names a %s address; only unix sockets are supported", d.Network)
	}
	return net.DialTimeout("unix", d.Address, 10*time.Second)
}

// standingRunner stands in for the daemon process when attached to a
// standing daemon. It never signals the daemon's pid (which belongs to
// another user, so kill(pid, 0) fails with EPERM and go-plugin would think
// the daemon died), and it cannot stop it.
type standingRunner struct{ done chan struct{} }

func (r *standingRunner) Wait(ctx context.Context) error {
	select {
	case <-r.done:
	case <-ctx.Done():
	}
	return nil
}

func (r *standingRunner) Kill(context.Context) error {
	return errors.New("a standing mcusignd is not stopped by its clients")
}
func (r *standingRunner) ID() string { return "standing-mcusignd" }
func (r *standingRunner) PluginToHost(n, a string) (string, string, error) {
	return n, a, nil
}
func (r *standingRunner) HostToPlugin(n, a string) (string, string, error) {
	return n, a, nil
}

// Attach connects to a standing daemon in go-plugin's reattach Test mode:
// the client never owns the daemon, so closing it sends no Shutdown and
// kills nothing. conn, if not nil, is a connection already made by Probe
// and is used for the gRPC channel, so a command makes one connection
// (and a refused user leaves one audit record, not two).
func Attach(d *Descriptor, conn net.Conn) (*Conn, error) {
	c, err := AttachInBackground(d, conn)
	if err != nil {
		return nil, err
	}
	if _, err := c.Client.pending.wait(context.Background()); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// AttachInBackground is Attach without the wait: it checks the descriptor,
// returns, and connects in the background; the Conn's calls wait for the
// connection, or fail with the reason it could not be made. A command
// that has its input to read meanwhile starts it first; a signing key
// the daemon published (Client.OpenKey) needs no call at all until the
// signature.
func AttachInBackground(d *Descriptor, conn net.Conn) (*Conn, error) {
	if d.Protocol != string(goplugin.ProtocolGRPC) {
		return nil, fmt.Errorf("mcusignd at %s speaks %q, this mcusign speaks grpc; upgrade them together", d.Address, d.Protocol)
	}
	if d.ProtocolVersion != int(Handshake.ProtocolVersion) {
		return nil, fmt.Errorf("mcusignd at %s speaks protocol version %d, this mcusign speaks %d; upgrade them together", d.Address, d.ProtocolVersion, Handshake.ProtocolVersion)
	}
	p := &pendingConn{done: make(chan struct{})}
	cl := NewClient(p)
	cl.name = fmt.Sprintf("mcusignd (standing, pid %d, socket %s)", d.PID, d.Address)
	cl.files = &fileConn{}
	cl.published = d.Keys
	cl.pending = p
	go func() {
		defer close(p.done)
		p.cc, p.release, p.err = attach(d, conn, cl.files)
	}()
	return &Conn{Client: cl, Standing: true, Where: d.Address, close: func() {
		if _, err := p.wait(context.Background()); err == nil {
			p.release()
		}
	}}, nil
}

// attach makes the gRPC connection to a standing daemon.
func attach(d *Descriptor, conn net.Conn, files *fileConn) (*grpc.ClientConn, func(), error) {
	addr := &net.UnixAddr{Net: "unix", Name: d.Address}
	r := &standingRunner{done: make(chan struct{})}
	var first sync.Once
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		var c net.Conn
		first.Do(func() { c, conn = conn, nil })
		if c == nil {
			return files.dial(ctx, addr.Name)
		}
		return files.wrap(c), nil
	}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          PluginMap(nil),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
		Reattach: &goplugin.ReattachConfig{
			Protocol:        goplugin.ProtocolGRPC,
			ProtocolVersion: d.ProtocolVersion,
			Addr:            addr,
			Test:            true,
			ReattachFunc:    func() (runner.AttachedRunner, error) { return r, nil },
		},
		GRPCDialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)},
	})
	_, gc, err := dispense(client)
	if err != nil {
		close(r.done)
		first.Do(func() {
			if conn != nil {
				conn.Close()
			}
		})
		return nil, nil, &AttachError{Address: d.Address, Err: err}
	}
	return gc.Conn, func() {
		// Not gc.Close(): that would send the Shutdown RPC.
		_ = gc.Conn.Close()
		close(r.done)
		client.Kill() // a no-op for Test reattachments, but frees go-plugin's state
	}, nil
}

// AttachError is a standing daemon that could not be attached to.
type AttachError struct {
	Address string
	Err     error
}

func (e *AttachError) Error() string {
	return fmt.Sprintf("cannot attach to mcusignd at %s: %v", e.Address, e.Err)
}

func (e *AttachError) Unwrap() error { return e.Err }

// pendingConn is a gRPC connection being made in the background: calls
// wait for it.
type pendingConn struct {
	done    chan struct{}
	cc      *grpc.ClientConn // set, or err, once done is closed
	release func()
	err     error
}

func (p *pendingConn) wait(ctx context.Context) (*grpc.ClientConn, error) {
	select {
	case <-p.done:
		return p.cc, p.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Invoke implements grpc.ClientConnInterface.
func (p *pendingConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	cc, err := p.wait(ctx)
	if err != nil {
		return err
	}
	return cc.Invoke(ctx, method, args, reply, opts...)
}

// NewStream implements grpc.ClientConnInterface.
func (p *pendingConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cc, err := p.wait(ctx)
	if err != nil {
		return nil, err
	}
	return cc.NewStream(ctx, desc, method, opts...)
}

// fileConn is the connection a standing daemon's client currently uses,
// for passing image regions as files (package fdpass).
type fileConn struct {
	mu sync.Mutex
	c  *fdpass.Conn
}

func (f *fileConn) wrap(c net.Conn) net.Conn {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return c
	}
	fc := fdpass.New(uc)
	f.mu.Lock()
	f.c = fc
	f.mu.Unlock()
	return fc
}

// dial connects to the unix socket at path and wraps the connection.
func (f *fileConn) dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	return f.wrap(c), nil
}

func (f *fileConn) get() *fdpass.Conn {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c
}

// Launch starts the daemon as a go-plugin subprocess, for one command. cmd
// must not be started and must make the daemon put its socket in sockDir,
// a directory of its own that only this user can enter; the daemon admits
// no connection but its parent's (SO_PEERCRED), so no TLS is needed on
// the socket, and image regions are passed as sealed memory files as with
// a standing daemon. stderr receives the daemon's own stderr. Closing the
// Conn stops the process and waits for it.
func Launch(cmd *exec.Cmd, sockDir string, stderr io.Writer) (*Conn, error) {
	files := &fileConn{}
	// go-plugin dials the address the daemon announced; this dialer finds
	// the same socket (the only one in sockDir) to keep the connection.
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		sock, err := onlySocket(sockDir)
		if err != nil {
			return nil, err
		}
		return files.dial(ctx, sock)
	}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          PluginMap(nil),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		GRPCDialOptions:  []grpc.DialOption{grpc.WithContextDialer(dial)},
		Logger:           hclog.NewNullLogger(),
		Stderr:           stderr,
		StartTimeout:     time.Minute,
	})
	cl, _, err := dispense(client)
	if err != nil {
		client.Kill()
		return nil, err
	}
	cl.name = "mcusignd (on demand)"
	cl.files = files
	return &Conn{Client: cl, Where: cmd.Path, close: client.Kill}, nil
}

// onlySocket is the one unix socket in dir.
func onlySocket(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var socks []string
	for _, e := range ents {
		if e.Type()&os.ModeSocket != 0 {
			socks = append(socks, filepath.Join(dir, e.Name()))
		}
	}
	if len(socks) != 1 {
		return "", fmt.Errorf("mcusignd's socket directory %s holds %d sockets, want 1", dir, len(socks))
	}
	return socks[0], nil
}

func dispense(c *goplugin.Client) (*Client, *goplugin.GRPCClient, error) {
	proto, err := c.Client()
	if err != nil {
		return nil, nil, err
	}
	gc, ok := proto.(*goplugin.GRPCClient)
	if !ok {
		return nil, nil, fmt.Errorf("mcusignd did not negotiate gRPC")
	}
	raw, err := proto.Dispense(PluginName)
	if err != nil {
		return nil, nil, err
	}
	cl, ok := raw.(*Client)
	if !ok {
		return nil, nil, fmt.Errorf("mcusignd dispensed a %T", raw)
	}
	return cl, gc, nil
}
