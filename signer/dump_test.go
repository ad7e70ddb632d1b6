package signer

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcusign/mcusign/signer/ihex"
	"github.com/stretchr/testify/require"
)

const dumpVectors = "../testdata/vectors"

// readDumpInput reads an image like imgtool dumpinfo: Intel HEX by extension.
func readDumpInput(t testing.TB, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	if strings.EqualFold(filepath.Ext(path), ".hex") {
		data, _, err := ihex.Read(bytes.NewReader(raw))
		require.NoError(t, err)
		return data
	}
	return raw
}

// runDumpinfo mimics `imgtool dumpinfo` on argv (without "imgtool dumpinfo"),
// returning what goes to stdout and to the -o file.
func runDumpinfo(t testing.TB, dir string, args []string) (stdout, file string, outPath string, err error) {
	t.Helper()
	format, img := "", ""
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-f", "--format":
			i++
			format = args[i]
		case "-o", "--outfile":
			i++
			outPath = args[i]
		case "-s", "--silent":
		default:
			require.Empty(t, img, "two image arguments in %q", args)
			img = args[i]
		}
	}
	if format == "" {
		format = FormatHuman
		if outPath != "" {
			format = FormatYAML
		}
	}
	info, err := Inspect(readDumpInput(t, filepath.Join(dir, img)), img)
	if err != nil {
		return "", "", outPath, err
	}
	var so, fo bytes.Buffer
	if info.Warning != "" {
		so.WriteString(info.Warning + "\n")
	}
	if outPath != "" {
		require.NoError(t, info.Write(&fo, format, false))
	} else {
		require.NoError(t, info.Write(&so, format, true))
	}
	return so.String(), fo.String(), outPath, nil
}

type vectorCommand struct {
	Name string   `json:"name"`
	RC   int      `json:"rc"`
	Argv []string `json:"argv"`
}

// dumpinfoCommands lists the dumpinfo commands (not --help) of a commands.jsonl.
func dumpinfoCommands(t testing.TB, dir string) []vectorCommand {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "commands.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var cmds []vectorCommand
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c vectorCommand
		require.NoError(t, json.Unmarshal(sc.Bytes(), &c))
		if len(c.Argv) >= 3 && c.Argv[0] == "imgtool" && c.Argv[1] == "dumpinfo" && c.Argv[2] != "--help" {
			cmds = append(cmds, c)
		}
	}
	require.NoError(t, sc.Err())
	return cmds
}

// replayDumpinfo runs every dumpinfo command of dir/commands.jsonl and
// compares stdout with dir/logs/<name>.out and the -o file with dir/<file>.
func replayDumpinfo(t *testing.T, dir string, minCmds int) {
	cmds := dumpinfoCommands(t, dir)
	require.GreaterOrEqual(t, len(cmds), minCmds)
	for _, c := range cmds {
		t.Run(c.Name, func(t *testing.T) {
			stdout, file, outPath, err := runDumpinfo(t, dir, c.Argv[2:])
			if c.RC != 0 {
				require.Error(t, err)
				require.NotContains(t, err.Error(), "\n")
				return
			}
			require.NoError(t, err)
			want, err := os.ReadFile(filepath.Join(dir, "logs", c.Name+".out"))
			require.NoError(t, err)
			require.Equal(t, string(want), stdout, "stdout")
			if outPath != "" {
				want, err := os.ReadFile(filepath.Join(dir, outPath))
				require.NoError(t, err)
				require.Equal(t, string(want), file, outPath)
			}
		})
	}
}

// TestDumpinfoVectors replays every dumpinfo command of the golden vectors.
func TestDumpinfoVectors(t *testing.T) { replayDumpinfo(t, dumpVectors, 58) }

// TestDumpinfoExtra replays testdata/dumpinfo: edge cases and formats the
// vectors lack (YAML/JSON of trailers, protected TLVs in human form, crashes),
// recorded with imgtool 2.4.0's dumpinfo.py (see its README.md).
func TestDumpinfoExtra(t *testing.T) { replayDumpinfo(t, filepath.Join("testdata", "dumpinfo"), 60) }

// TestDumpinfoTextVectors checks the saved human dumps against their images.
func TestDumpinfoTextVectors(t *testing.T) {
	txts, err := filepath.Glob(filepath.Join(dumpVectors, "dumpinfo", "*.txt"))
	require.NoError(t, err)
	more, err := filepath.Glob(filepath.Join(dumpVectors, "variants", "*.dumpinfo.txt"))
	require.NoError(t, err)
	txts = append(txts, more...)
	require.GreaterOrEqual(t, len(txts), 15)
	for _, txt := range txts {
		var img string
		if strings.HasSuffix(txt, ".dumpinfo.txt") {
			img = strings.TrimSuffix(txt, ".dumpinfo.txt") + ".bin"
		} else {
			img = filepath.Join(dumpVectors, "signed", strings.TrimSuffix(filepath.Base(txt), ".txt")+".bin")
		}
		t.Run(filepath.Base(txt), func(t *testing.T) {
			info, err := Inspect(readDumpInput(t, img), img)
			require.NoError(t, err)
			var b bytes.Buffer
			require.NoError(t, info.WriteHuman(&b))
			want, err := os.ReadFile(txt)
			require.NoError(t, err)
			require.Equal(t, string(want), b.String())
		})
	}
}

// TestDumpStrings checks filename quoting against PyYAML 6 (yaml.dump) and
// Python's json.dumps, including folding at 80 columns and undecodable bytes.
func TestDumpStrings(t *testing.T) {
	for _, c := range []struct{ name, yaml, json string }{
		{"ed25519.bin", "filename: ed25519.bin\n", "\"ed25519.bin\""},
		{"", "filename: ''\n", "\"\""},
		{"123", "filename: '123'\n", "\"123\""},
		{"0x1F", "filename: '0x1F'\n", "\"0x1F\""},
		{"1.5", "filename: '1.5'\n", "\"1.5\""},
		{"1.2.3+4", "filename: 1.2.3+4\n", "\"1.2.3+4\""},
		{"true", "filename: 'true'\n", "\"true\""},
		{"Off", "filename: 'Off'\n", "\"Off\""},
		{"null", "filename: 'null'\n", "\"null\""},
		{"~", "filename: '~'\n", "\"~\""},
		{"2024-01-01", "filename: '2024-01-01'\n", "\"2024-01-01\""},
		{"<<", "filename: '<<'\n", "\"<<\""},
		{"-", "filename: '-'\n", "\"-\""},
		{"- x", "filename: '- x'\n", "\"- x\""},
		{"-x", "filename: -x\n", "\"-x\""},
		{"a: b", "filename: 'a: b'\n", "\"a: b\""},
		{"a:b", "filename: a:b\n", "\"a:b\""},
		{"#x", "filename: '#x'\n", "\"#x\""},
		{"a #b", "filename: 'a #b'\n", "\"a #b\""},
		{"a#b", "filename: a#b\n", "\"a#b\""},
		{"it's", "filename: it's\n", "\"it's\""},
		{"'q", "filename: '''q'\n", "\"'q\""},
		{"\"dq", "filename: '\"dq'\n", "\"\\\"dq\""},
		{"back\\slash", "filename: back\\slash\n", "\"back\\\\slash\""},
		{" lead", "filename: ' lead'\n", "\" lead\""},
		{"trail ", "filename: 'trail '\n", "\"trail \""},
		{"tab\tx", "filename: \"tab\\tx\"\n", "\"tab\\tx\""},
		{"nl\nx", "filename: 'nl\n\n  x'\n", "\"nl\\nx\""},
		{"a \n b", "filename: \"a \\n b\"\n", "\"a \\n b\""},
		{"\u00e9.bin", "filename: \"\\xE9.bin\"\n", "\"\\u00e9.bin\""},
		{"\U0001f600.bin", "filename: \"\\U0001F600.bin\"\n", "\"\\ud83d\\ude00.bin\""},
		{"\xff\xfe.bin", "filename: \"\\uDCFF\\uDCFE.bin\"\n", "\"\\udcff\\udcfe.bin\""},
		{"\u0085x", "filename: \"\\Nx\"\n", "\"\\u0085x\""},
		{"\ufeffbom", "filename: \"\\uFEFFbom\"\n", "\"\\ufeffbom\""},
		{"\x7f", "filename: \"\\x7F\"\n", "\"\\u007f\""},
		{"\x00", "filename: \"\\0\"\n", "\"\\u0000\""},
		{"---", "filename: '---'\n", "\"---\""},
		{"? x", "filename: '? x'\n", "\"? x\""},
		{"[a]", "filename: '[a]'\n", "\"[a]\""},
		{"a[b]", "filename: a[b]\n", "\"a[b]\""},
		{"a,b", "filename: a,b\n", "\"a,b\""},
		{"%x", "filename: '%x'\n", "\"%x\""},
		{"@x", "filename: '@x'\n", "\"@x\""},
		{"|x", "filename: '|x'\n", "\"|x\""},
		{"long name long name long name long name long name long name long name long name long name long name long name long name long name long name long name ", "filename: 'long name long name long name long name long name long name long name long\n  name long name long name long name long name long name long name long name '\n", "\"long name long name long name long name long name long name long name long name long name long name long name long name long name long name long name \""},
		{"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "filename: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n", "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\""},
		{"ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab '", "filename: ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab\n  ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab '\n", "\"ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab '\""},
		{"\u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 \u00e9 ", "filename: \"\\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9\\\n  \\ \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9\\\n  \\ \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9 \\xE9\\\n  \\ \\xE9 \\xE9 \\xE9 \"\n", "\"\\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \\u00e9 \""},
		{"word word word word word word word word word word word word word word word word word word word word \nmore more more more more more more more more more more more more more more more more more more more ", "filename: \"word word word word word word word word word word word word word word word\\\n  \\ word word word word word \\nmore more more more more more more more more more more\\\n  \\ more more more more more more more more more \"\n", "\"word word word word word word word word word word word word word word word word word word word word \\nmore more more more more more more more more more more more more more more more more more more more \""},
		{"a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a \t b b b b b b b b b b b b b b b b b b b b", "filename: \"a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a\\\n  \\ a a a a \\t b b b b b b b b b b b b b b b b b b b b\"\n", "\"a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a \\t b b b b b b b b b b b b b b b b b b b b\""},
	} {
		require.Equal(t, c.yaml, "filename:"+yamlStr(c.name, len("filename:"), 2)+"\n", "yaml %q", c.name)
		require.Equal(t, c.json, pyJSONString(c.name), "json %q", c.name)
	}
}

func TestDumpBasename(t *testing.T) {
	require.Equal(t, "a.bin", pyBasename("x/y/a.bin"))
	require.Equal(t, "a.bin", pyBasename("a.bin"))
	require.Equal(t, "", pyBasename("dir/"))
}

func dumpTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "dumpinfo", name))
	require.NoError(t, err)
	return b
}

func dumpVectorImage(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dumpVectors, rel))
	require.NoError(t, err)
	return b
}

// TestInspectErrors: where imgtool would crash (or show truncated TLVs), we
// return one clear line.
func TestInspectErrors(t *testing.T) {
	img := dumpVectorImage(t, "signed/ed25519.bin") // hdr 0x200, img 0x19000, TLVs 0x90
	const tlvOff = 0x19200
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(img)) }
	le := binary.LittleEndian
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "image is truncated: the header needs 0x1c bytes but the file has only 0x0"},
		{"short header", img[:27], "the header needs 0x1c bytes but the file has only 0x1b"},
		{"no TLV area", img[:tlvOff], "the TLV area info header at offset 0x19200 needs 4 bytes but only 0x0 remain"},
		{"cut info header", img[:tlvOff+2], "needs 4 bytes but only 0x2 remain"},
		{"cut TLV header", img[:tlvOff+4+4+0x20+2], "the TLV header at offset 0x19228 in the TLV area needs 4 bytes but only 0x2 remain"},
		{"cut TLV data", img[:len(img)-1], "image is truncated: TLV 0x24 (ED25519) at offset 0x1924c claims 0x40 bytes but only 0x3f remain"},
		{"huge img_size", with(func(b []byte) []byte { le.PutUint32(b[12:], 0xffffffff); return b }),
			"the TLV area would start at 0x1000001ff (hdr_size 0x200 + img_size 0xffffffff) but the file has only 0x19290 bytes"},
		{"huge tlv_tot", with(func(b []byte) []byte { le.PutUint16(b[tlvOff+2:], 0xffff); return b }),
			"the TLV header at offset 0x19290 in the TLV area needs 4 bytes but only 0x0 remain"},
		{"huge TLV len", with(func(b []byte) []byte { le.PutUint16(b[tlvOff+6:], 0xffff); return b }),
			"TLV 0x10 (SHA256) at offset 0x19204 claims 0xffff bytes but only 0x88 remain"},
		{"protected area missing", with(func(b []byte) []byte { le.PutUint16(b[10:], 0x10); return b[:tlvOff+2] }),
			"the protected TLV area info header at offset 0x19200 needs 4 bytes but only 0x2 remain"},
		{"big-endian", dumpVectorImage(t, "variants/big-endian.bin"), "is this an MCUboot image?"},
		{"trailer beyond start", dumpTestdata(t, "edge-err-trailer-short.bin"),
			"image is truncated: the trailer's image_ok would be 0x1fffe bytes before the end of the 0x88-byte file (max_align 0xffff from the trailer magic)"},
		{"encrypted, max_align 3", with(func(b []byte) []byte {
			le.PutUint32(b[16:], FlagEncryptedAES128)
			return append(append(b, make([]byte, 64)...), append([]byte{3, 0}, bootMagic2...)...)
		}), "invalid trailer: max_align 0x3 from the trailer magic of an encrypted image is not a power of two"},
	} {
		t.Run(c.name, func(t *testing.T) {
			info, err := Inspect(c.data, "x.bin")
			require.Nil(t, info)
			require.ErrorContains(t, err, c.want)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

// TestInspectTLVRun: a maximal area of zero-length TLVs is bounded work.
// The last TLV ends a byte past tlv_tot, so imgtool sees (and so do we) a
// trailer, with an invalid magic.
func TestInspectTLVRun(t *testing.T) {
	img := make([]byte, 32+4+0x10000)
	binary.LittleEndian.PutUint16(img[8:], 32)
	binary.LittleEndian.PutUint16(img[34:], 0xffff)
	info, err := Inspect(img, "zeros.bin")
	require.NoError(t, err)
	require.Len(t, info.TLVs, 16383)
	require.NotNil(t, info.Trailer)
	require.False(t, info.Trailer.MagicValid)
	require.Equal(t, TrailerMagicWarning, info.Warning)
	for _, f := range []string{FormatHuman, FormatJSON, FormatYAML} {
		require.NoError(t, info.Write(io.Discard, f, true))
	}
	require.Error(t, info.Write(io.Discard, "xml", true))
}

// TestInspectCopies: the result does not alias the caller's buffer.
func TestInspectCopies(t *testing.T) {
	img := dumpVectorImage(t, "variants/pad-confirm.bin")
	info, err := Inspect(img, "pad-confirm.bin")
	require.NoError(t, err)
	var before bytes.Buffer
	require.NoError(t, info.WriteJSON(&before))
	for i := range img {
		img[i] = 0
	}
	var after bytes.Buffer
	require.NoError(t, info.WriteJSON(&after))
	require.Equal(t, before.String(), after.String())
	require.True(t, info.Trailer.MagicValid)
	require.Equal(t, 8, info.Trailer.MaxAlign)
	require.Equal(t, byte(1), info.Trailer.ImageOK)
}
