//go:build linux

package signer

import (
	"crypto"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// BenchmarkHash compares the engine's image hashing (the digest Build
// computes over the signed region, here of a 64 MiB image held in memory)
// with `openssl dgst -sha256` on the same bytes in a file (page-cached;
// OpenSSL uses the CPU's SHA extensions: the machine's limit). One openssl
// process hashes the file b.N times, so its start-up is spread over them.
// MB/s is wall-clock throughput (what the table uses); cpu-MB/s divides by
// the CPU time the hashing used, which a loaded machine disturbs less.
func BenchmarkHash(b *testing.B) {
	const size = 64 << 20
	data := make([]byte, size)
	rand.Read(data)
	file := filepath.Join(b.TempDir(), "image.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.Run("impl=engine", func(b *testing.B) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		b.SetBytes(size)
		cpu0 := threadCPU()
		for i := 0; i < b.N; i++ {
			digest(crypto.SHA256, data)
		}
		reportHash(b, threadCPU()-cpu0)
	})
	b.Run("impl=openssl", func(b *testing.B) {
		openssl, err := exec.LookPath("openssl")
		if err != nil {
			b.Skip("openssl is not installed")
		}
		args := []string{"dgst", "-sha256"}
		for i := 0; i < b.N; i++ {
			args = append(args, file)
		}
		b.SetBytes(size)
		cmd := exec.Command(openssl, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("openssl: %v: %s", err, out)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		reportHash(b, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()))
	})
}

func reportHash(b *testing.B, cpu time.Duration) {
	mb := float64(b.N) * (64 << 20) / 1e6
	if cpu > 0 {
		b.ReportMetric(mb/cpu.Seconds(), "cpu-MB/s")
	}
}

// threadCPU is the CPU time of the calling OS thread.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
