package fdpass

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Buffer is memory backed by a memory file, for building an image region
// in place and passing it without the copy Seal makes: the input is read
// into it, the engine builds the image in it, and SealPrefix then turns
// its first n bytes, as they are, into a sealed region file.
//
// Until SealPrefix the memory is a shared mapping of the file. SealPrefix
// makes it a private copy-on-write mapping of the same pages (F_SEAL_WRITE
// allows no shared writable mapping), cuts the file to the region and
// seals it: the process goes on writing its memory (the TLVs behind the
// region, in place) while the file the daemon reads cannot change.
type Buffer struct {
	f      *os.File
	mem    []byte // the whole mapping, in pages
	size   int    // the bytes asked for
	sealed int    // the sealed region's length; 0 before SealPrefix
	broken error  // set when SealPrefix failed half way: mem is unusable
}

var pageSize = os.Getpagesize()

func roundUp(n int) int { return (n + pageSize - 1) &^ (pageSize - 1) }

// NewBuffer returns a zeroed Buffer of size bytes.
func NewBuffer(name string, size int) (*Buffer, error) {
	if size <= 0 || size > 1<<40 {
		return nil, fmt.Errorf("memory file of %d bytes is out of range", size)
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	n := roundUp(size)
	if err := unix.Ftruncate(fd, int64(n)); err != nil {
		f.Close()
		return nil, fmt.Errorf("sizing the memory file: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mapping the memory file: %w", err)
	}
	return &Buffer{f: f, mem: mem, size: size}, nil
}

// Bytes is the buffer's memory, size bytes (no spare capacity, so an
// append beyond it moves to ordinary memory instead of writing past it).
func (b *Buffer) Bytes() []byte { return b.mem[:b.size:b.size] }

// Holds reports whether region is a prefix of the buffer: the bytes
// SealPrefix can pass without a copy.
func (b *Buffer) Holds(region []byte) bool {
	return b != nil && len(region) > 0 && len(region) <= b.size &&
		unsafe.SliceData(region) == unsafe.SliceData(b.mem)
}

// Reader returns a reader of src to fill the buffer with: a Read into the
// buffer's own memory has the kernel copy src's bytes straight into the
// memory file (sendfile), where a read(2) would fault the memory in page
// by page; any other Read reads src.
func (b *Buffer) Reader(src *os.File) io.Reader { return &bufferReader{b: b, src: src} }

type bufferReader struct {
	b       *Buffer
	src     *os.File
	noKcopy bool // sendfile refused: read as usual
}

func (r *bufferReader) Read(p []byte) (int, error) {
	off, ok := r.b.offsetOf(p)
	if !ok || r.noKcopy {
		return r.src.Read(p)
	}
	fd := int(r.b.f.Fd())
	if _, err := unix.Seek(fd, int64(off), io.SeekStart); err != nil {
		r.noKcopy = true
		return r.src.Read(p)
	}
	var n int
	var err error
	for { // sendfile from src's position, which it advances
		n, err = unix.Sendfile(fd, int(r.src.Fd()), nil, len(p))
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err == unix.EINVAL || err == unix.ENOSYS:
		r.noKcopy = true
		return r.src.Read(p)
	case err != nil:
		return 0, &os.PathError{Op: "read", Path: r.src.Name(), Err: err}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// offsetOf is where p, if it lies in the buffer's memory, starts in it.
func (b *Buffer) offsetOf(p []byte) (int, bool) {
	if len(p) == 0 || b.mem == nil || b.sealed != 0 {
		return 0, false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b.mem)))
	at := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	if at < start || at+uintptr(len(p)) > start+uintptr(b.size) {
		return 0, false
	}
	return int(at - start), true
}

// ErrSealedOther is SealPrefix asked for another length than the region
// it already sealed.
var ErrSealedOther = errors.New("the memory file is sealed with another region")

// SealPrefix seals the buffer's first n bytes as a region file, which
// Map accepts, and returns it; the Buffer keeps it (Close closes it). A
// second call with the same n returns the same file. The buffer's memory
// keeps its contents and stays writable; only the file is frozen.
func (b *Buffer) SealPrefix(n int) (*os.File, error) {
	switch {
	case b.broken != nil:
		return nil, b.broken
	case b.sealed == n:
		return b.f, nil
	case b.sealed != 0:
		return nil, ErrSealedOther
	case n <= 0 || n > b.size:
		return nil, fmt.Errorf("region of %d bytes does not fit the %d-byte memory file", n, b.size)
	}
	// What lies behind the region in its last page and beyond: the file
	// loses it to the cut, the memory gets it back.
	tail := append([]byte(nil), b.mem[n:b.size]...)
	fd := int(b.f.Fd())
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b.mem)))
	keep := roundUp(n)
	// The pages the region spans: private, over the same file pages, at
	// the same address (MAP_FIXED replaces the shared mapping in one step).
	if err := mmapFixed(base, keep, unix.MAP_PRIVATE, fd); err != nil {
		return nil, b.fail(fmt.Errorf("remapping the memory file: %w", err))
	}
	// The pages behind them would lie past the file's new end: ordinary
	// memory.
	if rest := len(b.mem) - keep; rest > 0 {
		if err := mmapFixed(base+uintptr(keep), rest, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, -1); err != nil {
			return nil, b.fail(fmt.Errorf("remapping the memory file: %w", err))
		}
	}
	if err := unix.Ftruncate(fd, int64(n)); err != nil {
		return nil, b.fail(fmt.Errorf("cutting the memory file to the region: %w", err))
	}
	copy(b.mem[n:b.size], tail)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return nil, b.fail(fmt.Errorf("sealing the memory file: %w", err))
	}
	b.sealed = n
	return b.f, nil
}

// fail records that the buffer's memory can no longer be trusted.
func (b *Buffer) fail(err error) error {
	b.broken = err
	return err
}

func mmapFixed(addr uintptr, length, flags, fd int) error {
	_, _, e := unix.Syscall6(unix.SYS_MMAP, addr, uintptr(length),
		unix.PROT_READ|unix.PROT_WRITE, uintptr(flags|unix.MAP_FIXED), uintptr(fd), 0)
	if e != 0 {
		return e
	}
	return nil
}

// Prefault maps the sealed region's pages into the process ahead of use
// (reading the image back for the output), without copying them; a
// hint: errors are ignored.
func (b *Buffer) Prefault() {
	if b.sealed > 0 && b.broken == nil {
		_ = unix.Madvise(b.mem[:roundUp(b.sealed)], unix.MADV_POPULATE_READ)
	}
}

// Close unmaps the memory and closes the file. The memory must not be
// used afterwards. Close on a nil Buffer does nothing.
func (b *Buffer) Close() error {
	if b == nil || b.mem == nil {
		return nil
	}
	err := unix.Munmap(b.mem)
	b.mem = nil
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}
