package signer

// imgtool dumpinfo: parse an image the way imgtool's dumpinfo.py does and
// print it in its human, JSON and YAML formats, byte for byte.
//
// imgtool does not validate anything (no magic checks) and simply crashes on
// short reads; Inspect follows the same parsing rules, but every read that
// imgtool would crash on (or silently truncate) becomes a one-line error.

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"
)

// dumpinfo -f values.
const (
	FormatHuman = "human"
	FormatYAML  = "yaml"
	FormatJSON  = "json"
)

// TrailerMagicWarning is printed (to stdout, before any other output) by
// imgtool when bytes follow the TLVs but the trailer magic is not recognised.
const TrailerMagicWarning = "Warning: the trailer magic value is invalid!"

// headerReadSize is what imgtool unpacks of the header ('IIHHIIBBHI'); the
// last 4 bytes (_pad1) are never read, so 28 bytes are enough.
const headerReadSize = 28

// ImageInfo is the result of parsing an image for dumpinfo.
type ImageInfo struct {
	Filename string // base name of the file, as imgtool prints it
	Header   HeaderInfo

	// ProtectedInfo is the protected TLV info header; nil when the header's
	// protected_tlv_size is 0 (imgtool then does not look for the area).
	ProtectedInfo *TLVAreaInfo
	ProtectedTLVs []TLVEntryInfo
	Info          TLVAreaInfo // the unprotected TLV info header
	TLVs          []TLVEntryInfo

	// Trailer is nil when no bytes follow the TLV area.
	Trailer *TrailerInfo

	// Warning is TrailerMagicWarning or "". imgtool prints it to stdout
	// before the dump even when the dump goes to a file; the writers do not.
	Warning string
}

// HeaderInfo holds the header fields dumpinfo shows.
type HeaderInfo struct {
	Magic            uint32
	LoadAddr         uint32
	HdrSize          uint16
	ProtectedTLVSize uint16
	ImgSize          uint32
	Flags            uint32
	Version          string // "maj.min.rev+build"
}

// TLVAreaInfo is a TLV area's info header.
type TLVAreaInfo struct {
	Magic uint16
	Total uint16 // tlv_tot: the area size including this header
}

// TLVEntryInfo is one TLV record.
type TLVEntryInfo struct {
	Type uint16
	Name string // TLVName(Type)
	Len  uint16
	Data []byte
}

// TrailerInfo is the image trailer as dumpinfo reads it from the end of the file.
type TrailerInfo struct {
	Magic []byte // the last 16 bytes of the file

	// MagicValid reports whether Magic is one of the two trailer magics; only
	// then are MaxAlign and the fields below read.
	MagicValid bool
	MaxAlign   int // 8, or the u16 prefix of the 16/32-byte-aligned magic
	ImageOK    byte
	CopyDone   byte
	SwapInfo   byte
	SwapSize   uint32

	// HasKeyFieldLen is set for encrypted images (ENCRYPTED_AES128/256 flag).
	HasKeyFieldLen bool
	KeyFieldLen    int // size of both key slots if BOOT_SWAP_SAVE_ENCTLV is unset
}

// Inspect parses an MCUboot image (binary, not Intel HEX) the way
// `imgtool dumpinfo` does. filename is only used for its base name.
func Inspect(data []byte, filename string) (*ImageInfo, error) {
	n := len(data)
	if n < headerReadSize {
		return nil, fmt.Errorf("image is truncated: the header needs 0x%x bytes but the file has only 0x%x", headerReadSize, n)
	}
	le := binary.LittleEndian
	info := &ImageInfo{
		Filename: pyBasename(filename),
		Header: HeaderInfo{
			Magic:            le.Uint32(data[0:]),
			LoadAddr:         le.Uint32(data[4:]),
			HdrSize:          le.Uint16(data[8:]),
			ProtectedTLVSize: le.Uint16(data[10:]),
			ImgSize:          le.Uint32(data[12:]),
			Flags:            le.Uint32(data[16:]),
			Version: fmt.Sprintf("%d.%d.%d+%d", data[20], data[21],
				le.Uint16(data[22:]), le.Uint32(data[24:])),
		},
	}
	h := &info.Header

	// Offsets are int64 so that hdr_size + img_size cannot overflow.
	off := int64(h.HdrSize) + int64(h.ImgSize)
	if off > int64(n) {
		return nil, fmt.Errorf("image is truncated: the TLV area would start at 0x%x (hdr_size 0x%x + img_size 0x%x) but the file has only 0x%x bytes; is this an MCUboot image?",
			off, h.HdrSize, h.ImgSize, n)
	}

	var err error
	if h.ProtectedTLVSize != 0 {
		var ai TLVAreaInfo
		ai, info.ProtectedTLVs, off, _, err = readTLVArea(data, off, "protected TLV area")
		if err != nil {
			return nil, err
		}
		info.ProtectedInfo = &ai
	}
	var end int64
	info.Info, info.TLVs, _, end, err = readTLVArea(data, off, "TLV area")
	if err != nil {
		return nil, err
	}

	// imgtool reads a trailer whenever the file is longer than the TLV area
	// claims, wherever the TLVs really ended.
	if int64(n) != end {
		t, warn, err := readTrailer(data, h.Flags)
		if err != nil {
			return nil, err
		}
		info.Trailer, info.Warning = t, warn
	}
	return info, nil
}

// readTLVArea reads the info header at off and the TLVs that follow it.
// It returns the offset after the last TLV read (where imgtool continues,
// which is not necessarily the end the info header claims) and that claimed end.
func readTLVArea(data []byte, off int64, what string) (TLVAreaInfo, []TLVEntryInfo, int64, int64, error) {
	n := int64(len(data))
	if n-off < tlvInfoSize {
		return TLVAreaInfo{}, nil, 0, 0, fmt.Errorf("image is truncated: the %s info header at offset 0x%x needs 4 bytes but only 0x%x remain", what, off, n-off)
	}
	le := binary.LittleEndian
	ai := TLVAreaInfo{Magic: le.Uint16(data[off:]), Total: le.Uint16(data[off+2:])}
	end := off + int64(ai.Total)
	off += tlvInfoSize
	var tlvs []TLVEntryInfo
	// Each TLV advances off by at least 4 and end-start < 64 KiB, so this
	// loop runs at most 16384 times and copies at most ~128 KiB.
	for off < end {
		if n-off < tlvHeaderSize {
			return ai, nil, 0, 0, fmt.Errorf("image is truncated: the TLV header at offset 0x%x in the %s needs 4 bytes but only 0x%x remain", off, what, n-off)
		}
		t, l := le.Uint16(data[off:]), le.Uint16(data[off+2:])
		off += tlvHeaderSize
		if int64(l) > n-off {
			return ai, nil, 0, 0, fmt.Errorf("image is truncated: TLV 0x%x (%s) at offset 0x%x claims 0x%x bytes but only 0x%x remain",
				t, TLVName(t), off-tlvHeaderSize, l, n-off)
		}
		tlvs = append(tlvs, TLVEntryInfo{Type: t, Name: TLVName(t), Len: l, Data: bytes.Clone(data[off : off+int64(l)])})
		off += int64(l)
	}
	return ai, tlvs, off, end, nil
}

// readTrailer parses the trailer backwards from the end of the file, as
// imgtool does. The file is at least headerReadSize bytes long.
func readTrailer(data []byte, flags uint32) (*TrailerInfo, string, error) {
	n := len(data)
	const magicSize = 16
	t := &TrailerInfo{Magic: bytes.Clone(data[n-magicSize:])}
	switch {
	case bytes.Equal(t.Magic, bootMagic):
		t.MaxAlign = 8
	case bytes.Equal(t.Magic[magicSize-len(bootMagic2):], bootMagic2):
		t.MaxAlign = int(binary.LittleEndian.Uint16(t.Magic))
	default:
		return t, TrailerMagicWarning, nil
	}
	t.MagicValid = true
	ma := t.MaxAlign

	// Distances from the end of the file, as imgtool's negative indices.
	back := magicSize + max(ma-magicSize, 0) + ma
	for j, name := range []string{"image_ok", "copy_done", "swap_info"} {
		if d := back + j*ma; d > n {
			return nil, "", fmt.Errorf("image is truncated: the trailer's %s would be 0x%x bytes before the end of the 0x%x-byte file (max_align 0x%x from the trailer magic)",
				name, d, n, ma)
		}
	}
	t.ImageOK = data[n-back]
	t.CopyDone = data[n-back-ma]
	t.SwapInfo = data[n-back-2*ma]
	// swap_size is a Python slice and may be clipped at the start of the
	// file rather than fail: mirror that.
	start := n - back - 3*ma
	var sz [4]byte
	copy(sz[:], data[max(start, 0):max(start+4, 0)])
	t.SwapSize = binary.LittleEndian.Uint32(sz[:])

	if flags&(FlagEncryptedAES128|FlagEncryptedAES256) != 0 {
		if ma == 0 || ma&(ma-1) != 0 {
			// imgtool's align_up asserts here.
			return nil, "", fmt.Errorf("invalid trailer: max_align 0x%x from the trailer magic of an encrypted image is not a power of two", ma)
		}
		t.HasKeyFieldLen = true
		t.KeyFieldLen = (magicSize + ma - 1) &^ (ma - 1) * 2
	}
	return t, "", nil
}

// pyBasename is Python's os.path.basename: everything after the last
// separator, so "dir/" gives "" (unlike filepath.Base).
func pyBasename(p string) string {
	if runtime.GOOS == "windows" {
		if len(p) >= 2 && p[1] == ':' {
			p = p[2:]
		}
		return p[strings.LastIndexAny(p, `/\`)+1:]
	}
	return p[strings.LastIndexByte(p, '/')+1:]
}

// Write writes the dump in format (FormatHuman, FormatYAML or FormatJSON).
// toStdout adds the newline imgtool prints after JSON on stdout only.
// The Warning is not written; imgtool prints it to stdout before this.
func (i *ImageInfo) Write(w io.Writer, format string, toStdout bool) error {
	switch format {
	case FormatHuman:
		return i.WriteHuman(w)
	case FormatYAML:
		return i.WriteYAML(w)
	case FormatJSON:
		if err := i.WriteJSON(w); err != nil {
			return err
		}
		if toStdout {
			_, err := io.WriteString(w, "\n")
			return err
		}
		return nil
	}
	return fmt.Errorf("invalid output format: %s", format)
}

// ---- human ----

const humanLineLength = 60

func hexs[T ~uint8 | ~uint16 | ~uint32 | ~int | ~int64](v T) string {
	return fmt.Sprintf("%#x", v)
}

// humanRow is "#### text " padded with '#' to the line length.
func humanRow(text string) string {
	text = "#### " + text + " "
	return text + strings.Repeat("#", max(humanLineLength-len(text), 0))
}

// humanFrame is the boxed payload section.
func humanFrame(header, content string) string {
	empty := "|" + strings.Repeat(" ", humanLineLength-2) + "|"
	offset := (humanLineLength - len(content)) / 2 // content is at most 33 characters
	pre := "|" + strings.Repeat(" ", max(offset-1, 0))
	post := strings.Repeat(" ", max(humanLineLength-len(pre)-len(content)-1, 0)) + "|"
	return strings.Join([]string{humanRow(header), empty, pre + content + post, empty,
		strings.Repeat("#", humanLineLength)}, "\n")
}

func humanTLVs(tlvs []TLVEntryInfo) string {
	const indent = humanLineLength / 8
	pad := strings.Repeat(" ", indent)
	var lines []string
	for _, t := range tlvs {
		lines = append(lines,
			pad+" "+strings.Repeat("-", 45),
			pad+" type: "+t.Name+" ("+hexs(t.Type)+")",
			pad+" len:  "+hexs(t.Len))
		line := pad + " data: "
		for j, b := range t.Data {
			line += fmt.Sprintf("0x%02x ", b)
			if (j+1)%8 == 0 && j+1 != len(t.Data) {
				lines = append(lines, line)
				line = strings.Repeat(" ", indent+7)
			}
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

func humanFlags(flags uint32) string {
	if flags == 0 {
		return "0x0"
	}
	// Unknown bits are not shown, so only-unknown flags print as "".
	var s string
	for _, f := range flagNames {
		if flags&f.Flag != 0 {
			if s != "" {
				s += "\n" + strings.Repeat(" ", 20)
			}
			s += f.Name + " (" + hexs(f.Flag) + ")"
		}
	}
	return s
}

func humanStatus(v byte) string {
	name := "INVALID"
	switch v {
	case 1:
		name = "SET"
	case 2:
		name = "BAD"
	case 3:
		name = "UNSET"
	case 4:
		name = "ANY"
	}
	return name + " (" + hexs(v) + ")"
}

// WriteHuman writes imgtool's default human-readable dump.
func (i *ImageInfo) WriteHuman(w io.Writer) error {
	var b strings.Builder
	line := func(s ...string) {
		b.WriteString(strings.Join(s, ""))
		b.WriteByte('\n')
	}
	h := i.Header
	line("Printing content of signed image: ", i.Filename, " \n")

	line(humanRow("Image header (offset: 0x0)"))
	field := func(key, value string) { line(key, ":", strings.Repeat(" ", 19-len(key)), value) }
	field("magic", hexs(h.Magic))
	field("load_addr", hexs(h.LoadAddr))
	field("hdr_size", hexs(h.HdrSize))
	field("protected_tlv_size", hexs(h.ProtectedTLVSize))
	field("img_size", hexs(h.ImgSize))
	field("flags", humanFlags(h.Flags))
	field("version", h.Version)
	line(strings.Repeat("#", humanLineLength))

	off := int64(h.HdrSize)
	line(humanFrame("Payload (offset: "+hexs(off)+")", "FW image (size: "+hexs(h.ImgSize)+" Bytes)"))

	area := func(name string, ai TLVAreaInfo, tlvs []TLVEntryInfo) {
		line(humanRow(name + " (offset: " + hexs(off) + ")"))
		line("magic:     ", hexs(ai.Magic))
		line("area size: ", hexs(ai.Total))
		line(humanTLVs(tlvs))
		line(strings.Repeat("#", humanLineLength))
	}
	off += int64(h.ImgSize)
	if h.ProtectedTLVSize != 0 && i.ProtectedInfo != nil {
		area("Protected TLV area", *i.ProtectedInfo, i.ProtectedTLVs)
	}
	// imgtool places the TLV area by the header field, not by what it parsed.
	off += int64(h.ProtectedTLVSize)
	area("TLV area", i.Info, i.TLVs)

	if t := i.Trailer; t != nil && len(t.Magic) > 0 {
		line(humanRow("Image trailer (offset: unknown)"))
		line("(Note: some fields may not be used, depending on the update \nstrategy)\n")
		line("swap status: (len: unknown)")
		enc := "Image not encrypted"
		if t.HasKeyFieldLen {
			enc = "(len: " + hexs(t.KeyFieldLen) + ", if BOOT_SWAP_SAVE_ENCTLV is unset)"
		}
		line("enc. keys:   ", enc)
		if t.MagicValid {
			size := "unknown"
			if t.SwapSize != 0xffffffff {
				// imgtool's label says octal; the number is decimal.
				size = fmt.Sprintf("%#x octal: %d", t.SwapSize, t.SwapSize)
			}
			line("swap size:   ", size)
			line("swap_info:   ", humanStatus(t.SwapInfo))
			line("copy_done:   ", humanStatus(t.CopyDone))
			line("image_ok:    ", humanStatus(t.ImageOK))
		}
		var m strings.Builder
		for j, c := range t.Magic {
			fmt.Fprintf(&m, "0x%02x ", c)
			if j == len(t.Magic)/2-1 {
				m.WriteString("\n" + strings.Repeat(" ", 13))
			}
		}
		line("boot magic:  ", m.String())
		line()
	}
	line(humanRow("End of Image "))
	_, err := io.WriteString(w, b.String())
	return err
}

// ---- JSON and YAML: an ordered tree shaped like imgtool's dict ----

type dumpKV struct {
	key string
	val any // int64, string, []byte, dumpMap or []dumpMap
}

type dumpMap []dumpKV

func (i *ImageInfo) tree() dumpMap {
	h := i.Header
	tlvList := func(tlvs []TLVEntryInfo) []dumpMap {
		l := make([]dumpMap, 0, len(tlvs))
		for _, t := range tlvs {
			l = append(l, dumpMap{{"type", int64(t.Type)}, {"type_name", t.Name}, {"len", int64(t.Len)}, {"data", t.Data}})
		}
		return l
	}
	areaHdr := func(ai *TLVAreaInfo) dumpMap {
		if ai == nil {
			return dumpMap{}
		}
		return dumpMap{{"magic", int64(ai.Magic)}, {"tlv_tot", int64(ai.Total)}}
	}
	trailer := dumpMap{}
	if t := i.Trailer; t != nil {
		trailer = append(trailer, dumpKV{"magic", t.Magic})
		if t.MagicValid {
			trailer = append(trailer,
				dumpKV{"image_ok", int64(t.ImageOK)},
				dumpKV{"copy_done", int64(t.CopyDone)},
				dumpKV{"swap_info", int64(t.SwapInfo)},
				dumpKV{"swap_size", int64(t.SwapSize)})
		}
		if t.HasKeyFieldLen {
			trailer = append(trailer, dumpKV{"key_field_len", int64(t.KeyFieldLen)})
		}
	}
	return dumpMap{
		{"filename", i.Filename},
		{"header", dumpMap{
			{"magic", int64(h.Magic)},
			{"load_addr", int64(h.LoadAddr)},
			{"hdr_size", int64(h.HdrSize)},
			{"protected_tlv_size", int64(h.ProtectedTLVSize)},
			{"img_size", int64(h.ImgSize)},
			{"flags", int64(h.Flags)},
			{"version", h.Version},
		}},
		{"tlv_area", dumpMap{
			{"tlv_hdr_prot", areaHdr(i.ProtectedInfo)},
			{"tlvs_prot", tlvList(i.ProtectedTLVs)},
			{"tlv_hdr", areaHdr(&i.Info)},
			{"tlvs", tlvList(i.TLVs)},
		}},
		{"trailer", trailer},
	}
}

// WriteJSON writes imgtool's `-f json` output: json.dump(indent=2) with bytes
// as lowercase hex. Like imgtool writing to a file, it ends without a
// newline; imgtool adds one on stdout (see Write).
func (i *ImageInfo) WriteJSON(w io.Writer) error {
	var b strings.Builder
	writeJSON(&b, i.tree(), 0)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeJSON(b *strings.Builder, v any, indent int) {
	nl := func(ind int) { b.WriteString("\n" + strings.Repeat(" ", ind)) }
	switch v := v.(type) {
	case int64:
		fmt.Fprintf(b, "%d", v)
	case string:
		b.WriteString(pyJSONString(v))
	case []byte:
		fmt.Fprintf(b, "\"%x\"", v)
	case dumpMap:
		if len(v) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteString("{")
		for j, kv := range v {
			if j > 0 {
				b.WriteString(",")
			}
			nl(indent + 2)
			b.WriteString(pyJSONString(kv.key) + ": ")
			writeJSON(b, kv.val, indent+2)
		}
		nl(indent)
		b.WriteString("}")
	case []dumpMap:
		if len(v) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[")
		for j, m := range v {
			if j > 0 {
				b.WriteString(",")
			}
			nl(indent + 2)
			writeJSON(b, m, indent+2)
		}
		nl(indent)
		b.WriteString("]")
	}
}

// pyJSONString quotes like Python's json with ensure_ascii=True.
func pyJSONString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range pyDecode(s) {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r >= 0x20 && r <= 0x7e:
			b.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// pyDecode decodes s as Python decodes command-line arguments: UTF-8 with
// each undecodable byte mapped to a lone surrogate U+DC80..U+DCFF.
func pyDecode(s string) []rune {
	var rs []rune
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && size == 1 {
			r = 0xdc00 + rune(s[0])
		}
		rs = append(rs, r)
		s = s[size:]
	}
	return rs
}

// WriteYAML writes imgtool's `-f yaml` output, PyYAML 6's
// yaml.dump(sort_keys=False): block style, bytes as !!binary base64.
func (i *ImageInfo) WriteYAML(w io.Writer) error {
	var b strings.Builder
	writeYAMLMap(&b, i.tree(), 0, false)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeYAMLMap writes a non-empty block mapping whose keys are at indent.
// inItem means the first key follows a "- " already written.
func writeYAMLMap(b *strings.Builder, m dumpMap, indent int, inItem bool) {
	for j, kv := range m {
		if j > 0 || !inItem {
			b.WriteString(strings.Repeat(" ", indent))
		}
		b.WriteString(kv.key + ":")
		col := indent + len(kv.key) + 1
		switch v := kv.val.(type) {
		case int64:
			fmt.Fprintf(b, " %d\n", v)
		case string:
			b.WriteString(yamlStr(v, col, indent+2))
			b.WriteByte('\n')
		case []byte:
			writeYAMLBinary(b, v, indent+2)
		case dumpMap:
			if len(v) == 0 {
				b.WriteString(" {}\n")
			} else {
				b.WriteByte('\n')
				writeYAMLMap(b, v, indent+2, false)
			}
		case []dumpMap:
			if len(v) == 0 {
				b.WriteString(" []\n")
				continue
			}
			b.WriteByte('\n')
			// A sequence in a mapping is not indented ("indentless").
			for _, item := range v {
				b.WriteString(strings.Repeat(" ", indent) + "- ")
				writeYAMLMap(b, item, indent+2, true)
			}
		}
	}
}

// writeYAMLBinary writes PyYAML's representation of bytes: a literal block of
// base64.encodebytes (76-column lines), or `""` when empty.
func writeYAMLBinary(b *strings.Builder, data []byte, indent int) {
	if len(data) == 0 {
		b.WriteString(" !!binary \"\"\n")
		return
	}
	b.WriteString(" !!binary |\n")
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 0 {
		n := min(len(enc), 76)
		b.WriteString(strings.Repeat(" ", indent) + enc[:n] + "\n")
		enc = enc[n:]
	}
}

// ---- PyYAML string scalars ----
//
// A filename can be anything, so its scalar style (plain, 'single' or
// "double" quoted) and line folding follow PyYAML's Emitter (analyze_scalar,
// choose_scalar_style, write_plain/_single_quoted/_double_quoted) with its
// defaults: width 80, indent 2, allow_unicode False.

const yamlWidth = 80

// yamlImplicit are PyYAML's (YAML 1.1) implicit resolvers: a plain scalar
// matching one would not load back as a string, so it must be quoted.
// Compiled on first use (dumpinfo only): at package init it cost every
// mcusign and mcusignd start 0.2 ms.
var yamlImplicit = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(yamlImplicitExpr)
})

const yamlImplicitExpr = `^(?:` +
	`yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF` + // bool
	`|[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?` + // float
	`|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)` +
	`|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+` + // int
	`|<<|~|null|Null|NULL|` + // merge, null (including "")
	`|[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]` + // timestamp
	`|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?` +
	`|=|!|&|\*` + // value, yaml
	`)$`

func yamlIsBreak(r rune) bool { return r == '\n' || r == 0x85 || r == 0x2028 || r == 0x2029 }

func yamlIsSpace(r rune) bool { return r == 0 || r == ' ' || r == '\t' || r == '\r' || yamlIsBreak(r) }

// yamlStyle returns the style PyYAML picks for a str value in block context
// (not a key): 0 for plain, else the quote character.
func yamlStyle(s string, text []rune) byte {
	if len(text) == 0 {
		return '\'' // "" resolves to null
	}
	var blockInd, lineBreaks, special bool
	var leadingSpace, leadingBreak, trailingSpace, trailingBreak, breakSpace, spaceBreak bool
	if strings.HasPrefix(s, "---") || strings.HasPrefix(s, "...") {
		blockInd = true
	}
	precededByWS := true
	followedByWS := len(text) == 1 || yamlIsSpace(text[1])
	prevSpace, prevBreak := false, false
	for i, ch := range text {
		if i == 0 {
			if strings.ContainsRune("#,[]{}&*!|>'\"%@`", ch) {
				blockInd = true
			}
			if (ch == '?' || ch == ':') && followedByWS {
				blockInd = true
			}
			if ch == '-' && followedByWS {
				blockInd = true
			}
		} else {
			if ch == ':' && followedByWS {
				blockInd = true
			}
			if ch == '#' && precededByWS {
				blockInd = true
			}
		}
		if yamlIsBreak(ch) {
			lineBreaks = true
		}
		if !(ch == '\n' || (ch >= 0x20 && ch <= 0x7e)) {
			// Printable non-ASCII is "special" too, as allow_unicode is off.
			special = true
		}
		switch {
		case ch == ' ':
			leadingSpace = leadingSpace || i == 0
			trailingSpace = trailingSpace || i == len(text)-1
			breakSpace = breakSpace || prevBreak
			prevSpace, prevBreak = true, false
		case yamlIsBreak(ch):
			leadingBreak = leadingBreak || i == 0
			trailingBreak = trailingBreak || i == len(text)-1
			spaceBreak = spaceBreak || prevSpace
			prevSpace, prevBreak = false, true
		default:
			prevSpace, prevBreak = false, false
		}
		precededByWS = yamlIsSpace(ch)
		followedByWS = i+2 >= len(text) || yamlIsSpace(text[i+2])
	}
	plain, single := true, true
	if leadingSpace || leadingBreak || trailingSpace || trailingBreak {
		plain = false
	}
	if breakSpace {
		plain, single = false, false
	}
	if spaceBreak || special {
		plain, single = false, false
	}
	if lineBreaks || blockInd {
		plain = false
	}
	switch {
	case plain && !yamlImplicit().MatchString(s):
		return 0
	case single:
		return '\''
	}
	return '"'
}

// yamlEmitter tracks the PyYAML emitter state needed for line folding.
type yamlEmitter struct {
	b                     strings.Builder
	column, indent        int
	whitespace, indention bool
}

func (e *yamlEmitter) write(s string) {
	e.b.WriteString(s)
	e.column += len(s) // only ASCII is ever written
}

func (e *yamlEmitter) lineBreak() {
	e.b.WriteByte('\n')
	e.whitespace, e.indention, e.column = true, true, 0
}

func (e *yamlEmitter) writeIndent() {
	if !e.indention || e.column > e.indent || (e.column == e.indent && !e.whitespace) {
		e.lineBreak()
	}
	if e.column < e.indent {
		e.whitespace = true
		e.write(strings.Repeat(" ", e.indent-e.column))
	}
}

func (e *yamlEmitter) indicator(s string, needWS bool) {
	if !e.whitespace && needWS {
		s = " " + s
	}
	e.whitespace, e.indention = false, false
	e.write(s)
}

// yamlStr renders a str mapping value written after "key:" ending at column
// col; continuation lines are indented by indent. The result starts with the
// separating space and has no final newline.
func yamlStr(s string, col, indent int) string {
	text := pyDecode(s)
	e := &yamlEmitter{column: col, indent: indent}
	switch yamlStyle(s, text) {
	case 0:
		e.plain(text)
	case '\'':
		e.singleQuoted(text)
	default:
		e.doubleQuoted(text)
	}
	return e.b.String()
}

// plain never sees line breaks (they rule out the plain style).
func (e *yamlEmitter) plain(text []rune) {
	e.write(" ")
	e.whitespace, e.indention = false, false
	spaces := false
	start := 0
	for end := 0; end <= len(text); end++ {
		var ch rune = -1
		if end < len(text) {
			ch = text[end]
		}
		if spaces {
			if ch != ' ' {
				if start+1 == end && e.column > yamlWidth {
					e.writeIndent()
					e.whitespace, e.indention = false, false
				} else {
					e.write(string(text[start:end]))
				}
				start = end
			}
		} else if ch == -1 || ch == ' ' {
			e.write(string(text[start:end]))
			start = end
		}
		spaces = ch == ' '
	}
}

func (e *yamlEmitter) singleQuoted(text []rune) {
	e.indicator("'", true)
	spaces, breaks := false, false
	start := 0
	for end := 0; end <= len(text); end++ {
		var ch rune = -1
		if end < len(text) {
			ch = text[end]
		}
		switch {
		case spaces:
			if ch != ' ' {
				if start+1 == end && e.column > yamlWidth && start != 0 && end != len(text) {
					e.writeIndent()
				} else {
					e.write(string(text[start:end]))
				}
				start = end
			}
		case breaks:
			if ch == -1 || !yamlIsBreak(ch) {
				// Only '\n' gets here: other breaks are special characters.
				if text[start] == '\n' {
					e.lineBreak()
				}
				for range text[start:end] {
					e.lineBreak()
				}
				e.writeIndent()
				start = end
			}
		default:
			if ch == -1 || ch == ' ' || yamlIsBreak(ch) || ch == '\'' {
				if start < end {
					e.write(string(text[start:end]))
					start = end
				}
			}
		}
		if ch == '\'' {
			e.write("''")
			start = end + 1
		}
		if ch != -1 {
			spaces, breaks = ch == ' ', yamlIsBreak(ch)
		}
	}
	e.indicator("'", false)
}

var yamlEscapes = map[rune]string{
	0: "0", 0x07: "a", 0x08: "b", 0x09: "t", 0x0a: "n", 0x0b: "v", 0x0c: "f",
	0x0d: "r", 0x1b: "e", '"': "\"", '\\': "\\", 0x85: "N", 0xa0: "_",
	0x2028: "L", 0x2029: "P",
}

func (e *yamlEmitter) doubleQuoted(text []rune) {
	e.indicator(`"`, true)
	start := 0
	for end := 0; end <= len(text); end++ {
		var ch rune = -1
		if end < len(text) {
			ch = text[end]
		}
		if ch == -1 || ch == '"' || ch == '\\' || ch == 0x85 || ch == 0x2028 || ch == 0x2029 ||
			ch == 0xfeff || ch < 0x20 || ch > 0x7e {
			if start < end {
				e.write(string(text[start:end]))
				start = end
			}
			if ch != -1 {
				esc, ok := yamlEscapes[ch]
				switch {
				case ok:
					esc = `\` + esc
				case ch <= 0xff:
					esc = fmt.Sprintf(`\x%02X`, ch)
				case ch <= 0xffff:
					esc = fmt.Sprintf(`\u%04X`, ch)
				default:
					esc = fmt.Sprintf(`\U%08X`, ch)
				}
				e.write(esc)
				start = end + 1
			}
		}
		if 0 < end && end < len(text)-1 && (ch == ' ' || start >= end) && e.column+(end-start) > yamlWidth {
			// Just after an escape start is end+1: Python's text[start:end] is then "".
			data := `\`
			if start < end {
				data = string(text[start:end]) + data
			}
			if start < end {
				start = end
			}
			e.write(data)
			e.writeIndent()
			e.whitespace, e.indention = false, false
			if text[start] == ' ' {
				e.write(`\`)
			}
		}
	}
	e.indicator(`"`, false)
}
