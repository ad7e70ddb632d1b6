package signer

// TEMPORARY differential test against the real dumpinfo.py; not to be committed.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func synthImage(r *rand.Rand) []byte {
	le := binary.LittleEndian
	hdr := 32 + 4*r.Intn(8)
	body := r.Intn(40)
	var prot []byte
	if r.Intn(2) == 0 {
		var tl []byte
		for k := r.Intn(4); k > 0; k-- {
			l := r.Intn(20)
			t := []uint16{0x50, 0x60, 0x40, 0xa0, 0x74, 0x1234, 0x70}[r.Intn(7)]
			tl = le.AppendUint16(tl, t)
			tl = le.AppendUint16(tl, uint16(l))
			for j := 0; j < l; j++ {
				tl = append(tl, byte(r.Intn(256)))
			}
		}
		prot = le.AppendUint16(nil, 0x6908)
		prot = le.AppendUint16(prot, uint16(4+len(tl)))
		prot = append(prot, tl...)
	}
	var tl []byte
	for k := r.Intn(5); k > 0; k-- {
		l := r.Intn(70)
		t := []uint16{0x10, 0x11, 0x01, 0x24, 0x22, 0x25, 0x32, 0xff, 0x02}[r.Intn(9)]
		tl = le.AppendUint16(tl, t)
		tl = le.AppendUint16(tl, uint16(l))
		for j := 0; j < l; j++ {
			tl = append(tl, byte(r.Intn(256)))
		}
	}
	unprot := le.AppendUint16(nil, 0x6907)
	unprot = le.AppendUint16(unprot, uint16(4+len(tl)))
	unprot = append(unprot, tl...)

	img := make([]byte, hdr+body)
	le.PutUint32(img[0:], ImageMagic)
	le.PutUint32(img[4:], r.Uint32()>>uint(r.Intn(33)%32))
	le.PutUint16(img[8:], uint16(hdr))
	le.PutUint16(img[10:], uint16(len(prot)))
	le.PutUint32(img[12:], uint32(body))
	flags := []uint32{0, 4, 8, 0x10, 0x20 | 0x100, 0x400 | 0x800, 0x1000, 0xffffffff, 0x2}[r.Intn(9)]
	le.PutUint32(img[16:], flags)
	for j := 20; j < 28; j++ {
		img[j] = byte(r.Intn(256))
	}
	img = append(img, prot...)
	img = append(img, unprot...)
	// trailer
	switch r.Intn(5) {
	case 0:
	case 1:
		pad := r.Intn(300)
		for j := 0; j < pad; j++ {
			img = append(img, []byte{0xff, 0, 1, 2, 3, 4}[r.Intn(6)])
		}
		img = append(img, bootMagic...)
	case 2:
		pad := r.Intn(300)
		for j := 0; j < pad; j++ {
			img = append(img, []byte{0xff, 0, 1, 2, 3, 4}[r.Intn(6)])
		}
		ma := []uint16{0, 1, 2, 3, 8, 16, 32, 64, 100, 0xffff}[r.Intn(10)]
		img = le.AppendUint16(img, ma)
		img = append(img, bootMagic2...)
	case 3:
		for j := r.Intn(40); j > 0; j-- {
			img = append(img, byte(r.Intn(256)))
		}
	case 4:
		img = append(img, 0xff)
	}
	// mutations
	for k := r.Intn(3); k > 0; k-- {
		switch r.Intn(3) {
		case 0:
			img[r.Intn(len(img))] = byte(r.Intn(256))
		case 1:
			img = img[:r.Intn(len(img)+1)]
		case 2:
			if len(img) > 0 {
				img[r.Intn(min(len(img), 32))] = byte(r.Intn(256))
			}
		}
		if len(img) == 0 {
			break
		}
	}
	return img
}

var oracleNames = []string{"a.bin", "", "123", "1.5", "true", "null", "~", "-", "- x", "-x", "a: b", "a:b", "#x", "a #b", "a#b",
	"'q", "q'", "it's", "\"dq", "x\"y", "back\\slash", " lead", "trail ", "tab\tx", "nl\nx", "nl\n", "\nx", "a  b", "a \n b",
	"é.bin", "日本.bin", "emoji😀.bin", "\xff\xfe.bin", "ok\xc3.bin", "\x85x", "\u2028", "\ufeffbom", "\x7f", "\x00", "\x1b[1m",
	"2024-01-01", "2024-1-1 10:00:00", "0x1F", "0o17", "0b101", "1_000", "+1", ".inf", ".NaN", "yes", "Off", "<<", "=", "!", "&a", "*a",
	"---", "...x", "? x", "?x", ": x", "[a]", "a[b]", "{a}", "a,b", "%x", "@x", "`x", "|x", ">x", "a - b",
	strings.Repeat("long name ", 15), strings.Repeat("x", 100), strings.Repeat("ab ", 40) + "'", strings.Repeat("é ", 50),
	strings.Repeat("word ", 20) + "\n" + strings.Repeat("more ", 20), strings.Repeat("a", 75) + "  " + strings.Repeat("b", 10),
	strings.Repeat("a ", 40) + "\t" + strings.Repeat(" b", 20), strings.Repeat("\"", 90), strings.Repeat(" ", 100), strings.Repeat("é", 90),
}

func randName(r *rand.Rand) string {
	alpha := []string{"a", "b", " ", "  ", "'", "\"", "\n", "\t", "é", "😀", "\xff", ":", "#", "-", "1", ".", "\\", "x", "yz", "\u2028", "\x85", "0"}
	var b strings.Builder
	n := r.Intn(60)
	if r.Intn(4) == 0 {
		n += 60
	}
	for i := 0; i < n; i++ {
		b.WriteString(alpha[r.Intn(len(alpha))])
	}
	return b.String()
}

func TestDumpOracleTmp(t *testing.T) {
	if os.Getenv("DUMP_ORACLE") == "" {
		t.Skip()
	}
	n := 3000
	if v := os.Getenv("DUMP_ORACLE_N"); v != "" {
		fmt.Sscan(v, &n)
	}
	dir := t.TempDir()
	r := rand.New(rand.NewSource(int64(len(os.Getenv("DUMP_ORACLE")))))
	type item struct {
		path, name string
		hasName    bool
	}
	var items []item
	var manifest []string
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("%d.bin", i))
		require.NoError(t, os.WriteFile(p, synthImage(r), 0o644))
		it := item{path: p}
		entry := fmt.Sprintf(`{"path": %s`, pyJSONString(p))
		if i < len(oracleNames) || r.Intn(3) == 0 {
			it.hasName = true
			if i < len(oracleNames) {
				it.name = oracleNames[i]
			} else {
				it.name = randName(r)
			}
			entry += fmt.Sprintf(`, "filename": %s`, pyJSONString(it.name))
		}
		items = append(items, it)
		manifest = append(manifest, entry+"}")
	}
	// also all vector images
	vecs, _ := filepath.Glob(filepath.Join(dumpVectors, "*", "*.bin"))
	for _, v := range vecs {
		items = append(items, item{path: v})
		manifest = append(manifest, fmt.Sprintf(`{"path": %s}`, pyJSONString(v)))
	}
	mf := filepath.Join(dir, "manifest.json")
	require.NoError(t, os.WriteFile(mf, []byte("["+strings.Join(manifest, ",")+"]"), 0o644))
	out := filepath.Join(dir, "out.json")
	cmd := exec.Command("python3", "/tmp/oracle/batch.py", mf, out)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run())
	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	var res []map[string]string
	require.NoError(t, json.Unmarshal(raw, &res))
	require.Len(t, res, len(items))
	var nerr, nok, nmismatch int
	errKinds := map[string]int{}
	for i, it := range items {
		data, err := os.ReadFile(it.path)
		require.NoError(t, err)
		info, ierr := Inspect(data, it.path)
		py := res[i]
		if py["err"] != "" {
			nerr++
			errKinds[strings.SplitN(py["err"], ":", 2)[0]]++
			if ierr == nil {
				t.Errorf("%s: python error %q but we succeeded", it.path, py["err"])
				nmismatch++
			}
			continue
		}
		if ierr != nil {
			// We reject TLVs running past the end of the file; Python truncates.
			if strings.Contains(ierr.Error(), "claims") {
				continue
			}
			t.Errorf("%s: we failed %v, python ok", it.path, ierr)
			nmismatch++
			continue
		}
		nok++
		if it.hasName {
			info.Filename = it.name
		}
		warn := ""
		if info.Warning != "" {
			warn = info.Warning + "\n"
		}
		if warn != py["warn"] {
			t.Errorf("%s: warning %q vs %q", it.path, warn, py["warn"])
		}
		for _, f := range []string{"human", "json", "yaml"} {
			if f == "human" && it.hasName && strings.ContainsRune(string(pyDecode(it.name)), 0xdcff) {
				continue
			}
			if f == "human" && it.hasName {
				skip := false
				for _, r := range pyDecode(it.name) {
					if r >= 0xdc80 && r <= 0xdcff {
						skip = true
					}
				}
				if skip {
					continue
				}
			}
			var b bytes.Buffer
			require.NoError(t, info.Write(&b, f, false))
			if b.String() != py[f] {
				nmismatch++
				if nmismatch < 15 {
					t.Errorf("%s (%q) %s mismatch:\n--- py\n%s\n--- go\n%s", it.path, it.name, f, py[f], b.String())
				}
			}
		}
	}
	t.Logf("python errors %d (%v), ok %d, mismatches %d", nerr, errKinds, nok, nmismatch)
}
