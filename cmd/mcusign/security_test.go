package main

// Security checks as tests. Others live next to what they test and are
// listed in docs/security.md: peer-credential refusal and Shutdown refusal
// (TestDaemonAccessControl), the PIN in no argv, log or audit record
// (TestDaemonPINNeverLeaks), keys generated sensitive and non-extractable
// (TestPKCS11KeygenSignVerify, pkcs11key's TestGeneratedKeysAreSensitive),
// getpriv refusing token keys (TestGetpriv).

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/plugin/pb"
	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key/p11test"
)

func fileMode(t *testing.T, path string) (os.FileMode, uint32) {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	return st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Gid
}

// What a standing daemon creates is its own: the socket directory 0700,
// the socket and its descriptor 0600, the audit log 0600 in a directory it
// creates 0700. With --group the group gets exactly what it needs (0750,
// 0660, 0640). A PIN file others can read is refused.
func TestDaemonFileModes(t *testing.T) {
	tok := p11test.NewToken(t)
	tok.Generate(t, "fw", signer.ECDSAP256)
	auditLog := filepath.Join(t.TempDir(), "new", "dir", "audit.jsonl")
	d := startDaemon(t, tok, "", auditLog)
	desc, err := plugin.ReadDescriptor(d.sockDir)
	require.NoError(t, err)
	for path, want := range map[string]os.FileMode{
		d.sockDir: 0o700, desc.Address: 0o600, filepath.Join(d.sockDir, plugin.DescriptorName): 0o600,
		auditLog: 0o600, filepath.Dir(auditLog): 0o700, filepath.Dir(filepath.Dir(auditLog)): 0o700,
	} {
		mode, _ := fileMode(t, path)
		require.Equal(t, want, mode, path)
	}
	d.stop(t)

	if os.Getuid() == 0 {
		g := startDaemon(t, tok, "", "", "--group", "65534")
		desc, err := plugin.ReadDescriptor(g.sockDir)
		require.NoError(t, err)
		for path, want := range map[string]os.FileMode{
			g.sockDir: 0o750, desc.Address: 0o660, filepath.Join(g.sockDir, plugin.DescriptorName): 0o640, g.auditLog: 0o600,
		} {
			mode, gid := fileMode(t, path)
			require.Equal(t, want, mode, path)
			if path != g.auditLog {
				require.EqualValues(t, 65534, gid, path)
			}
		}
	}

	loose := filepath.Join(t.TempDir(), "pin")
	require.NoError(t, os.WriteFile(loose, []byte(tok.PIN+"\n"), 0o644))
	out, err := exec.Command(mcusigndBin, "serve", "--pin-file", loose, "--token", tok.Label, "--socket-dir", filepath.Join(t.TempDir(), "s"),
		"--audit-log", filepath.Join(t.TempDir(), "a.jsonl")).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "is readable by other users (mode 0644); chmod 0600 it")
	require.NotContains(t, string(out), tok.PIN)
}

// Limits that allow nothing are refused before the PIN is read or the
// token asked, with the fix, not taken for the default (--max-concurrent
// 0 or below) or reported as a login that timed out (--request-timeout 0).
func TestDaemonRefusesBadLimits(t *testing.T) {
	tok := p11test.NewToken(t)
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--max-concurrent", "0"}, "--max-concurrent 0 allows no token operation; use 1 to 16"},
		{[]string{"--max-concurrent", "-1"}, "--max-concurrent -1 allows no token operation"},
		{[]string{"--max-concurrent", "17"}, "use at most 16"},
		{[]string{"--request-timeout", "0s"}, "--request-timeout 0s is not a positive duration; use e.g. 30s or 2m"},
		{[]string{"--request-timeout", "-1m"}, "--request-timeout -1m0s is not a positive duration"},
		{[]string{"--max-image-size", "0"}, "is not a size"},
	} {
		t.Run(strings.Join(c.flags, " "), func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "s")
			args := append([]string{"serve", "--pin-file", tok.PINFile, "--token", tok.Label, "--socket-dir", sock,
				"--audit-log", filepath.Join(t.TempDir(), "a.jsonl")}, c.flags...)
			cmd := exec.Command(mcusigndBin, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			done := make(chan error, 1)
			require.NoError(t, cmd.Start())
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("mcusignd served with %v:\n%s", c.flags, stderr.String())
			}
			require.Equal(t, 2, cmd.ProcessState.ExitCode(), stderr.String())
			require.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
			require.Contains(t, stderr.String(), c.want)
			require.NoDirExists(t, sock, "no socket for a daemon that refused to start")
		})
	}
}

// Requests mcusign never sends, straight to the daemon's gRPC socket: each
// is refused with the right code and one line, nothing is signed, and the
// daemon keeps serving.
func TestDaemonRefusesMalformedRequests(t *testing.T) {
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "fw", signer.ECDSAP256)
	d := startDaemon(t, tok, "", "", "--max-image-size", "1MiB")
	c := rawSigner(t, d)
	key := standingURI(tok, "fw")

	app, err := os.ReadFile(daemonApp(t))
	require.NoError(t, err)
	soft, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	img, err := signer.Build(context.Background(), app[:4000], signer.Options{HeaderSize: 0x200, PadHeader: true, Align: 1}, signer.CryptoKey{Signer: soft}, nil)
	require.NoError(t, err)
	whole := img.Bytes
	region := whole[:0x200+4000] // no protected TLVs

	start := func(size uint64, h pb.HashAlgorithm, digest []byte) *pb.SignChunk {
		return &pb.SignChunk{Msg: &pb.SignChunk_Start{Start: &pb.SignStart{KeyUri: key, Hash: h, Size: size, Digest: digest}}}
	}
	data := func(b []byte) *pb.SignChunk { return &pb.SignChunk{Msg: &pb.SignChunk_Data{Data: b}} }
	sha := pb.HashAlgorithm_HASH_ALGORITHM_SHA256
	for _, tc := range []struct {
		name string
		msgs []*pb.SignChunk
		code codes.Code
		want string
	}{
		{"nothing sent", nil, codes.InvalidArgument, "send a SignStart message first"},
		{"data before start", []*pb.SignChunk{data(region)}, codes.InvalidArgument, "must begin with a SignStart"},
		{"unknown hash", []*pb.SignChunk{start(uint64(len(region)), pb.HashAlgorithm(9), nil), data(region)}, codes.InvalidArgument, "hash"},
		{"size over the limit", []*pb.SignChunk{start(2<<20, sha, nil)}, codes.InvalidArgument, "exceeds this mcusignd's limit of 1048576 bytes"},
		{"size out of range", []*pb.SignChunk{start(1<<63, sha, nil)}, codes.InvalidArgument, "out of range"},
		{"zero size", []*pb.SignChunk{start(0, sha, nil)}, codes.InvalidArgument, "no image bytes were declared"},
		{"more than declared", []*pb.SignChunk{start(1000, sha, nil), data(region[:600]), data(region[600:1200])}, codes.InvalidArgument, "more than the 1000 bytes it declared"},
		{"less than declared", []*pb.SignChunk{start(uint64(len(region)), sha, nil), data(region[:100])}, codes.InvalidArgument, "sent 100"},
		{"second start", []*pb.SignChunk{start(uint64(len(region)), sha, nil), data(region[:100]), start(10, sha, nil)}, codes.InvalidArgument, "one SignStart"},
		{"not an image", []*pb.SignChunk{start(4096, sha, nil), data(make([]byte, 4096))}, codes.InvalidArgument, "signs only MCUboot images"},
		{"whole image, not its region", []*pb.SignChunk{start(uint64(len(whole)), sha, nil), data(whole)}, codes.InvalidArgument, "were sent"},
		{"digest mismatch", []*pb.SignChunk{start(uint64(len(region)), sha, make([]byte, 32)), data(region)}, codes.InvalidArgument, "digest does not match"},
		{"5 MiB message", []*pb.SignChunk{start(1<<20, sha, nil), data(make([]byte, 5<<20))}, codes.ResourceExhausted, "larger than max"},
		{"module-path", []*pb.SignChunk{{Msg: &pb.SignChunk_Start{Start: &pb.SignStart{KeyUri: key + "?module-path=/tmp/evil.so", Hash: sha, Size: uint64(len(region))}}}, data(region)},
			codes.PermissionDenied, "refuses module-path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := c.Sign(context.Background())
			require.NoError(t, err)
			for _, m := range tc.msgs {
				if stream.Send(m) != nil {
					break // the daemon ended the call; its reason comes below
				}
			}
			_, err = stream.CloseAndRecv()
			s, _ := status.FromError(err)
			require.Equal(t, tc.code, s.Code(), "%v", err)
			require.Contains(t, s.Message(), tc.want)
			require.NotContains(t, s.Message(), "\n")
		})
	}
	d.alive(t)
	for _, r := range readAudit(t, d.auditLog) {
		require.NotEqual(t, "ok", r.Result, "nothing may have been signed")
	}
	// The same region, well formed, signs.
	sum := sha256.Sum256(region)
	stream, err := c.Sign(context.Background())
	require.NoError(t, err)
	require.NoError(t, stream.Send(start(uint64(len(region)), sha, sum[:])))
	require.NoError(t, stream.Send(data(region)))
	resp, err := stream.CloseAndRecv()
	require.NoError(t, err)
	require.NoError(t, signer.VerifySignature(k.Public(), signer.SignRequest{Payload: region, Digest: sum[:], Hash: crypto.SHA256}, resp.Signature))
}

// `mcusign keygen -k pkcs11:...` creates the key in the token and writes
// no file at all; the private key's secret attributes cannot be read
// through PKCS#11 (CKR_ATTRIBUTE_SENSITIVE); getpriv refuses token keys.
func TestTokenKeysNeverWritten(t *testing.T) {
	tok := p11test.NewToken(t)
	dir := t.TempDir()
	for _, kt := range []string{"ecdsa-p256", "rsa-2048", "ed25519"} {
		out, errOut, rc := mcusign(t, dir, "keygen", "-k", tok.URI(kt), "-t", kt)
		require.Zero(t, rc, errOut)
		require.Contains(t, out, "generated "+kt)
		_, errOut, rc = mcusign(t, dir, "getpriv", "-k", tok.URI(kt))
		require.Equal(t, 2, rc)
		require.Contains(t, errOut, "keys in a token never leave it")
	}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, ents, "keygen and getpriv with a token key wrote files")

	secret := map[string]uint{"ecdsa-p256": pkcs11.CKA_VALUE, "rsa-2048": pkcs11.CKA_PRIVATE_EXPONENT, "ed25519": pkcs11.CKA_VALUE}
	tok.Raw(t, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
		for label, attr := range secret {
			require.NoError(t, p.FindObjectsInit(sh, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}))
			hs, _, err := p.FindObjects(sh, 2)
			require.NoError(t, err)
			require.NoError(t, p.FindObjectsFinal(sh))
			require.Len(t, hs, 1, label)
			_, err = p.GetAttributeValue(sh, hs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(attr, nil)})
			require.ErrorIs(t, err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE), label)
		}
	})
}
