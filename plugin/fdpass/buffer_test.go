package fdpass

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// SealPrefix turns a buffer's first n bytes, wherever n falls in a page,
// into a sealed region file the daemon side maps and the sender cannot
// change, while the buffer keeps every byte, before and behind n, and
// stays writable without reaching the file.
func TestBufferSealPrefix(t *testing.T) {
	page := pageSize
	size := 3*page + 100
	for _, n := range []int{1, page - 1, page, page + 1, 2*page + 7, 3 * page, size} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			b, err := NewBuffer("region", size)
			require.NoError(t, err)
			defer b.Close()
			mem := b.Bytes()
			require.Len(t, mem, size)
			require.Equal(t, size, cap(mem), "no spare capacity to append into")
			require.True(t, bytes.Equal(make([]byte, size), mem), "a new buffer is zeroed")
			want := make([]byte, size)
			rand.Read(want)
			copy(mem, want)
			require.True(t, b.Holds(mem[:n]))
			require.False(t, b.Holds(mem[1:]), "not a prefix")
			require.False(t, b.Holds(append([]byte(nil), mem[:n]...)), "a copy")

			f, err := b.SealPrefix(n)
			require.NoError(t, err)
			require.Equal(t, want, mem, "sealing kept the buffer's bytes")
			again, err := b.SealPrefix(n)
			require.NoError(t, err)
			require.Same(t, f, again)
			if n > 1 {
				_, err = b.SealPrefix(n - 1)
				require.ErrorIs(t, err, ErrSealedOther)
			}

			// The file is exactly the region, sealed, and Map accepts it.
			region, unmap, err := Map(f, int64(n))
			require.NoError(t, err)
			defer unmap()
			require.Equal(t, want[:n], region)
			_, err = f.WriteAt([]byte("x"), 0)
			require.Error(t, err)
			require.Error(t, f.Truncate(int64(n+1)))
			_, err = unix.Mmap(int(f.Fd()), 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			require.Error(t, err)

			// The buffer stays writable, inside the region and behind it,
			// and its writes stay in this process.
			for i := range mem {
				mem[i] ^= 0xff
			}
			b.Prefault()
			require.Equal(t, want[:n], region, "a write to the buffer reached the sealed file")
			for i := range mem {
				require.Equal(t, want[i]^0xff, mem[i], "byte %d", i)
			}
		})
	}
}

// A region passed in place crosses the connection like a copy would.
func TestPassBufferInPlace(t *testing.T) {
	client, server := pair(t)
	b, err := NewBuffer("region", 100_000)
	require.NoError(t, err)
	defer b.Close()
	rand.Read(b.Bytes())
	want := append([]byte(nil), b.Bytes()[:99_999]...)
	f, err := b.SealPrefix(len(want))
	require.NoError(t, err)
	id, err := IDOf(f)
	require.NoError(t, err)
	require.NoError(t, client.Attach(f))
	_, err = client.Write([]byte("request"))
	require.NoError(t, err)
	_, err = server.Read(make([]byte, 64))
	require.NoError(t, err)
	got, ok := server.Take(id)
	require.True(t, ok)
	defer got.Close()
	data, unmap, err := Map(got, int64(len(want)))
	require.NoError(t, err)
	defer unmap()
	require.Equal(t, want, data)
}

func TestBufferRefuses(t *testing.T) {
	_, err := NewBuffer("region", 0)
	require.Error(t, err)
	b, err := NewBuffer("region", 10)
	require.NoError(t, err)
	_, err = b.SealPrefix(11)
	require.ErrorContains(t, err, "does not fit")
	require.NoError(t, b.Close())
	require.False(t, b.Holds([]byte{1}), "a closed buffer holds nothing")
	var nilBuf *Buffer
	require.NoError(t, nilBuf.Close())
	require.False(t, nilBuf.Holds([]byte{1}))
}

// Reader fills the buffer's memory from a file by a copy in the kernel, at
// any offset, and reads anywhere else as the file would; the input's end
// is io.EOF as usual.
func TestBufferReader(t *testing.T) {
	src := make([]byte, 3*pageSize+123)
	rand.Read(src)
	path := filepath.Join(t.TempDir(), "app.bin")
	require.NoError(t, os.WriteFile(path, src, 0o600))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()

	b, err := NewBuffer("region", 0x200+len(src)+100)
	require.NoError(t, err)
	defer b.Close()
	r := b.Reader(f).(*bufferReader)
	dst := b.Bytes()[0x200 : 0x200+len(src)-10]
	_, err = io.ReadFull(r, dst)
	require.NoError(t, err)
	require.False(t, r.noKcopy, "the kernel copy was refused")
	require.Equal(t, src[:len(dst)], dst)
	require.Equal(t, make([]byte, 0x200), b.Bytes()[:0x200], "nothing written before the destination")

	rest := make([]byte, 64) // not the buffer's memory: an ordinary read
	n, err := r.Read(rest)
	require.NoError(t, err)
	require.Equal(t, src[len(dst):], rest[:n])
	_, err = r.Read(b.Bytes()[:1])
	require.Equal(t, io.EOF, err)
}

// A source the kernel cannot copy from (a pipe) is read as usual.
func TestBufferReaderFallsBack(t *testing.T) {
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pr.Close()
	src := make([]byte, 2*pageSize+5)
	rand.Read(src)
	go func() { pw.Write(src); pw.Close() }()
	b, err := NewBuffer("region", len(src)+100)
	require.NoError(t, err)
	defer b.Close()
	r := b.Reader(pr).(*bufferReader)
	dst := b.Bytes()[100:]
	_, err = io.ReadFull(r, dst)
	require.NoError(t, err)
	require.True(t, r.noKcopy)
	require.Equal(t, src, dst)
}
