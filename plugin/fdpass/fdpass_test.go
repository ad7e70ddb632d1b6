package fdpass

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// pair is a connected pair of unix socket connections, both wrapped.
func pair(t *testing.T) (client, server *Conn) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Net: "unix", Name: filepath.Join(t.TempDir(), "s")})
	require.NoError(t, err)
	defer l.Close()
	accepted := make(chan *net.UnixConn, 1)
	go func() {
		c, _ := l.AcceptUnix()
		accepted <- c
	}()
	cc, err := net.DialUnix("unix", nil, l.Addr().(*net.UnixAddr))
	require.NoError(t, err)
	client, server = New(cc), New(<-accepted)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// A sealed region crosses with the bytes written after Attach, intact,
// and cannot be changed by the sender afterwards.
func TestPassSealedRegion(t *testing.T) {
	client, server := pair(t)
	region := make([]byte, 100_000)
	rand.Read(region)
	f, err := Seal("region", region)
	require.NoError(t, err)
	defer f.Close()
	id, err := IDOf(f)
	require.NoError(t, err)

	require.NoError(t, client.Attach(f))
	_, err = client.Write([]byte("request"))
	require.NoError(t, err)
	buf := make([]byte, 64)
	n, err := server.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "request", string(buf[:n]))

	got, ok := server.Take(id)
	require.True(t, ok)
	defer got.Close()
	_, ok = server.Take(id)
	require.False(t, ok, "a file is handed over once")
	data, unmap, err := Map(got, int64(len(region)))
	require.NoError(t, err)
	defer unmap()
	require.True(t, bytes.Equal(region, data))

	// The seals hold against the sender.
	_, err = f.WriteAt([]byte("x"), 0)
	require.Error(t, err)
	require.Error(t, f.Truncate(1))
	_, err = unix.Mmap(int(f.Fd()), 0, len(region), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.Error(t, err)
}

// Only a sealed memory file of exactly the declared size is mapped.
func TestMapRefuses(t *testing.T) {
	region := []byte("0123456789")
	f, err := Seal("region", region)
	require.NoError(t, err)
	defer f.Close()
	_, _, err = Map(f, 11)
	require.ErrorIs(t, err, ErrNotSealed)
	_, _, err = Map(f, 9)
	require.ErrorIs(t, err, ErrNotSealed)

	fd, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	require.NoError(t, err)
	unsealed := os.NewFile(uintptr(fd), "unsealed")
	defer unsealed.Close()
	_, err = unsealed.Write(region)
	require.NoError(t, err)
	_, _, err = Map(unsealed, int64(len(region)))
	require.ErrorIs(t, err, ErrNotSealed)

	plain := filepath.Join(t.TempDir(), "plain")
	require.NoError(t, os.WriteFile(plain, region, 0o600))
	pf, err := os.Open(plain)
	require.NoError(t, err)
	defer pf.Close()
	_, _, err = Map(pf, int64(len(region)))
	require.ErrorIs(t, err, ErrNotSealed)
}

// A peer cannot make the receiver hoard descriptors: unclaimed files
// beyond maxFiles are closed, oldest first.
func TestUnclaimedFilesBounded(t *testing.T) {
	client, server := pair(t)
	var ids []ID
	for i := 0; i < maxFiles+6; i++ {
		f, err := Seal("region", []byte{byte(i)})
		require.NoError(t, err)
		id, err := IDOf(f)
		require.NoError(t, err)
		ids = append(ids, id)
		require.NoError(t, client.Attach(f))
		f.Close()
	}
	// One write carries at most maxFiles; the next carries the rest.
	for range 2 {
		_, err := client.Write([]byte("x"))
		require.NoError(t, err)
		_, err = server.Read(make([]byte, 1))
		require.NoError(t, err)
	}
	_, ok := server.Take(ids[0])
	require.False(t, ok, "the oldest unclaimed file was dropped")
	last, ok := server.Take(ids[len(ids)-1])
	require.True(t, ok)
	last.Close()
	server.mu.Lock()
	require.Len(t, server.received, maxFiles-1)
	server.mu.Unlock()
}

// The end of the stream reads as io.EOF, as from any net.Conn.
func TestReadEOF(t *testing.T) {
	client, server := pair(t)
	require.NoError(t, client.Close())
	_, err := server.Read(make([]byte, 8))
	require.ErrorIs(t, err, io.EOF)
}

// ReadInto copies exactly a sealed region of the declared size, and
// refuses what Map refuses.
func TestReadInto(t *testing.T) {
	region := make([]byte, 100_000)
	rand.Read(region)
	f, err := Seal("region", region)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, len(region))
	require.NoError(t, ReadInto(f, buf))
	require.Equal(t, region, buf)
	require.ErrorIs(t, ReadInto(f, make([]byte, len(region)+1)), ErrNotSealed)
	require.ErrorIs(t, ReadInto(f, make([]byte, len(region)-1)), ErrNotSealed)

	fd, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC)
	require.NoError(t, err)
	u := os.NewFile(uintptr(fd), "unsealed")
	defer u.Close()
	_, err = u.Write(region)
	require.NoError(t, err)
	require.ErrorIs(t, ReadInto(u, buf), ErrNotSealed)
}

// BenchmarkReceive compares how the daemon can take a passed region in:
// mapping it (and unmapping it afterwards) or copying it into a buffer it
// reuses. Run with -cpu 2 or more: unmapping then interrupts the other
// CPUs too.
func BenchmarkReceive(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20, 4 << 20} {
		region := make([]byte, size)
		rand.Read(region)
		f, err := Seal("region", region)
		require.NoError(b, err)
		defer f.Close()
		sum := func(p []byte) (s byte) { // the daemon reads every byte (it hashes them)
			for i := 0; i < len(p); i += 64 {
				s += p[i]
			}
			return s
		}
		b.Run(fmt.Sprintf("size=%dKiB/how=map", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					data, unmap, err := Map(f, int64(size))
					if err != nil {
						b.Fatal(err)
					}
					sum(data)
					unmap()
				}
			})
		})
		b.Run(fmt.Sprintf("size=%dKiB/how=read", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, size)
				for pb.Next() {
					if err := ReadInto(f, buf); err != nil {
						b.Fatal(err)
					}
					sum(buf)
				}
			})
		})
	}
}
