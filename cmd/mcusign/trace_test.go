package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

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
	tok := p11test.NewToken(t)
	pem, err := filepath.Abs(filepath.Join(vectorsDir, "keys", "ed25519.pem"))
	require.NoError(t, err)
	tok.ImportPEM(t, "fw", pem)
	d := startDaemon(t, tok, "", "")
	work := t.TempDir()

	daemonPhases := []string{"read", "connect", "lookup", "hash", "upload", "check", "sign", "audit", "rpc", "verify", "write"}
	hexApp, err := filepath.Abs(filepath.Join(vectorsDir, "inputs", "app-100k@0x08020200.hex"))
	require.NoError(t, err)
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
			require.Equal(t, tc.via, tl.via, errOut)
			require.Equal(t, tc.region, tl.region, errOut)
			a, _ := os.ReadFile(plain)
			b, _ := os.ReadFile(out)
			require.Equal(t, a, b, "tracing changed the image (Ed25519 signatures are deterministic)")
		})
	}
}
