package compress

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/ulikunitz/xz/lzma"
)

const xzLZMA2 = "--lzma2=dict=128KiB,lc=3,lp=1,pb=2"

// thumbCode looks like Thumb-2 firmware: random halfwords with BL
// instructions in between, some calling the same targets.
func thumbCode(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	targets := []uint32{0x1000, 0x2468, 0x8000, 0x1fffe}
	b := make([]byte, 0, n)
	for len(b)+4 <= n {
		if r.IntN(4) == 0 {
			pc := uint32(len(b)) + 4
			off := (targets[r.IntN(len(targets))] - pc) >> 1 // halfwords, wraps like the CPU
			b = append(b, byte(off>>11), 0xf0|byte(off>>19)&7, byte(off), 0xf8|byte(off>>8)&7)
			continue
		}
		b = append(b, byte(r.Uint32()), byte(r.Uint32()&0x7f)) // mostly not BL prefixes
	}
	for len(b) < n {
		b = append(b, 0xf0)
	}
	return b
}

func inputs(t *testing.T) map[string][]byte {
	r := rand.New(rand.NewPCG(7, 7))
	random := make([]byte, 300<<10) // larger than the dictionary
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	comp, err := os.ReadFile("../../testdata/vectors/inputs/compressible-100k.bin")
	require.NoError(t, err)
	return map[string][]byte{
		"empty":            {},
		"one byte":         {0xf0},
		"bl at the end":    {0, 0, 0x00, 0xf0, 0x01, 0xf8},
		"odd thumb":        thumbCode(4097, 1),
		"thumb 200k":       thumbCode(200<<10, 2),
		"random 300k":      random,
		"compressible100k": comp,
	}
}

func xz(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	path, err := exec.LookPath("xz")
	if err != nil {
		t.Fatal("xz is not installed; scripts/install-deps.sh installs xz-utils")
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Run(), "xz %v: %s", args, errOut.String())
	return out.Bytes()
}

func TestHeader(t *testing.T) {
	// imgtool's create_lzma2_header for 128 KiB, pb 2, lc 3, lp 1.
	require.Equal(t, []byte{0x0a, 0x66}, Header())
	require.Equal(t, byte(0), dictSizeCode(4096))
	require.Equal(t, byte(1), dictSizeCode(6144))
	require.Equal(t, byte(11), dictSizeCode(DictSize+1))
}

// xz-utils decodes what we encode: the stream is standard raw LZMA2 with
// imgtool's parameters, and the filter is xz's ARM-Thumb BCJ.
func TestLZMA2DecodesWithXZ(t *testing.T) {
	for name, in := range inputs(t) {
		for _, thumb := range []bool{false, true} {
			c, err := LZMA2(in, thumb)
			require.NoError(t, err)
			args := []string{"--format=raw", xzLZMA2, "-dc"}
			if thumb {
				args = append([]string{"--armthumb"}, args...)
			}
			require.True(t, bytes.Equal(in, xz(t, c, args...)), "%s (armthumb %v) does not round-trip through xz", name, thumb)
		}
	}
}

// Our encoder filter is byte for byte xz's: xz filters and compresses, a
// plain LZMA2 decoder gives back xz's filtered bytes, and they equal ours.
func TestARMThumbEqualsXZ(t *testing.T) {
	for name, in := range inputs(t) {
		c := xz(t, in, "--format=raw", "--armthumb", xzLZMA2, "-c")
		theirs := decodeLZMA2(t, c)
		ours := bytes.Clone(in)
		ARMThumbEncode(ours)
		require.True(t, bytes.Equal(theirs, ours), "%s: ARM-Thumb filter output differs from xz's", name)
		if name == "thumb 200k" {
			require.False(t, bytes.Equal(in, ours), "the thumb input has BL instructions to convert")
		}
	}
}

// The filter makes calls to one target identical, which is its point.
func TestARMThumbHelpsThumbCode(t *testing.T) {
	in := thumbCode(200<<10, 3)
	plain, err := LZMA2(in, false)
	require.NoError(t, err)
	filtered, err := LZMA2(in, true)
	require.NoError(t, err)
	require.Less(t, len(filtered), len(plain))
}

func TestRoundTripGo(t *testing.T) {
	for name, in := range inputs(t) {
		for _, thumb := range []bool{false, true} {
			orig := bytes.Clone(in)
			c, err := LZMA2(in, thumb)
			require.NoError(t, err)
			require.Equal(t, orig, in, "input modified")
			got := decodeLZMA2(t, c)
			if thumb {
				ARMThumbDecode(got)
			}
			require.True(t, bytes.Equal(in, got), "%s (armthumb %v)", name, thumb)
		}
	}
}

func decodeLZMA2(t testing.TB, c []byte) []byte {
	t.Helper()
	r, err := lzma.Reader2Config{DictCap: DictSize}.NewReader2(bytes.NewReader(c))
	require.NoError(t, err)
	out, err := io.ReadAll(r)
	require.NoError(t, err)
	return out
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{}, false)
	f.Add([]byte{0, 0, 0x00, 0xf0, 0x01, 0xf8}, true)
	f.Add(thumbCode(512, 9), true)
	f.Fuzz(func(t *testing.T, in []byte, thumb bool) {
		f := bytes.Clone(in)
		ARMThumbEncode(f)
		ARMThumbDecode(f)
		require.Equal(t, in, f, "ARM-Thumb filter does not invert")
		c, err := LZMA2(in, thumb)
		require.NoError(t, err)
		got := decodeLZMA2(t, c)
		if thumb {
			ARMThumbDecode(got)
		}
		require.True(t, bytes.Equal(in, got))
	})
}
