package signer

import (
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDumpNamesTmp(t *testing.T) {
	if os.Getenv("DUMP_ORACLE") == "" {
		t.Skip()
	}
	r := rand.New(rand.NewSource(7))
	var names []string
	for i := 0; i < 30000; i++ {
		names = append(names, randName(r))
	}
	// more words-and-spaces near the fold limit
	for i := 0; i < 5000; i++ {
		var b strings.Builder
		for b.Len() < 60+r.Intn(80) {
			b.WriteString(strings.Repeat("w", 1+r.Intn(12)))
			b.WriteString([]string{" ", " ", "  ", " '", "é ", " \\", " \"", "\n"}[r.Intn(8)])
		}
		names = append(names, strings.TrimSpace(b.String()))
	}
	var enc []string
	for _, n := range names {
		enc = append(enc, pyJSONString(n))
	}
	dir := t.TempDir()
	mf := filepath.Join(dir, "n.json")
	require.NoError(t, os.WriteFile(mf, []byte("["+strings.Join(enc, ",")+"]"), 0o644))
	cmd := exec.Command("python3", "/tmp/oracle/names.py", mf, filepath.Join(dir, "o.json"))
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run())
	raw, _ := os.ReadFile(filepath.Join(dir, "o.json"))
	var res [][2]string
	require.NoError(t, json.Unmarshal(raw, &res))
	bad := 0
	for i, n := range names {
		y := "filename:" + yamlStr(n, 9, 2) + "\nheader: 1\n"
		j := "{\"filename\": " + pyJSONString(n) + "}"
		if y != res[i][0] || j != res[i][1] {
			bad++
			if bad < 10 {
				t.Errorf("%q:\npy %q\ngo %q\npy %q\ngo %q", n, res[i][0], y, res[i][1], j)
			}
		}
	}
	t.Logf("%d names, %d bad", len(names), bad)
}
