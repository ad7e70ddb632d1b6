package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/filekey"
	"github.com/mcusign/mcusign/signer/pkcs11key/p11test"
)

// zephyr4xArgv is what Zephyr 4.x's build passes to `python3 ${IMGTOOL}`
// (cmake/mcuboot.cmake), with the key last set by the caller.
var zephyr4xArgv = []string{"sign", "--version", "0.0.0+0", "--header-size", "0x200", "--slot-size", "421888", "--align", "4"}

// buildtimeApp copies a Zephyr build's zephyr.bin (header slot zeroed) into dir.
func buildtimeApp(t *testing.T, dir string) string {
	data, err := os.ReadFile(filepath.Join("../../testdata/zephyr-builds/nrf52dk-mcuboot/zephyr/zephyr.bin"))
	require.NoError(t, err)
	app := filepath.Join(dir, "zephyr.bin")
	require.NoError(t, os.WriteFile(app, data, 0o644))
	return app
}

// imgtoolShim runs westext/imgtool.py the way Zephyr's build does.
func imgtoolShim(t *testing.T, env []string, dir string, args ...string) (string, int) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	shim, err := filepath.Abs("../../westext/imgtool.py")
	require.NoError(t, err)
	cmd := exec.Command(py, append([]string{shim}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(env, "MCUSIGN="+mcusignBin)
	out, _ := cmd.CombinedOutput()
	require.NotContains(t, string(out), p11test.PIN, "the PIN leaked")
	return string(out), cmd.ProcessState.ExitCode()
}

// Zephyr 4.x build-time signing through the IMGTOOL shim and a standing
// daemon: once with the key's pkcs11: URI, once with only its public-key
// PEM as the key (what a sysbuild SB_CONFIG_BOOT_SIGNATURE_KEY_FILE shared
// with MCUboot hands the app). No private key file exists anywhere; every
// signature is in the daemon's audit log.
func TestBuildTimeSigningThroughDaemon(t *testing.T) {
	tok := p11test.NewToken(t)
	tok.Generate(t, "fw-signing", signer.ECDSAP256)
	tok.Generate(t, "other", signer.Ed25519)
	d := startDaemon(t, tok, "", "")
	dir := t.TempDir()
	app := buildtimeApp(t, dir)
	env := append(d.env(), "MCUSIGN_KEY_SEARCH=pkcs11:token="+tok.Label)

	// MCUboot's side: the public key file its build turns into C.
	pubPEM := filepath.Join(dir, "keys", "fw-pub.pem")
	require.NoError(t, os.MkdirAll(filepath.Dir(pubPEM), 0o755))
	_, errOut, rc := runEnv(t, env, dir, "getpub", "-k", standingURI(tok, "fw-signing"), "-e", "pem", "-o", pubPEM)
	require.Zero(t, rc, errOut)
	pub, err := filekey.LoadFile(pubPEM, nil)
	require.NoError(t, err)
	require.False(t, pub.IsPrivate())

	for _, tc := range []struct{ name, key string }{
		{"uri", standingURI(tok, "fw-signing")},
		{"public-pem", pubPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".signed.bin")
			argv := append(append(append([]string{}, zephyr4xArgv...), "--key", tc.key), app, out)
			msg, rc := imgtoolShim(t, env, dir, argv...)
			require.Zero(t, rc, msg)
			img, err := os.ReadFile(out)
			require.NoError(t, err)
			_, err = signer.Verify(img, pub.Public)
			require.NoError(t, err)
			if tc.name == "public-pem" {
				require.Contains(t, msg, "signing with its private key")
			}
		})
	}
	require.Len(t, auditRecords(t, d.auditLog, "sign"), 2)

	// A public key no token key matches: one line saying what was searched.
	stray, err := filepath.Abs(filepath.Join(vectorsDir, "keys", "ecdsa-p256.pub.pem"))
	require.NoError(t, err)
	msg, rc := imgtoolShim(t, env, dir, append(append(append([]string{}, zephyr4xArgv...), "--key", stray), app, filepath.Join(dir, "x.bin"))...)
	require.NotZero(t, rc)
	require.Contains(t, msg, "no private key in pkcs11:token="+tok.Label+" matches it")
	require.Contains(t, msg, `"fw-signing"`)
	require.Equal(t, 1, strings.Count(strings.TrimSpace(msg), "\n")+1, msg)
	require.NoFileExists(t, filepath.Join(dir, "x.bin"))
}

// Without a daemon (a single developer), the public-key PEM still finds its
// token key, through an on-demand mcusignd.
func TestPublicKeyPEMOnDemand(t *testing.T) {
	tok := p11test.NewToken(t)
	tok.Generate(t, "dev", signer.Ed25519)
	dir := t.TempDir()
	app := buildtimeApp(t, dir)
	pubPEM := filepath.Join(dir, "dev-pub.pem")
	env := append(os.Environ(), "MCUSIGN_SOCKET_DIR=", "XDG_RUNTIME_DIR="+t.TempDir(), "XDG_STATE_HOME="+t.TempDir(),
		"MCUSIGN_PIN_FILE="+tok.PINFile, "MCUSIGN_KEY_SEARCH="+tok.URI(""))
	_, errOut, rc := runEnv(t, env, dir, "getpub", "-k", tok.URI("dev"), "-e", "pem", "-o", pubPEM)
	require.Zero(t, rc, errOut)
	out := filepath.Join(dir, "zephyr.signed.bin")
	_, errOut, rc = runEnv(t, env, dir, append(append(append([]string{}, zephyr4xArgv...), "--key", pubPEM), app, out)...)
	require.Zero(t, rc, errOut)
	_, errOut, rc = runEnv(t, env, dir, "verify", "-k", pubPEM, out)
	require.Zero(t, rc, errOut)
}
