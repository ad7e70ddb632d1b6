package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/filekey"
	"github.com/mcusign/mcusign/signer/pkcs11key/p11test"
)

const vectorsDir = "../../testdata/vectors"

// mcusignBin and mcusigndBin are the binaries under test, built once by
// TestMain into one directory, so that mcusign finds mcusignd next to
// itself for on-demand signing.
var mcusignBin, mcusigndBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mcusign-bin-")
	if err != nil {
		panic(err)
	}
	mcusignBin = filepath.Join(dir, "mcusign")
	mcusigndBin = filepath.Join(dir, "mcusignd")
	for bin, pkg := range map[string]string{mcusignBin: ".", mcusigndBin: "../mcusignd"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			panic("go build: " + string(out))
		}
	}
	// No standing daemon of the user running the tests may take part:
	// commands find none and start mcusignd on demand, auditing into a
	// scratch state directory. Tests of a standing daemon set
	// MCUSIGN_SOCKET_DIR for their own commands.
	for k, v := range map[string]string{"XDG_RUNTIME_DIR": filepath.Join(dir, "run"), "XDG_STATE_HOME": filepath.Join(dir, "state")} {
		os.Setenv(k, v)
	}
	for _, k := range []string{"MCUSIGN_SOCKET_DIR", "MCUSIGN_DAEMON", "MCUSIGN_INPROCESS", "MCUSIGN_PIN_FILE"} {
		os.Unsetenv(k)
	}
	code := p11test.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

type vectorCmd struct {
	Name string   `json:"name"`
	RC   int      `json:"rc"`
	Argv []string `json:"argv"`
}

func loadVectorCmds(t *testing.T) []vectorCmd {
	f, err := os.Open(filepath.Join(vectorsDir, "commands.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var cmds []vectorCmd
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c vectorCmd
		require.NoError(t, json.Unmarshal(sc.Bytes(), &c))
		cmds = append(cmds, c)
	}
	require.NoError(t, sc.Err())
	require.Greater(t, len(cmds), 300)
	return cmds
}

// notYet names imgtool features whose recorded commands are not replayed
// yet, so nothing is skipped silently. Every recorded command runs now.
func notYet(vectorCmd) string { return "" }

// refusedOnPurpose are commands imgtool accepts but mcusign must refuse:
// --fix-sig with a signature that does not verify makes an unbootable image.
var refusedOnPurpose = map[string]bool{
	"fixsig-garbage-accepted": true,
	"fixsig-p384-wrongdigest": true,
}

// outputsOf returns the files a command writes, relative to the vectors dir.
func outputsOf(argv []string) []string {
	var outs []string
	if argv[len(argv)-1] == "--help" {
		return nil
	}
	for i := 1; i < len(argv)-1; i++ {
		switch argv[i] {
		case "-o", "--output", "--outfile", "--sig-out":
			outs = append(outs, argv[i+1])
		case "-k":
			if argv[1] == "keygen" {
				outs = append(outs, argv[i+1])
			}
		}
	}
	if argv[1] == "sign" || argv[1] == "create" {
		outs = append(outs, argv[len(argv)-1])
	}
	return outs
}

// TestImgtoolVectors runs every imgtool command recorded in the vectors with
// the same argv and checks exit status, output files and stdout.
func TestImgtoolVectors(t *testing.T) {
	for _, c := range loadVectorCmds(t) {
		if c.Argv[0] != "imgtool" {
			continue // openssl, python helpers that made inputs
		}
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			runVector(t, c, nil)
		})
	}
}

// runVector runs c's argv with mcusign in a fresh directory holding the
// inputs it names. subst replaces argv words (key paths by pkcs11: URIs);
// the checks still use the original argv. It returns stdout and stderr.
func runVector(t *testing.T, c vectorCmd, subst map[string]string) (string, string) {
	work := t.TempDir()
	outs := outputsOf(c.Argv)
	isOut := map[string]bool{}
	for _, o := range outs {
		isOut[o] = true
	}
	// Copy in every input the command names, at its relative path.
	for _, a := range c.Argv[1:] {
		if strings.Contains(a, "/") {
			require.NoError(t, os.MkdirAll(filepath.Join(work, filepath.Dir(a)), 0o755))
		}
		if isOut[a] {
			continue
		}
		if data, err := os.ReadFile(filepath.Join(vectorsDir, a)); err == nil {
			require.NoError(t, os.WriteFile(filepath.Join(work, a), data, 0o644))
		}
	}

	argv := append([]string(nil), c.Argv[1:]...)
	for i, a := range argv {
		if r, ok := subst[a]; ok {
			argv[i] = r
		}
	}
	cmd := exec.Command(mcusignBin, argv...)
	cmd.Dir = work
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	rc := cmd.ProcessState.ExitCode()
	require.NotEqual(t, -1, rc, "killed: %v", err)

	wantOK := c.RC == 0 && !refusedOnPurpose[c.Name]
	if !wantOK {
		require.NotZero(t, rc, "imgtool failed (rc %d) but mcusign succeeded; stdout:\n%s", c.RC, stdout.String())
		msg := stderr.String()
		assert.Equal(t, 1, strings.Count(msg, "\n"), "want one error line, got:\n%s", msg)
		assert.NotContains(t, msg, "panic")
		assert.NotContains(t, msg, "goroutine")
		for _, o := range outs {
			assert.NoFileExists(t, filepath.Join(work, o), "failed command left an output behind")
		}
		assertNoTempFiles(t, work)
		return stdout.String(), stderr.String()
	}
	require.Zero(t, rc, "imgtool succeeded but mcusign failed:\n%s", stderr.String())
	assertNoTempFiles(t, work)

	for _, o := range outs {
		got, err := os.ReadFile(filepath.Join(work, o))
		require.NoError(t, err, "output %s missing", o)
		want, err := os.ReadFile(filepath.Join(vectorsDir, o))
		require.NoError(t, err, "no golden file for %s", o)
		switch {
		case encrypted(c.Argv) && !strings.HasSuffix(o, ".b64"):
			checkEncrypted(t, c.Argv, o, got, want, work)
			continue
		case isCompressed(want):
			checkCompressed(t, c.Argv, o, got, want, work)
			continue
		case randomized(c.Argv):
			checkRandomized(t, c.Argv, o, got, want, work)
			continue
		}
		require.True(t, bytes.Equal(want, got), "%s differs from imgtool's output (got %d bytes, want %d)", o, len(got), len(want))
	}
	if len(outs) == 0 && producesStdout(c.Argv) {
		want, err := os.ReadFile(filepath.Join(vectorsDir, "logs", c.Name+".out"))
		require.NoError(t, err)
		require.Equal(t, string(want), stdout.String())
	}
	if c.Argv[1] == "sign" && !strings.Contains(strings.Join(c.Argv, " "), "--help") {
		checkSignStdout(t, c.Name, stdout.String())
	}
	return stdout.String(), stderr.String()
}

func producesStdout(argv []string) bool {
	if strings.Contains(strings.Join(argv, " "), "--help") {
		return false // our help text is our own
	}
	switch argv[1] {
	case "getpub", "getpubhash", "getpriv", "dumpinfo", "verify", "keyinfo", "version":
		return true
	}
	return false
}

// randomized reports whether a sign command makes an RSA or ECDSA signature,
// whose bytes differ on every run.
func randomized(argv []string) bool {
	if argv[1] != "sign" || strings.Contains(strings.Join(argv, " "), "--vector-to-sign") {
		return false
	}
	for i, a := range argv {
		if (a == "-k" || a == "--key") && i+1 < len(argv) {
			return strings.Contains(argv[i+1], "rsa") || strings.Contains(argv[i+1], "ecdsa")
		}
	}
	return false
}

// checkRandomized: the image verifies with the key, and equals imgtool's
// everywhere outside the signature TLV.
func checkRandomized(t *testing.T, argv []string, name string, got, want []byte, work string) {
	keyPath := ""
	for i, a := range argv {
		if a == "-k" {
			keyPath = filepath.Join(work, argv[i+1])
		}
	}
	k, err := filekey.LoadFile(keyPath, nil)
	require.NoError(t, err)
	if strings.HasSuffix(name, ".b64") {
		sig, err := base64.StdEncoding.DecodeString(string(got))
		require.NoError(t, err)
		img, err := os.ReadFile(filepath.Join(work, argv[len(argv)-1]))
		require.NoError(t, err)
		require.True(t, bytes.Contains(img, sig), "--sig-out signature is not the one in the image")
		return
	}
	_, err = signer.Verify(got, k.Public)
	require.NoError(t, err, "our %s does not verify", name)
	gi, err := signer.Inspect(got, name)
	require.NoError(t, err)
	wi, err := signer.Inspect(want, name)
	require.NoError(t, err)
	require.Equal(t, wi.Header, gi.Header)
	require.Equal(t, wi.ProtectedInfo, gi.ProtectedInfo)
	require.Equal(t, wi.ProtectedTLVs, gi.ProtectedTLVs)
	require.Equal(t, len(wi.TLVs), len(gi.TLVs))
	for i, w := range wi.TLVs {
		switch w.Type {
		case signer.TLVECDSASig, signer.TLVRSA2048, signer.TLVRSA3072:
			require.Equal(t, w.Type, gi.TLVs[i].Type)
		default:
			require.Equal(t, w, gi.TLVs[i])
		}
	}
	// Everything up to the unprotected TLV area is identical.
	end := int(gi.Header.HdrSize) + int(gi.Header.ImgSize) + int(gi.Header.ProtectedTLVSize)
	require.Equal(t, want[:end], got[:end])
}

func assertNoTempFiles(t *testing.T, dir string) {
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.Contains(info.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}
