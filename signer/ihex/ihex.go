// Package ihex reads and writes Intel HEX files the way imgtool does through
// python-intelhex 2.3.0: Read is IntelHex(path).tobinarray() plus minaddr(),
// Write is IntelHex().frombytes()/puts() followed by tofile(path, "hex").
//
// The package owns only the text format. What the image engine does with the
// base address (moving it down for --pad-header, -x overriding it, the
// trailer pieces written with --pad) is not decided here.
//
// Read deliberately deviates from python-intelhex where that would accept a
// broken or hostile file: a missing end-of-file record, a file without data,
// data past 4 GiB and an address span over MaxSpan are errors instead of
// being accepted.
package ihex

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
)

// MaxSpan is the largest distance from the lowest to one past the highest
// address that Read accepts. tobinarray() fills every gap, so a two-record
// file could otherwise make us allocate gigabytes.
const MaxSpan = 256 << 20

// maxLine bounds one line. A valid record has at most 1+2*(5+255) = 521
// characters; the slack only serves a clearer error message.
const maxLine = 4096

// Error is a problem found in Intel HEX input. Line is 1-based (lines are
// counted like Python's universal newlines: "\n", "\r\n" and "\r" each end
// one); it is 0 for problems not tied to a line.
type Error struct {
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("intel hex line %d: %s", e.Line, e.Msg)
	}
	return "intel hex: " + e.Msg
}

func errorf(line int, format string, args ...any) error {
	return &Error{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// Record types.
const (
	recData         = 0x00
	recEOF          = 0x01
	recExtSegment   = 0x02
	recStartSegment = 0x03
	recExtLinear    = 0x04
	recStartLinear  = 0x05
)

// Read parses Intel HEX text. It returns the bytes from the lowest to the
// highest address with gaps filled with 0xff (like IntelHex.tobinarray()),
// and the lowest address (IntelHex.minaddr()). Start address records (types
// 03 and 05) are checked and dropped, as imgtool drops them.
func Read(r io.Reader) (data []byte, base uint32, err error) {
	m, err := read(r, MaxSpan)
	if err != nil {
		return nil, 0, err
	}
	return m.bytes(), uint32(m.lo), nil
}

// read does the work of Read with a configurable span limit, so the fuzz
// target can keep its allocations small.
func read(r io.Reader, maxSpan uint64) (*memory, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1024), maxLine)
	sc.Split(scanLines)

	m := &memory{maxSpan: maxSpan}
	var (
		offset   uint64 // from the last 02 or 04 record
		line     int
		hasStart bool
		rec      []byte
	)
	for sc.Scan() {
		line++
		s := sc.Bytes()
		if len(s) == 0 {
			continue // python-intelhex skips empty lines
		}
		var err error
		rec, err = decodeRecord(s, rec[:0], line)
		if err != nil {
			return nil, err
		}
		count, typ := int(rec[0]), rec[3]
		addr := uint64(rec[1])<<8 | uint64(rec[2])
		payload := rec[4 : 4+count]
		switch typ {
		case recData:
			// The address is not wrapped at a 64 KiB boundary: like
			// python-intelhex, a record that runs past offset+0xffff goes
			// on into the next 64 KiB.
			if err := m.put(offset+addr, payload, line); err != nil {
				return nil, err
			}
		case recEOF:
			if count != 0 {
				return nil, errorf(line, "invalid end-of-file record: byte count must be 0, not %d", count)
			}
			if m.empty() {
				return nil, errorf(line, "no data records before the end-of-file record")
			}
			return m, nil // python-intelhex ignores everything after it
		case recExtSegment, recExtLinear:
			name, shift := "extended segment address", 4
			if typ == recExtLinear {
				name, shift = "extended linear address", 16
			}
			if count != 2 || addr != 0 {
				return nil, errorf(line, "invalid %s record: need byte count 2 and address 0000, got %d and %04X", name, count, addr)
			}
			offset = (uint64(payload[0])<<8 | uint64(payload[1])) << shift
		case recStartSegment, recStartLinear:
			name := "start segment address"
			if typ == recStartLinear {
				name = "start linear address"
			}
			if count != 4 || addr != 0 {
				return nil, errorf(line, "invalid %s record: need byte count 4 and address 0000, got %d and %04X", name, count, addr)
			}
			if hasStart {
				return nil, errorf(line, "second start address record")
			}
			hasStart = true
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, errorf(line+1, "line longer than %d characters", maxLine)
		}
		return nil, fmt.Errorf("intel hex: %w", err)
	}
	// python-intelhex accepts a file that just stops; a signing tool should
	// not sign what may be a truncated firmware.
	return nil, errorf(0, "missing end-of-file record (:00000001FF) after line %d; the file may be truncated", line)
}

// decodeRecord checks one non-empty line in python-intelhex's order (hex,
// minimum size, byte count, type, checksum) and returns its bytes in buf.
func decodeRecord(s, buf []byte, line int) ([]byte, error) {
	if s[0] != ':' {
		return nil, errorf(line, "record does not start with ':' (got %q)", s[:1])
	}
	h := s[1:]
	if len(h)%2 != 0 {
		return nil, errorf(line, "odd number of hex digits (%d)", len(h))
	}
	for i := 0; i < len(h); i += 2 {
		hi, ok1 := unhex(h[i])
		lo, ok2 := unhex(h[i+1])
		if !ok1 || !ok2 {
			c := h[i : i+1]
			if ok1 {
				c = h[i+1 : i+2]
			}
			return nil, errorf(line, "invalid hex digit %q", c)
		}
		buf = append(buf, hi<<4|lo)
	}
	if len(buf) < 5 {
		return nil, errorf(line, "record too short: %d bytes, need at least 5", len(buf))
	}
	if want := 5 + int(buf[0]); len(buf) != want {
		return nil, errorf(line, "byte count %d does not match the record's %d data bytes", buf[0], len(buf)-5)
	}
	if buf[3] > recStartLinear {
		return nil, errorf(line, "unknown record type %02X", buf[3])
	}
	var sum byte
	for _, b := range buf {
		sum += b
	}
	if sum != 0 {
		last := len(buf) - 1
		return nil, errorf(line, "bad checksum %02X, expected %02X", buf[last], buf[last]-sum)
	}
	return buf, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// scanLines splits like Python's text mode with universal newlines, which
// python-intelhex reads files in: "\n", "\r\n" and a lone "\r" end a line.
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	i := bytes.IndexAny(data, "\r\n")
	if i < 0 {
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	}
	if data[i] == '\n' {
		return i + 1, data[:i], nil
	}
	if i+1 < len(data) {
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
		return i + 1, data[:i], nil
	}
	if atEOF {
		return i + 1, data[:i], nil
	}
	return 0, nil, nil // a "\n" may follow the "\r"
}

// memory is the data read so far: a window of address space [wlo, wlo+len(buf))
// that grows as needed, with a bitmap of the addresses written, so writing an
// address twice is found in constant time whatever order the records come in.
type memory struct {
	maxSpan uint64
	lo, hi  uint64   // occupied span [lo, hi); hi == 0 while empty
	wlo     uint64   // address of buf[0], a multiple of 64
	buf     []byte   // 0xff where nothing was written
	used    []uint64 // bit i: address wlo+i was written
}

func (m *memory) empty() bool { return m.hi == 0 }

func (m *memory) put(addr uint64, data []byte, line int) error {
	if len(data) == 0 {
		return nil
	}
	end := addr + uint64(len(data))
	if end > 1<<32 {
		return errorf(line, "data at %#x runs past the 32-bit address space", addr)
	}
	lo, hi := addr, end
	if !m.empty() {
		lo, hi = min(lo, m.lo), max(hi, m.hi)
	}
	if hi-lo > m.maxSpan {
		return errorf(line, "data at %#x makes the image span %#x..%#x (%d bytes), more than the %d MiB limit",
			addr, lo, hi-1, hi-lo, m.maxSpan>>20)
	}
	if m.buf == nil || lo < m.wlo || hi > m.wlo+uint64(len(m.buf)) {
		m.grow(lo, hi, !m.empty() && lo < m.lo)
	}
	i := addr - m.wlo
	for j := range uint64(len(data)) {
		if m.used[(i+j)/64]&(1<<((i+j)%64)) != 0 {
			return errorf(line, "data at %#x overlaps data written before", addr+j)
		}
	}
	for j := range uint64(len(data)) {
		m.used[(i+j)/64] |= 1 << ((i + j) % 64)
	}
	copy(m.buf[i:], data)
	m.lo, m.hi = lo, hi
	return nil
}

// grow makes the window cover [lo, hi), the new occupied span. It at least
// doubles the window so that records in any order cost amortised linear
// time, and leaves the slack on the side the data grows towards. Window
// edges stay multiples of 64 so the bitmap copies word by word.
func (m *memory) grow(lo, hi uint64, down bool) {
	lo &^= 63
	hi = (hi + 63) &^ 63
	size := max(2*uint64(len(m.buf)), 4096)
	size = min(size, (m.maxSpan+127)&^63) // the span plus alignment on both ends
	size = max(size, hi-lo)
	nlo := lo
	if down {
		nlo = 0
		if hi > size {
			nlo = hi - size
		}
	}
	buf := bytes.Repeat([]byte{0xff}, int(size))
	used := make([]uint64, size/64)
	if !m.empty() {
		// Only the occupied part of the old window matters.
		olo, ohi := m.lo&^63, (m.hi+63)&^63
		copy(buf[olo-nlo:ohi-nlo], m.buf[olo-m.wlo:ohi-m.wlo])
		copy(used[(olo-nlo)/64:], m.used[(olo-m.wlo)/64:(ohi-m.wlo)/64])
	}
	m.wlo, m.buf, m.used = nlo, buf, used
}

// bytes returns [lo, hi) like tobinarray(), copied out when the window is
// much larger than the data so the slack is not kept alive.
func (m *memory) bytes() []byte {
	b := m.buf[m.lo-m.wlo : m.hi-m.wlo : m.hi-m.wlo]
	if len(m.buf) > 2*len(b) {
		b = append([]byte(nil), b...)
	}
	return b
}

// runs returns the written addresses as maximal contiguous segments, in
// address order (what python-intelhex's segments() would give).
func (m *memory) runs() []Segment {
	var segs []Segment
	if m.empty() {
		return nil
	}
	in := false
	var start uint64
	for a := m.lo; a <= m.hi; a++ {
		set := a < m.hi && m.used[(a-m.wlo)/64]&(1<<((a-m.wlo)%64)) != 0
		if set && !in {
			start, in = a, true
		} else if !set && in {
			segs = append(segs, Segment{Addr: uint32(start), Data: m.buf[start-m.wlo : a-m.wlo]})
			in = false
		}
	}
	return segs
}

// Segment is data at an absolute address.
type Segment struct {
	Addr uint32
	Data []byte
}

// Write writes segments as Intel HEX the way python-intelhex's tofile(path,
// "hex") does on Linux: data records of at most 16 bytes that never cross a
// 64 KiB boundary and end at every gap, each "\n"-terminated, upper-case hex;
// type-04 records before the first data record and whenever the upper 16
// address bits change, but none at all if every address is below 0x10000; no
// start address record; the EOF record. Segments may overlap: later ones
// overwrite earlier bytes (like IntelHex.puts). Adjacent segments join into
// one run, since python-intelhex keeps bytes, not segments.
func Write(w io.Writer, segs ...Segment) error {
	runs, err := merge(segs)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	var maxAddr uint64
	if len(runs) > 0 {
		last := runs[len(runs)-1]
		maxAddr = uint64(last.Addr) + uint64(len(last.Data)) - 1
	}
	needELA := maxAddr > 0xffff
	high := -1
	var rec []byte
	for _, r := range runs {
		for cur := uint64(r.Addr); cur < uint64(r.Addr)+uint64(len(r.Data)); {
			if needELA && int(cur>>16) != high {
				high = int(cur >> 16)
				writeRecord(bw, rec[:0], 0, recExtLinear, []byte{byte(high >> 8), byte(high)})
			}
			low := cur & 0xffff
			off := cur - uint64(r.Addr)
			n := min(16, 0x10000-low, uint64(len(r.Data))-off)
			rec = writeRecord(bw, rec[:0], uint16(low), recData, r.Data[off:off+n])
			cur += n
		}
	}
	bw.WriteString(":00000001FF\n")
	return bw.Flush()
}

// writeRecord writes one record, using buf as scratch space.
func writeRecord(w *bufio.Writer, buf []byte, addr uint16, typ byte, data []byte) []byte {
	const hexdigits = "0123456789ABCDEF"
	sum := byte(len(data)) + byte(addr>>8) + byte(addr) + typ
	for _, b := range data {
		sum += b
	}
	buf = append(buf, ':')
	for _, b := range [...]byte{byte(len(data)), byte(addr >> 8), byte(addr), typ} {
		buf = append(buf, hexdigits[b>>4], hexdigits[b&15])
	}
	for _, b := range data {
		buf = append(buf, hexdigits[b>>4], hexdigits[b&15])
	}
	buf = append(buf, hexdigits[-sum>>4], hexdigits[-sum&15], '\n')
	w.Write(buf) // bufio.Writer keeps the first error for Flush
	return buf
}

// merge turns possibly overlapping segments into sorted, disjoint,
// non-adjacent runs; where segments overlap, the later one wins.
func merge(segs []Segment) ([]Segment, error) {
	type span struct{ lo, hi uint64 }
	var spans []span
	for i, s := range segs {
		if len(s.Data) == 0 {
			continue
		}
		hi := uint64(s.Addr) + uint64(len(s.Data))
		if hi > 1<<32 {
			return nil, fmt.Errorf("intel hex: segment %d (%#x, %d bytes) runs past the 32-bit address space", i, s.Addr, len(s.Data))
		}
		spans = append(spans, span{uint64(s.Addr), hi})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	var merged []span
	for _, s := range spans {
		if n := len(merged); n > 0 && s.lo <= merged[n-1].hi {
			merged[n-1].hi = max(merged[n-1].hi, s.hi)
			continue
		}
		merged = append(merged, s)
	}
	runs := make([]Segment, len(merged))
	for i, s := range merged {
		runs[i] = Segment{Addr: uint32(s.lo), Data: make([]byte, s.hi-s.lo)}
	}
	for _, s := range segs {
		if len(s.Data) == 0 {
			continue
		}
		// The run holding s is the last one starting at or below it.
		i := sort.Search(len(runs), func(i int) bool { return runs[i].Addr > s.Addr }) - 1
		copy(runs[i].Data[s.Addr-runs[i].Addr:], s.Data)
	}
	return runs, nil
}
