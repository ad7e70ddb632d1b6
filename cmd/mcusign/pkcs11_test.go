package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key"
	"github.com/mcusign/mcusign/signer/pkcs11key/p11test"
)

var signingTypes = []string{"rsa-2048", "rsa-3072", "ecdsa-p256", "ecdsa-p384", "ed25519"}

// vectorToken is a SoftHSM token holding the vector keys, imported as
// sensitive, non-extractable keys labelled by type.
func vectorToken(t *testing.T) (*p11test.Token, map[string]string) {
	tok := p11test.NewToken(t)
	subst := map[string]string{}
	for _, kt := range signingTypes {
		priv := p11test.ReadPEM(t, filepath.Join(vectorsDir, "keys", kt+".pem"))
		_, err := pkcs11key.Import(context.Background(), tok.URI(kt), priv, pkcs11key.Options{})
		require.NoError(t, err)
		subst["keys/"+kt+".pem"] = tok.URI(kt)
	}
	return tok, subst
}

// TestPKCS11Vectors replays every recorded sign, verify, getpub and
// getpubhash command that uses a private vector key, with the key named by
// its pkcs11: URI instead: Ed25519 images and all public-key outputs must be
// identical to imgtool's, RSA/ECDSA images identical outside the signature.
func TestPKCS11Vectors(t *testing.T) {
	_, subst := vectorToken(t)
	n := 0
	for _, c := range loadVectorCmds(t) {
		if c.Argv[0] != "imgtool" || notYet(c) != "" || refusedOnPurpose[c.Name] {
			continue
		}
		switch c.Argv[1] {
		case "sign", "verify", "getpub", "getpubhash":
		default:
			continue
		}
		uses := false
		for _, a := range c.Argv {
			if _, ok := subst[a]; ok {
				uses = true
			}
		}
		if !uses || c.RC != 0 {
			continue
		}
		n++
		t.Run(c.Name, func(t *testing.T) {
			stdout, stderr := runVector(t, c, subst)
			require.NotContains(t, stdout+stderr, p11test.PIN)
		})
	}
	require.Greater(t, n, 100, "too few commands replayed")
}

// mcusign runs the binary; it returns stdout, stderr and the exit code.
func mcusign(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(mcusignBin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	out, errOut := stdout.String(), stderr.String()
	require.NotContains(t, out+errOut, p11test.PIN, "the PIN leaked")
	require.NotContains(t, out+errOut, p11test.SOPIN, "the SO PIN leaked")
	return out, errOut, cmd.ProcessState.ExitCode()
}

// Keys made by `mcusign keygen` live only in the token: sensitive and not
// extractable. Every key type signs, and the image verifies with the public
// key `getpub -e pem` exports.
func TestPKCS11KeygenSignVerify(t *testing.T) {
	tok := p11test.NewToken(t)
	dir := t.TempDir()
	app, _ := filepath.Abs(filepath.Join(vectorsDir, "inputs", "app-100k.bin"))
	for _, kt := range signingTypes {
		t.Run(kt, func(t *testing.T) {
			uri := tok.URI("gen-" + kt)
			out, errOut, rc := mcusign(t, dir, "keygen", "-k", uri, "-t", kt)
			require.Zero(t, rc, errOut)
			require.Contains(t, out, "generated "+kt)

			info, err := pkcs11key.Info(context.Background(), uri, pkcs11key.Options{})
			require.NoError(t, err)
			require.True(t, info.Sensitive, "CKA_SENSITIVE")
			require.False(t, info.Extractable, "CKA_EXTRACTABLE")
			out, errOut, rc = mcusign(t, dir, "keyinfo", "-k", uri)
			require.Zero(t, rc, errOut)
			require.Contains(t, out, "sensitive:         true")
			require.Contains(t, out, "extractable:       false")

			_, errOut, rc = mcusign(t, dir, "keygen", "-k", uri, "-t", kt)
			require.Equal(t, 1, rc)
			require.Contains(t, errOut, "already")

			signed := filepath.Join(dir, kt+".bin")
			_, errOut, rc = mcusign(t, dir, "sign", "-k", uri, "-v", "1.2.3", "-H", "0x200", "--pad-header", "-S", "0x60000", "--align", "4", app, signed)
			require.Zero(t, rc, errOut)
			pub := filepath.Join(dir, kt+".pub.pem")
			_, errOut, rc = mcusign(t, dir, "getpub", "-k", uri, "-e", "pem", "-o", pub)
			require.Zero(t, rc, errOut)
			out, errOut, rc = mcusign(t, dir, "verify", "-k", pub, signed)
			require.Zero(t, rc, errOut)
			require.Contains(t, out, "Image was correctly validated")
			// Same bytes as a file-key image outside the signature: same
			// layout, and the token key verifies it directly too.
			_, errOut, rc = mcusign(t, dir, "verify", "-k", uri, signed)
			require.Zero(t, rc, errOut)
		})
	}
}

// Errors a user meets with tokens: each one line, naming the problem, never
// the PIN. (Ambiguous labels need raw PKCS#11 to create; pkcs11key tests them.)
func TestPKCS11Errors(t *testing.T) {
	tok := p11test.NewToken(t)
	tok.Generate(t, "fw", signer.Ed25519)
	dir := t.TempDir()
	wrongPIN := filepath.Join(dir, "wrong.pin")
	require.NoError(t, os.WriteFile(wrongPIN, []byte("not-the-pin\n"), 0o600))
	app, _ := filepath.Abs(filepath.Join(vectorsDir, "inputs", "app-100k.bin"))
	base := tok.BaseURI()
	withPIN := func(u pkcs11key.URI, pinFile string) string { u.PINSource = pinFile; return u.String() }
	obj := func(o string) pkcs11key.URI { u := base; u.Object = o; return u }

	for _, tc := range []struct {
		name, key, want string
	}{
		{"wrong PIN", withPIN(obj("fw"), wrongPIN), "PIN"},
		{"missing token", strings.Replace(tok.URI("fw"), tok.Label, "no-such-token", 1), "no-such-token"},
		{"missing key", tok.URI("nope"), "fw"}, // lists the labels the token holds
		{"bad URI", "pkcs11:token=a;bogus=1", "bogus"},
		{"missing module", "pkcs11:token=x;object=y?module-path=/nonexistent/lib.so", "/nonexistent/lib.so"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "out.bin")
			_, errOut, rc := mcusign(t, dir, "sign", "-k", tc.key, "-v", "1.0.0", "-H", "0x200", "--pad-header", "-S", "0x60000", app, out)
			require.NotZero(t, rc)
			require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
			require.Contains(t, errOut, tc.want)
			require.NoFileExists(t, out)
		})
	}
}
