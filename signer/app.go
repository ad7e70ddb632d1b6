package signer

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// App is an application binary in a buffer laid out for building its image
// in place: the header slot in front (filled with the erased value, for
// --pad-header) and spare capacity behind for the AES padding and both TLV
// areas. Build copies its input into one; ReadApp reads a file straight
// into one, so that a large image exists once in memory, the buffer it is
// built in.
type App struct {
	buf   []byte // reserved front + application binary; spare capacity behind
	front int    // bytes reserved in front: the header slot with PadHeader, else 0
}

// frontRoom is the header slot an App reserves for opts.
func frontRoom(o *Options) int {
	if o.PadHeader && o.HeaderSize > 0 && o.HeaderSize <= 0xffff {
		return o.HeaderSize
	}
	return 0
}

// tailRoom bounds what building appends behind the body: AES padding, the
// protected TLV area (custom TLVs, dependencies and the fixed ones) and the
// unprotected one (hash, key, signature, encryption key). Exceeding it only
// costs a reallocation.
func tailRoom(o *Options) int {
	n := 16 + 1024 + 2048 + 16*len(o.Dependencies)
	for _, c := range o.CustomTLVs {
		n += 4 + len(c.Value)
	}
	return n
}

// NewApp allocates an App for an n-byte application binary to be built
// with opts; fill Bytes before building.
func NewApp(n int, opts Options) *App {
	return newAppIn(make([]byte, AppSize(n, opts)), n, opts)
}

// AppSize is the memory an App for an n-byte application binary built with
// opts takes: what ReadAppInto needs.
func AppSize(n int, opts Options) int { return frontRoom(&opts) + n + tailRoom(&opts) }

// newAppIn lays an App out in mem, zeroed memory of at least AppSize bytes.
func newAppIn(mem []byte, n int, opts Options) *App {
	f := frontRoom(&opts)
	buf := mem[: f+n : AppSize(n, opts)]
	fill(buf[:f], opts.erased())
	return &App{buf: buf, front: f}
}

// ErrInputChanged means the input did not hold the number of bytes it was
// said to (a file that changed while it was read).
var ErrInputChanged = errors.New("the input changed while it was read")

// ReadApp reads an application binary of exactly n bytes from r (a file
// of that size) into a new App for opts.
func ReadApp(r io.Reader, n int64, opts Options) (*App, error) {
	return ReadAppInto(nil, r, n, opts)
}

// ReadAppInto is ReadApp into memory the caller provides: mem, zeroed, of
// at least AppSize(n, opts) bytes (a memory file the image will be passed
// in, say), or nil for new memory. The image is built in mem as long as it
// fits in AppSize.
func ReadAppInto(mem []byte, r io.Reader, n int64, opts Options) (*App, error) {
	if n < 0 || n > 1<<40 {
		return nil, fmt.Errorf("input of %d bytes is out of range", n)
	}
	var a *App
	switch size := AppSize(int(n), opts); {
	case mem == nil:
		a = NewApp(int(n), opts)
	case len(mem) < size:
		return nil, fmt.Errorf("the buffer of %d bytes is smaller than the %d the image needs", len(mem), size)
	default:
		a = newAppIn(mem, int(n), opts)
	}
	if _, err := io.ReadFull(r, a.Bytes()); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: it ended before %d bytes", ErrInputChanged, n)
		}
		return nil, err
	}
	var probe [1]byte
	if k, _ := r.Read(probe[:]); k > 0 {
		return nil, fmt.Errorf("%w: it holds more than %d bytes", ErrInputChanged, n)
	}
	return a, nil
}

// Bytes is the application binary: len is the binary's size, the slice to
// fill after NewApp.
func (a *App) Bytes() []byte { return a.buf[a.front:] }

// BuildApp is Build on an App, which it takes over: the image is built in
// the App's buffer (Image.Bytes shares it, and the application bytes may be
// encrypted in place), so the App must not be used afterwards. opts should
// be those the App was made with; an App with another header-slot layout
// is copied first.
func BuildApp(ctx context.Context, a *App, opts Options, key Key, fixed *FixedSignature) (*Image, error) {
	s, err := prepare(&opts, key, fixed)
	if err != nil {
		return nil, err
	}
	if a.front != frontRoom(&opts) {
		b := NewApp(len(a.Bytes()), opts)
		copy(b.Bytes(), a.Bytes())
		a = b
	}
	body, err := a.body(&opts)
	if err != nil {
		return nil, err
	}
	if opts.Compression != CompressNone {
		return s.buildCompressed(ctx, body, opts)
	}
	return s.assemble(ctx, body, opts, buildPass{encrypt: true, inPlace: true})
}

// body returns the header slot and the payload: the reserved front with
// --pad-header, else the input's own first HeaderSize bytes, which must be
// zero.
func (a *App) body(opts *Options) ([]byte, error) {
	if opts.PadHeader {
		return a.buf, nil
	}
	hs, app := opts.HeaderSize, a.Bytes()
	if len(app) < hs {
		return nil, fmt.Errorf("the input (%d bytes) is shorter than the %d-byte header slot; add --pad-header to prepend the header", len(app), hs)
	}
	if !allZero(app[:hs]) {
		return nil, fmt.Errorf("the input does not start with %#x zero bytes for the header: add --pad-header to prepend them, or build with room for the MCUboot header (CONFIG_ROM_START_OFFSET)", hs)
	}
	return a.buf, nil
}
