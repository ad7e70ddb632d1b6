package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// An output path that cannot be a file is refused before anything is
// written, on one line that says what to do, and leaves nothing behind.
func TestOutputPathErrors(t *testing.T) {
	work := t.TempDir()
	key, err := filepath.Abs(filepath.Join(vectorsDir, "keys", "ecdsa-p256.pem"))
	require.NoError(t, err)
	app := filepath.Join(work, "app.bin")
	require.NoError(t, os.WriteFile(app, make([]byte, 3000), 0o644))
	outDir := filepath.Join(work, "out")
	require.NoError(t, os.Mkdir(outDir, 0o755))
	sign := []string{"sign", "-k", key, "-v", "1.2.3", "-H", "0x200", "--pad-header", "-S", "0x4000", app}

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"sign into a directory", append(sign, outDir), "cannot write " + outDir + ": it is a directory; name the file to write"},
		{"sign into a missing directory", append(sign, filepath.Join(work, "missing", "app.signed.bin")),
			"directory " + filepath.Join(work, "missing") + " does not exist; create it first"},
		{"getpub into a directory", []string{"getpub", "-k", key, "-o", outDir}, "it is a directory"},
		{"keygen into a missing directory", []string{"keygen", "-t", "ed25519", "-k", filepath.Join(work, "missing", "k.pem")}, "does not exist; create it first"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, rc := mcusign(t, work, c.args...)
			require.NotZero(t, rc)
			require.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
			require.Contains(t, errOut, c.want)
			require.NotContains(t, errOut, ".tmp-", "the message names the temporary file")
			for _, dir := range []string{work, outDir} {
				entries, err := os.ReadDir(dir)
				require.NoError(t, err)
				for _, e := range entries {
					require.False(t, strings.Contains(e.Name(), ".tmp-"), "left behind: %s", e.Name())
				}
			}
			entries, err := os.ReadDir(outDir)
			require.NoError(t, err)
			require.Empty(t, entries)
			require.NoDirExists(t, filepath.Join(work, "missing"))
		})
	}
}

// A -k that names no key file says which mistake it is and what to give.
func TestKeyPathErrors(t *testing.T) {
	work := t.TempDir()
	app := filepath.Join(work, "app.bin")
	require.NoError(t, os.WriteFile(app, make([]byte, 3000), 0o644))
	for _, c := range []struct {
		name, key, want string
	}{
		{"a directory", work, "key file " + work + " is a directory: name the PEM file in it, or give a pkcs11: URI"},
		{"missing", filepath.Join(work, "nokey.pem"), "not found: check the path"},
	} {
		for _, args := range [][]string{
			{"sign", "-k", c.key, "-v", "1.2.3", "-H", "0x200", "--pad-header", "-S", "0x4000", app, filepath.Join(work, "out.bin")},
			{"getpub", "-k", c.key},
		} {
			t.Run(c.name+"/"+args[0], func(t *testing.T) {
				_, errOut, rc := mcusign(t, work, args...)
				require.Equal(t, 2, rc, errOut)
				require.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
				require.Contains(t, errOut, c.want)
				require.NoFileExists(t, filepath.Join(work, "out.bin"))
			})
		}
	}
}
