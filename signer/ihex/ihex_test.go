package ihex

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const vectors = "../../testdata/vectors"

func vectorHexFiles(t testing.TB) []string {
	var files []string
	for _, dir := range []string{"hex", "inputs", "external"} {
		m, err := filepath.Glob(filepath.Join(vectors, dir, "*.hex"))
		require.NoError(t, err)
		files = append(files, m...)
	}
	require.GreaterOrEqual(t, len(files), 10)
	return files
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectors, name))
	require.NoError(t, err)
	return b
}

// rec returns one valid record line.
func rec(typ byte, addr uint16, data ...byte) string {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	writeRecord(w, nil, addr, typ, data)
	w.Flush()
	return buf.String()
}

func writeString(t *testing.T, segs ...Segment) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, segs...))
	return buf.String()
}

// Every vector .hex, written again from the bytes it holds (as contiguous
// runs, since python-intelhex keeps no segments), must come out identical:
// they were all written by python-intelhex.
func TestRoundTripRuns(t *testing.T) {
	for _, f := range vectorHexFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			require.NoError(t, err)
			m, err := read(bytes.NewReader(in), MaxSpan)
			require.NoError(t, err)
			require.Equal(t, string(in), writeString(t, m.runs()...))
		})
	}
}

// Gap-free vectors: Read, then Write of one segment at the returned base
// reproduces the file, which is what imgtool does for hex in, hex out.
func TestReadWriteSameBase(t *testing.T) {
	for _, name := range []string{
		"hex/binin.hex", "hex/hexin.hex", "hex/hexin-x10000000.hex", "hex/hexin-zerohdr.hex",
		"inputs/app-100k@0x08020200.hex", "inputs/app-100k-zerohdr@0x08020000.hex", "external/payload.hex",
	} {
		t.Run(name, func(t *testing.T) {
			in := readFile(t, name)
			data, base, err := Read(bytes.NewReader(in))
			require.NoError(t, err)
			require.Equal(t, string(in), writeString(t, Segment{base, data}))
		})
	}
}

// The --pad/--confirm/--test vectors, rebuilt the way imgtool's save() does:
// the image at the base, then puts() of the image_ok block and of the magic
// at the end of the 0x60000 slot (max_align 8).
func TestImgtoolTrailerPuts(t *testing.T) {
	img, base, err := Read(bytes.NewReader(readFile(t, "hex/hexin.hex")))
	require.NoError(t, err)
	require.Equal(t, uint32(0x08020000), base)
	magic := []byte{0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80}
	end := base + 0x60000
	ok := func(b byte) []byte { return append([]byte{b}, bytes.Repeat([]byte{0xff}, 7)...) }

	cases := map[string][]Segment{
		"hex/hexin-pad.hex":     {{base, img}, {end - 16, magic}},
		"hex/hexin-confirm.hex": {{base, img}, {end - 24, ok(0x01)}, {end - 16, magic}},
		"hex/hexin-test.hex":    {{base, img}, {end - 24, ok(0xff)}, {end - 16, magic}},
	}
	for name, segs := range cases {
		t.Run(name, func(t *testing.T) {
			want := readFile(t, name)
			require.Equal(t, string(want), writeString(t, segs...))

			// Read fills the gap up to the trailer with 0xff.
			data, b, err := Read(bytes.NewReader(want))
			require.NoError(t, err)
			require.Equal(t, base, b)
			require.Len(t, data, 0x60000)
			require.Equal(t, img, data[:len(img)])
			require.Equal(t, bytes.Repeat([]byte{0xff}, 0x60000-24-len(img)), data[len(img):0x60000-24])
			require.Equal(t, magic, data[0x60000-16:])
		})
	}
}

func TestReadMatchesBin(t *testing.T) {
	for _, c := range []struct {
		hex, bin string
		base     uint32
	}{
		{"inputs/app-100k@0x08020200.hex", "inputs/app-100k.bin", 0x08020200},
		{"inputs/app-100k-zerohdr@0x08020000.hex", "inputs/app-100k-zerohdr.bin", 0x08020000},
		{"hex/hexin.hex", "hex/hexin.bin", 0x08020000},
		{"hex/binin.hex", "hex/hexin.bin", 0x08020000},
		{"hex/hexin-x10000000.hex", "hex/hexin.bin", 0x10000000},
		{"external/payload.hex", "external/payload.bin", 0x08020000},
	} {
		t.Run(c.hex, func(t *testing.T) {
			data, base, err := Read(bytes.NewReader(readFile(t, c.hex)))
			require.NoError(t, err)
			require.Equal(t, c.base, base)
			require.Equal(t, readFile(t, c.bin), data)
		})
	}
}

// Expected outputs below were produced by python-intelhex 2.3.0:
// IntelHex().frombytes(first) then puts(rest...), tofile(path, "hex").
func TestWrite(t *testing.T) {
	seq := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}
	cases := []struct {
		name string
		segs []Segment
		want string
	}{
		{"empty", nil, ":00000001FF\n"},
		{"empty segment", []Segment{{0x08000000, nil}}, ":00000001FF\n"},
		{"below 64K: no type-04 record", []Segment{{0x100, seq(21)}},
			":10010000000102030405060708090A0B0C0D0E0F77\n:05011000101112131490\n:00000001FF\n"},
		{"ends at 0xFFFF: no type-04 record", []Segment{{0xfff0, []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}}},
			":10FFF00000112233445566778899AABBCCDDEEFF09\n:00000001FF\n"},
		{"record split at the 64K boundary", []Segment{{0xfff8, seq(25)}},
			":020000040000FA\n:08FFF8000001020304050607E5\n:020000040001F9\n" +
				":1000000008090A0B0C0D0E0F1011121314151617F8\n:0100100018D7\n:00000001FF\n"},
		{"one byte past 0xFFFF", []Segment{{0xfff1, []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}}},
			":020000040000FA\n:0FFFF10000112233445566778899AABBCCDDEE08\n:020000040001F9\n:01000000FF00\n:00000001FF\n"},
		{"gaps in one and across 64K", []Segment{
			{0x08020000, []byte{1, 2, 3, 4, 5}}, {0x08020010, []byte{0xaa, 0xbb, 0xcc}}, {0x08030005, []byte{0xdd, 0xee}}},
			":020000040802F0\n:050000000102030405EC\n:03001000AABBCCBC\n:020000040803EF\n:02000500DDEE2E\n:00000001FF\n"},
		{"top of the address space", []Segment{{0xfffffff0, []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}}},
			":02000004FFFFFC\n:10FFF00000112233445566778899AABBCCDDEEFF09\n:00000001FF\n"},
		{"overlaps overwrite, adjacent segments join", []Segment{
			{0x1000, bytes.Repeat([]byte{0xaa}, 32)}, {0x1008, bytes.Repeat([]byte{0x55}, 4)},
			{0x0ffc, []byte{1, 2, 3, 4, 5, 6, 7, 8}}, {0x1020, []byte{0x77}}},
			":100FFC000102030405060708AAAAAAAA55555555C5\n:10100C00AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA34\n:05101C00AAAAAAAA77B0\n:00000001FF\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, writeString(t, c.segs...))
		})
	}
}

func TestWriteErrors(t *testing.T) {
	err := Write(&bytes.Buffer{}, Segment{0xfffffff8, make([]byte, 9)})
	require.EqualError(t, err, "intel hex: segment 0 (0xfffffff8, 9 bytes) runs past the 32-bit address space")
}

// Inputs python-intelhex 2.3.0 accepts, with what tobinarray()/minaddr() give.
func TestReadQuirks(t *testing.T) {
	cases := []struct {
		name string
		in   string
		data []byte
		base uint32
	}{
		{"lower-case hex, CRLF, lone CR, empty lines",
			"\n:020000040800f2\r\n\r" + strings.TrimSuffix(strings.ToLower(rec(0, 0, 0x11, 0x22)), "\n") + "\r:00000001ff", []byte{0x11, 0x22}, 0x08000000},
		{"gap filled with 0xff, records in any order",
			":0100100022CD\n:0100000011EE\n:00000001FF\n", append(append([]byte{0x11}, bytes.Repeat([]byte{0xff}, 15)...), 0x22), 0},
		{"extended segment address (02)",
			":020000021000EC\n:0100040033C8\n:00000001FF\n", []byte{0x33}, 0x10004},
		{"start linear record dropped, text after EOF ignored",
			":0400000500000000F7\n:0100000044BB\n:00000001FF\nanything\n:0100000055AA\n", []byte{0x44}, 0},
		{"start segment record dropped",
			":0400000312345678E5\n:0100000044BB\n:00000001FF\n", []byte{0x44}, 0},
		{"data record runs past 0xFFFF without wrapping",
			":02FFFF00AABB9B\n:00000001FF\n", []byte{0xaa, 0xbb}, 0xffff},
		{"empty data record",
			":0000000000\n:0100000044BB\n:00000001FF\n", []byte{0x44}, 0},
		{"EOF record address not checked",
			":0100000044BB\n:00123401B9\n", []byte{0x44}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, base, err := Read(strings.NewReader(c.in))
			require.NoError(t, err)
			require.Equal(t, c.data, data)
			require.Equal(t, c.base, base)
		})
	}
}

func TestReadErrors(t *testing.T) {
	const eof = ":00000001FF\n"
	cases := []struct {
		name, in, want string
	}{
		{"no colon", " :00000001FF\n", `intel hex line 1: record does not start with ':' (got " ")`},
		{"BOM", "\ufeff:00000001FF\n", `intel hex line 1: record does not start with ':' (got "\xef")`},
		{"odd hex", ":0100000044B\n" + eof, "intel hex line 1: odd number of hex digits (11)"},
		{"bad hex digit", ":01000000G4BB\n" + eof, `intel hex line 1: invalid hex digit "G"`},
		{"trailing space", ":0100000044BB \n" + eof, "intel hex line 1: odd number of hex digits (13)"},
		{"trailing tab pair", ":0100000044BB\t\t\n" + eof, `intel hex line 1: invalid hex digit "\t"`},
		{"too short", ":00000001\n", "intel hex line 1: record too short: 4 bytes, need at least 5"},
		{"colon only", "\n:\n", "intel hex line 2: record too short: 0 bytes, need at least 5"},
		{"count too big", ":0200000044BA\n" + eof, "intel hex line 1: byte count 2 does not match the record's 1 data bytes"},
		{"count too small", ":000000004455BB\n" + eof, "intel hex line 1: byte count 0 does not match the record's 2 data bytes"},
		{"unknown type", ":0100000644B5\n" + eof, "intel hex line 1: unknown record type 06"},
		{"bad checksum", ":0100000044BC\n" + eof, "intel hex line 1: bad checksum BC, expected BB"},
		{"overlap", rec(0, 0, 0x11, 0x22) + rec(0, 1, 0x33) + eof, "intel hex line 2: data at 0x1 overlaps data written before"},
		{"overlap via 04", ":020000040001F9\n:0100000011EE\n:020000040000FA\n:02FFFF00AABB9B\n" + eof,
			"intel hex line 4: data at 0x10000 overlaps data written before"},
		{"EOF with data", ":0100000044BB\n:0100000100FE\n", "intel hex line 2: invalid end-of-file record: byte count must be 0, not 1"},
		{"missing EOF", ":0100000044BB\n\n", "intel hex: missing end-of-file record (:00000001FF) after line 2; the file may be truncated"},
		{"empty input", "", "intel hex: missing end-of-file record (:00000001FF) after line 0; the file may be truncated"},
		{"no data", "\n" + eof, "intel hex line 2: no data records before the end-of-file record"},
		{"bad 02 length", ":03000002100000EB\n" + eof, "intel hex line 1: invalid extended segment address record: need byte count 2 and address 0000, got 3 and 0000"},
		{"bad 04 address", ":020001040800F1\n" + eof, "intel hex line 1: invalid extended linear address record: need byte count 2 and address 0000, got 2 and 0001"},
		{"bad 03", rec(3, 0, 0x12, 0x34, 0x56) + eof, "intel hex line 1: invalid start segment address record: need byte count 4 and address 0000, got 3 and 0000"},
		{"bad 05", ":0400010500000000F6\n" + eof, "intel hex line 1: invalid start linear address record: need byte count 4 and address 0000, got 4 and 0001"},
		{"two start records", ":0400000500000000F7\n:0400000312345678E5\n" + eof, "intel hex line 2: second start address record"},
		{"past 4 GiB", ":02000004FFFFFC\n:02FFFF00AABB9B\n" + eof, "intel hex line 2: data at 0xffffffff runs past the 32-bit address space"},
		{"span too large", ":020000040800F2\n:0100000011EE\n:020000040900F1\n:0100000022DD\n" + eof,
			"intel hex line 4: data at 0x9000000 makes the image span 0x8000000..0x9000000 (16777217 bytes), more than the 16 MiB limit"},
		{"line too long", ":" + strings.Repeat("0", maxLine) + "\n", "intel hex line 1: line longer than 4096 characters"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := read(strings.NewReader(c.in), 16<<20)
			require.EqualError(t, err, c.want)
			var e *Error
			require.ErrorAs(t, err, &e)
		})
	}
}

// Read applies MaxSpan: 256 MiB is fine in principle, one byte more is not.
func TestReadMaxSpan(t *testing.T) {
	_, _, err := Read(strings.NewReader(":0100000011EE\n:020000041000EA\n:0100000022DD\n:00000001FF\n"))
	require.EqualError(t, err, "intel hex line 3: data at 0x10000000 makes the image span 0x0..0x10000000 (268435457 bytes), more than the 256 MiB limit")
}

// Records that come in descending, scattered order grow the window downwards
// and upwards; the result must still be right.
func TestReadScattered(t *testing.T) {
	want := map[uint32]byte{}
	var segs []Segment
	addrs := []uint32{0x50000, 0x10000, 0x90000, 0x3f, 0x40, 0x7ffff, 0x123456, 0x123455, 0x0fff0}
	for i, a := range addrs {
		b := byte(0x10 + i)
		segs = append(segs, Segment{a, []byte{b}})
		want[a] = b
	}
	// Each byte in its own record after its own type-04 record, in the
	// order above.
	var text strings.Builder
	for _, s := range segs {
		text.WriteString(rec(4, 0, byte(s.Addr>>24), byte(s.Addr>>16)))
		text.WriteString(rec(0, uint16(s.Addr), s.Data...))
	}
	text.WriteString(":00000001FF\n")
	data, base, err := Read(strings.NewReader(text.String()))
	require.NoError(t, err)
	require.Equal(t, uint32(0x3f), base)
	require.Len(t, data, 0x123456-0x3f+1)
	for i, b := range data {
		a := base + uint32(i)
		if w, ok := want[a]; ok {
			require.Equal(t, w, b, "address %#x", a)
		} else {
			require.Equal(t, byte(0xff), b, "address %#x", a)
		}
	}
}

func FuzzRead(f *testing.F) {
	for _, name := range vectorHexFiles(f) {
		b, err := os.ReadFile(name)
		require.NoError(f, err)
		f.Add(b)
		// Small excerpts too: the whole files make slow fuzzing (every
		// mutation of them is a 100 KiB parse, and minimising one takes long).
		lines := strings.SplitAfter(string(b), "\n")
		f.Add([]byte(strings.Join(lines[:6], "") + strings.Join(lines[len(lines)-5:], "")))
	}
	f.Add([]byte(":020000040800F2\n:0100000011EE\n:0400000500000000F7\n:02FFFF00AABB9B\n:00000001FF\n"))
	f.Add([]byte(":020000021000EC\r\n:0100040033C8\r:0100000044bb\n\n:00000001FF"))
	f.Fuzz(func(t *testing.T, in []byte) {
		// A small span limit keeps the fuzzer from allocating 256 MiB.
		m, err := read(bytes.NewReader(in), 1<<20)
		if err != nil {
			return
		}
		data, base := m.bytes(), uint32(m.lo)
		var out bytes.Buffer
		require.NoError(t, Write(&out, Segment{base, data}))
		data2, base2, err := Read(&out)
		require.NoError(t, err)
		require.Equal(t, base, base2)
		require.Equal(t, data, data2)

		// Writing the runs read must give back the same runs.
		out.Reset()
		require.NoError(t, Write(&out, m.runs()...))
		m2, err := read(&out, 1<<20)
		require.NoError(t, err)
		require.Equal(t, m.runs(), m2.runs())
	})
}

func BenchmarkRead(b *testing.B) {
	data := make([]byte, 32<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var buf bytes.Buffer
	require.NoError(b, Write(&buf, Segment{0x08000000, data}))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		_, _, err := Read(bytes.NewReader(buf.Bytes()))
		require.NoError(b, err)
	}
}

func BenchmarkWrite(b *testing.B) {
	data := make([]byte, 32<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		require.NoError(b, Write(io.Discard, Segment{0x08000000, data}))
	}
}
