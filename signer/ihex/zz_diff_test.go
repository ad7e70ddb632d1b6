package ihex

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TEMPORARY differential harness; deleted before hand-off.
func TestZZDiff(t *testing.T) {
	dir := os.Getenv("IHEX_DIFF_DIR")
	if dir == "" {
		t.Skip()
	}
	if c := os.Getenv("IHEX_CORPUS"); c != "" {
		ents, _ := os.ReadDir(c)
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(c, e.Name()))
			s := strings.SplitN(string(b), "\n", 2)[1]
			s = strings.TrimSpace(s)
			s = strings.TrimSuffix(strings.TrimPrefix(s, "[]byte("), ")")
			u, err := strconv.Unquote(s)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "corpus-"+e.Name()+".hex"), []byte(u), 0o644)
		}
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var out strings.Builder
	for _, n := range names {
		b, _ := os.ReadFile(filepath.Join(dir, n))
		m, err := read(bytes.NewReader(b), 16<<20)
		if err != nil {
			fmt.Fprintf(&out, "%s\tERR\t%v\n", n, err)
			continue
		}
		d := m.bytes()
		fmt.Fprintf(&out, "%s\tOK\t%d %x\n", n, m.lo, sha256.Sum256(d))
		// writer check: runs -> file, python will also write the same runs
		var w bytes.Buffer
		Write(&w, m.runs()...)
		os.WriteFile(filepath.Join(dir+".out", n), w.Bytes(), 0o644)
	}
	os.WriteFile(dir+".go.txt", []byte(out.String()), 0o644)
}
