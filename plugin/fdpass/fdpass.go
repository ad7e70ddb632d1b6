// Package fdpass moves an image region from mcusign to mcusignd without
// copying it through the RPC: the client puts the region in a sealed
// memory file (memfd) and passes the open file alongside the gRPC bytes of
// the same unix socket connection (SCM_RIGHTS); the daemon copies it
// (ReadInto) or maps it read-only (Map). The seals guarantee that the
// bytes the daemon hashes and signs cannot change under it. A Buffer lets
// the client build the region in the memory file itself and seal it in
// place, without a copy.
//
// Conn wraps a connection on both ends: on the client, Attach queues a file
// to travel with the next bytes written; on the server, every file that
// arrives is kept, by its identity, until a request claims it with Take.
// Conn deliberately does not expose the socket's SyscallConn, so gRPC's
// reader goes through Read, which collects the files.
//
// It is transport only; it must not import the daemon or pkcs11key.
package fdpass

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// maxFiles bounds the files one connection holds that no request has
// claimed yet, and the files one write carries: a client cannot make the
// daemon hoard descriptors.
const maxFiles = 64

// ID names a passed file: its device and inode, which the receiver reads
// with fstat from the descriptor it got.
type ID struct{ Dev, Ino uint64 }

// IDOf is f's ID.
func IDOf(f *os.File) (ID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return ID{}, err
	}
	return ID{Dev: uint64(st.Dev), Ino: st.Ino}, nil
}

// Conn is a unix socket connection that can carry open files.
type Conn struct {
	uc  *net.UnixConn
	oob []byte

	mu       sync.Mutex
	pending  []int // client: duplicated descriptors for the next write
	received []received
	closed   bool
}

type received struct {
	id ID
	f  *os.File
}

var _ net.Conn = (*Conn)(nil)

// Wrap returns c as a *Conn if it is a unix socket connection, else c.
func Wrap(c net.Conn) net.Conn {
	if uc, ok := c.(*net.UnixConn); ok {
		return New(uc)
	}
	return c
}

// New wraps uc.
func New(uc *net.UnixConn) *Conn {
	return &Conn{uc: uc, oob: make([]byte, unix.CmsgSpace(maxFiles*4))}
}

// Attach sends f with the next bytes written to the connection. f stays
// the caller's: Attach sends a duplicate of its descriptor.
func (c *Conn) Attach(f *os.File) error {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		unix.Close(fd)
		return net.ErrClosed
	}
	c.pending = append(c.pending, fd)
	return nil
}

// Take hands over the received file id names; the caller closes it.
func (c *Conn) Take(id ID) (*os.File, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range c.received {
		if r.id == id {
			c.received = append(c.received[:i], c.received[i+1:]...)
			return r.f, true
		}
	}
	return nil, false
}

// Write writes b, with any attached files.
func (c *Conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	fds := c.pending[:min(len(c.pending), maxFiles)]
	c.pending = c.pending[len(fds):]
	c.mu.Unlock()
	if len(fds) == 0 {
		return c.uc.Write(b)
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	n, _, err := c.uc.WriteMsgUnix(b, unix.UnixRights(fds...), nil)
	if err != nil || n == len(b) {
		return n, err
	}
	m, err := c.uc.Write(b[n:]) // a stream socket may take part of b
	return n + m, err
}

// Read reads bytes and keeps the files that arrive with them.
func (c *Conn) Read(b []byte) (int, error) {
	// Files beyond the buffer (MSG_CTRUNC) are closed by the kernel; the
	// requests that name them fail with "not received".
	n, oobn, _, _, err := c.uc.ReadMsgUnix(b, c.oob)
	if oobn > 0 {
		c.keep(c.oob[:oobn])
	}
	switch {
	case n < 0:
		n = 0
	case n == 0 && err == nil && len(b) > 0:
		err = io.EOF // recvmsg says end of stream with 0, Read with io.EOF
	}
	return n, err
}

func (c *Conn) keep(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			f := os.NewFile(uintptr(fd), "passed")
			id, err := IDOf(f)
			if err != nil {
				f.Close()
				continue
			}
			c.mu.Lock()
			if c.closed {
				f.Close()
			} else {
				if len(c.received) == maxFiles {
					c.received[0].f.Close()
					c.received = c.received[1:]
				}
				c.received = append(c.received, received{id, f})
			}
			c.mu.Unlock()
		}
	}
}

// Close closes the connection and every file it still holds.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.closed = true
	for _, fd := range c.pending {
		unix.Close(fd)
	}
	for _, r := range c.received {
		r.f.Close()
	}
	c.pending, c.received = nil, nil
	c.mu.Unlock()
	return c.uc.Close()
}

func (c *Conn) LocalAddr() net.Addr                { return c.uc.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.uc.RemoteAddr() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.uc.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.uc.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.uc.SetWriteDeadline(t) }

// The seals a region file must carry: nobody can write, shrink or grow it,
// or lift the seals.
const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// Seal returns a sealed memory file holding a copy of data.
func Seal(name string, data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	for p := data; len(p) > 0; {
		n, err := unix.Write(fd, p)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("writing the memory file: %w", err)
		}
		p = p[n:]
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("sealing the memory file: %w", err)
	}
	return f, nil
}

// ErrNotSealed is a passed file that is not a sealed memory file of the
// declared size.
var ErrNotSealed = errors.New("not a sealed memory file")

// checkSealed checks that fd is a sealed memory file of exactly size bytes.
func checkSealed(fd int, size int64) error {
	got, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil || got&seals != seals {
		return fmt.Errorf("%w (seals %#x)", ErrNotSealed, got)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Size != size || size <= 0 || size > 1<<40 {
		return fmt.Errorf("%w: it holds %d bytes, the request declared %d", ErrNotSealed, st.Size, size)
	}
	return nil
}

// Map maps the sealed memory file f, which must hold exactly size bytes,
// read-only. unmap releases the mapping; f can be closed at once.
func Map(f *os.File, size int64) (data []byte, unmap func(), err error) {
	fd := int(f.Fd())
	if err := checkSealed(fd, size); err != nil {
		return nil, nil, err
	}
	data, err = unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil, fmt.Errorf("mapping the memory file: %w", err)
	}
	return data, func() { _ = unix.Munmap(data) }, nil
}

// ReadInto copies the sealed memory file f, which must hold exactly
// len(buf) bytes, into buf. For a small region a copy costs less than
// Map: no page tables to build, and no unmapping, which interrupts every
// CPU the process runs on to flush its TLB.
func ReadInto(f *os.File, buf []byte) error {
	fd := int(f.Fd())
	if err := checkSealed(fd, int64(len(buf))); err != nil {
		return err
	}
	for off := 0; off < len(buf); {
		n, err := unix.Pread(fd, buf[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading the memory file: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("%w: it ended at %d of %d bytes", ErrNotSealed, off, len(buf))
		}
		off += n
	}
	return nil
}
