package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/imgcheck"
	"github.com/mcusign/mcusign/signer/pkcs11key/p11test"
)

// MCUSIGN_TRACE=1 adds one line of phase durations on stderr and changes
// nothing else; through a daemon it splits the signing call with the
// daemon's own timing and says how the image got there: as a sealed memory
// file, on a standing daemon's socket and on the private socket of one
// started on demand, and that file is the memory a binary input was read
// and built in, not a copy (a HEX input is decoded into other memory, so
// its region is copied). It never shows the PIN (runEnv checks).
func TestTrace(t *testing.T) {
	tok, d, work := fwDaemon(t)
	pem := vecPath(t, "keys/ed25519.pem")

	daemonPhases := []string{"read", "connect", "lookup", "hash", "upload", "check", "sign", "audit", "rpc", "verify", "write"}
	hexApp := vecPath(t, "inputs/app-100k@0x08020200.hex")
	for _, tc := range []struct {
		name, key, in string
		env           []string
		phases        []string
		via, region   string
	}{
		{"file", pem, daemonApp(t), d.env(), []string{"read", "lookup", "hash", "sign", "verify", "write"}, "", ""},
		{"daemon", standingURI(tok, "fw"), daemonApp(t), d.env(), daemonPhases, "file", "in-place"},
		{"daemon-hex", standingURI(tok, "fw"), hexApp, d.env(), daemonPhases, "file", "copy"},
		// No MCUSIGN_SOCKET_DIR: the full URI (module, PIN file) goes to a
		// daemon started for the command.
		{"on-demand", tok.URI("fw"), daemonApp(t), os.Environ(), daemonPhases, "file", "in-place"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain, out := filepath.Join(work, tc.name+".bin"), filepath.Join(work, tc.name+".traced.bin")
			sign := func(env []string, out string) (string, int) {
				args := append([]string{"sign", "-k", tc.key}, daemonSignArgs...)
				_, errOut, rc := runEnv(t, env, work, append(args, tc.in, out)...)
				return errOut, rc
			}
			errOut, rc := sign(tc.env, plain)
			require.Zero(t, rc, errOut)
			require.Empty(t, errOut)
			errOut, rc = sign(append(tc.env, EnvTrace+"=1"), out)
			require.Zero(t, rc, errOut)
			tl, ok := parseTrace(errOut)
			require.True(t, ok, errOut)
			require.NotZero(t, tl.t0)
			require.Greater(t, tl.peakRSS, int64(1<<20))
			for _, p := range append(tc.phases, "total") {
				require.Contains(t, tl.phases, p, errOut)
			}
			require.Equal(t, tc.via, tl.facts["via"], errOut)
			require.Equal(t, tc.region, tl.facts["region"], errOut)
			a, _ := os.ReadFile(plain)
			b, _ := os.ReadFile(out)
			require.Equal(t, a, b, "tracing changed the image (Ed25519 signatures are deterministic)")
		})
	}
}

// A standing daemon publishes a key in its descriptor once a command has
// looked it up; later commands sign with it without asking (key=published
// in the trace) and get the same image. When the published key is not the
// key the token holds any more (here: a descriptor edited to say another
// fingerprint), the daemon refuses to sign before the token is asked, the
// command fails with one line and leaves no output, and the next command
// asks again and signs.
func TestPublishedKey(t *testing.T) {
	tok, d, work := fwDaemon(t)
	uri := standingURI(tok, "fw")
	env := append(d.env(), EnvTrace+"=1")
	sign := func(out string) (*traceLine, string, int) {
		errOut, rc := daemonSign(t, env, work, uri, out)
		tl, _ := parseTrace(errOut)
		return tl, errOut, rc
	}
	published := func() *plugin.PublishedKey {
		desc, err := plugin.ReadDescriptor(d.sockDir)
		require.NoError(t, err)
		for i := range desc.Keys {
			if desc.Keys[i].URI == uri {
				return &desc.Keys[i]
			}
		}
		return nil
	}

	first := filepath.Join(work, "first.bin")
	tl, errOut, rc := sign(first)
	require.Zero(t, rc, errOut)
	require.Equal(t, "asked", tl.facts["key"], errOut)
	require.Eventually(t, func() bool { return published() != nil }, 10*time.Second, 10*time.Millisecond, "the key was not published")
	pk := published()
	require.Equal(t, "ed25519", pk.Type)

	second := filepath.Join(work, "second.bin")
	tl, errOut, rc = sign(second)
	require.Zero(t, rc, errOut)
	require.Equal(t, "published", tl.facts["key"], errOut)
	a, _ := os.ReadFile(first)
	b, _ := os.ReadFile(second)
	require.Equal(t, a, b, "Ed25519 signatures are deterministic")

	// The descriptor says another fingerprint than the token's key has.
	desc, err := plugin.ReadDescriptor(d.sockDir)
	require.NoError(t, err)
	for i := range desc.Keys {
		desc.Keys[i].Fingerprint = "sha256:" + strings.Repeat("0", 64)
	}
	require.NoError(t, plugin.WriteDescriptor(d.sockDir, desc, 0o600, -1))
	stale := filepath.Join(work, "stale.bin")
	_, errOut, rc = sign(stale)
	require.NotZero(t, rc)
	require.Contains(t, errOut, "changed in the token; run the command again")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if !strings.HasPrefix(l, "mcusign: trace:") {
			lines = append(lines, l)
		}
	}
	require.Len(t, lines, 1, errOut)
	require.NoFileExists(t, stale)
	recs := auditRecords(t, d.auditLog, "sign")
	require.Len(t, recs, 3)
	require.Contains(t, recs[2], `"result":"refused"`)
	require.Eventually(t, func() bool { return published() == nil }, 10*time.Second, 10*time.Millisecond, "the stale key stayed published")

	third := filepath.Join(work, "third.bin")
	tl, errOut, rc = sign(third)
	require.Zero(t, rc, errOut)
	require.Equal(t, "asked", tl.facts["key"], errOut)
	c, _ := os.ReadFile(third)
	require.Equal(t, a, c)
}

// Through a standing daemon, an image encrypted in the memory it is passed
// in (in place) and compressed images (two signatures: the whole image's,
// built in other memory, and the small compressed one's, sent in the
// call) are signed over exactly their bytes: each decrypts, decompresses
// and verifies.
func TestDaemonEncryptedAndCompressed(t *testing.T) {
	tok, _ := vectorToken(t)
	d := startDaemon(t, tok, "", "")
	dir := t.TempDir()
	for _, tc := range []struct {
		name, in    string
		via, region string // of the last signature
		extra       []string
	}{
		{"encrypted", "inputs/app-100k.bin", "file", "in-place", []string{"-E", vecPath(t, "keys/x25519.pub.pem")}},
		{"compressed", "inputs/compressible-100k.bin", "message", "", []string{"--compression", "lzma2"}},
		{"both", "inputs/compressible-100k.bin", "message", "", []string{"-E", vecPath(t, "keys/x25519.pem"), "--compression", "lzma2armthumb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".bin")
			args := signArgs(t, append(tc.extra, "-k", standingURI(tok, "ed25519"), vecPath(t, tc.in), out)...)
			_, errOut, rc := runEnv(t, append(d.env(), EnvTrace+"=1"), dir, args...)
			require.Zero(t, rc, errOut)
			tl, ok := parseTrace(errOut)
			require.True(t, ok, errOut)
			require.Equal(t, tc.via, tl.facts["via"], errOut)
			require.Equal(t, tc.region, tl.facts["region"], errOut)

			img, err := os.ReadFile(out)
			require.NoError(t, err)
			l, err := imgcheck.Parse(img)
			require.NoError(t, err)
			img = img[:l.End]
			if l.Flags&signer.FlagEncryptedAES128 != 0 {
				img, err = imgcheck.Decrypt(img, loadVectorKey(t, vectorsDir, "keys/x25519.pem").Private)
				require.NoError(t, err)
			}
			_, err = signer.Verify(img, loadVectorKey(t, vectorsDir, "keys/ed25519.pem").Public)
			require.NoError(t, err)
			body := l.Body(img)
			if l.Flags&signer.FlagCompressedLZMA2 != 0 {
				body, err = imgcheck.Decompress(img)
				require.NoError(t, err)
			}
			app, err := os.ReadFile(vecPath(t, tc.in))
			require.NoError(t, err)
			require.Equal(t, app, body[:len(app)])
		})
	}
}

// An image larger than the daemon copies out of its memory file (it maps
// it instead) signs like one made in-process, byte for byte (Ed25519),
// passed in place.
func TestDaemonSignsLargeImage(t *testing.T) {
	tok, d, work := fwDaemon(t)
	app := filepath.Join(work, "app-6m.bin")
	data := make([]byte, 6<<20)
	rand.Read(data)
	require.NoError(t, os.WriteFile(app, data, 0o644))
	args := []string{"-v", "1.2.3", "-H", "0x200", "--pad-header", "-S", "0x800000", "--align", "4", app}

	viaDaemon, inProc := filepath.Join(work, "daemon.bin"), filepath.Join(work, "inproc.bin")
	_, errOut, rc := runEnv(t, append(d.env(), EnvTrace+"=1"), work, append(append([]string{"sign", "-k", standingURI(tok, "fw")}, args...), viaDaemon)...)
	require.Zero(t, rc, errOut)
	tl, ok := parseTrace(errOut)
	require.True(t, ok, errOut)
	require.Equal(t, "file", tl.facts["via"], errOut)
	require.Equal(t, "in-place", tl.facts["region"], errOut)
	_, errOut, rc = runEnv(t, append(os.Environ(), EnvInProcess+"=1"), work, append(append([]string{"sign", "-k", tok.URI("fw")}, args...), inProc)...)
	require.Zero(t, rc, errOut)
	a, _ := os.ReadFile(viaDaemon)
	b, _ := os.ReadFile(inProc)
	require.Equal(t, b, a)
}

// fwDaemon is a standing daemon on a fresh token that holds the Ed25519
// vector key as "fw" (deterministic signatures: images compare byte for
// byte), and a work directory.
func fwDaemon(t *testing.T) (*p11test.Token, *daemonProc, string) {
	tok := p11test.NewToken(t)
	tok.ImportPEM(t, "fw", vecPath(t, "keys/ed25519.pem"))
	return tok, startDaemon(t, tok, "", ""), t.TempDir()
}
