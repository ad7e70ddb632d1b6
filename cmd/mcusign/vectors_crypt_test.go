package main

// Comparisons for the vector commands whose output cannot be byte-identical:
// -E images (random AES key, ephemeral key or OAEP seed) and compressed
// images (our LZMA2 encoder is not liblzma).

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/filekey"
	"github.com/mcusign/mcusign/signer/imgcheck"
)

// argValue returns the value of the first of names in argv, or "".
func argValue(argv []string, names ...string) string {
	for i, a := range argv[:len(argv)-1] {
		for _, n := range names {
			if a == n {
				return argv[i+1]
			}
		}
	}
	return ""
}

func hasArg(argv []string, names ...string) bool {
	for _, a := range argv {
		for _, n := range names {
			if a == n {
				return true
			}
		}
	}
	return false
}

func encrypted(argv []string) bool {
	return argv[1] == "sign" && argValue(argv, "-E", "--encrypt") != ""
}

func isCompressed(img []byte) bool {
	return len(img) >= 32 && binary.LittleEndian.Uint32(img) == signer.ImageMagic &&
		binary.LittleEndian.Uint32(img[16:])&signer.FlagCompressedLZMA2 != 0
}

func loadVectorKey(t *testing.T, dir, path string) *filekey.File {
	t.Helper()
	k, err := filekey.LoadFile(filepath.Join(dir, path), nil)
	require.NoError(t, err)
	return k
}

// inputBody is the image body the command's INFILE makes: all of it with
// --pad-header, else what follows the header slot.
func inputBody(t *testing.T, argv []string, work string) []byte {
	in, err := os.ReadFile(filepath.Join(work, argv[len(argv)-2]))
	require.NoError(t, err)
	if hasArg(argv, "--pad-header") {
		return in
	}
	hs, err := signer.ParseInt(argValue(argv, "-H", "--header-size"))
	require.NoError(t, err)
	return in[hs:]
}

// checkEncrypted: our image decrypts with the device key (the private half
// of the -E key) to the input and verifies with the signing key, and has
// imgtool's layout: decrypted, everything up to the unprotected TLVs equals
// the decrypted vector; the unprotected TLVs have the same types and
// lengths in the same order, equal values where they are deterministic; the
// padding and trailer are the same.
func checkEncrypted(t *testing.T, argv []string, name string, got, want []byte, work string) {
	// The device's private key is not among the command's inputs.
	dev := loadVectorKey(t, vectorsDir, strings.Replace(argValue(argv, "-E", "--encrypt"), ".pub.pem", ".pem", 1))
	sig := loadVectorKey(t, work, argValue(argv, "-k", "--key"))
	gl, err := imgcheck.Parse(got)
	require.NoError(t, err, "our %s", name)
	wl, err := imgcheck.Parse(want)
	require.NoError(t, err, "imgtool's %s", name)

	decGot, decWant := got, want
	if hasArg(argv, "--clear", "-c") {
		_, err := imgcheck.ImageKey(gl, dev.Private) // the key TLV is still valid
		require.NoError(t, err)
	} else {
		decGot, err = imgcheck.Decrypt(got, dev.Private)
		require.NoError(t, err, "our %s does not decrypt with the device key", name)
		decWant, err = imgcheck.Decrypt(want, dev.Private)
		require.NoError(t, err)
		require.False(t, bytes.Equal(gl.Body(got), gl.Body(decGot)), "the body is not encrypted")
	}
	_, err = signer.Verify(decGot, sig.Public)
	require.NoError(t, err, "our decrypted %s does not verify", name)
	app := inputBody(t, argv, work)
	body := gl.Body(decGot)
	require.True(t, bytes.Equal(app, body[:len(app)]), "decrypted body is not the input")
	require.Equal(t, make([]byte, len(body)-len(app)), body[len(app):], "AES block padding is zeros")

	end := gl.HdrSize + gl.ImgSize + gl.ProtSize
	require.Equal(t, wl.HdrSize+wl.ImgSize+wl.ProtSize, end)
	require.True(t, bytes.Equal(decWant[:end], decGot[:end]), "header, plaintext body or protected TLVs differ from imgtool's")
	checkUnprotected(t, wl.Unprotected, gl.Unprotected)
	checkTail(t, got[gl.End:], want[wl.End:])
}

// checkUnprotected: same TLV types in the same order with the same lengths;
// hash, key hash/public key and Ed25519 signatures are deterministic and
// equal; an ECDSA signature's DER length varies.
func checkUnprotected(t *testing.T, want, got []imgcheck.TLV) {
	require.Len(t, got, len(want), "unprotected TLVs")
	for i, w := range want {
		g := got[i]
		require.Equal(t, w.Type, g.Type, "unprotected TLV %d", i)
		switch w.Type {
		case signer.TLVECDSASig:
			// DER length varies with leading zeros of r and s (the
			// signature itself was verified); P-384's maximum is 104.
			require.LessOrEqual(t, len(g.Value), 104, "ECDSA signature length")
		case signer.TLVRSA2048, signer.TLVRSA3072, signer.TLVEncRSA2048, signer.TLVEncEC256, signer.TLVEncX25519, signer.TLVEncX25519SHA512:
			require.Len(t, g.Value, len(w.Value), "TLV %#x", w.Type)
		default:
			require.Equal(t, w.Value, g.Value, "TLV %#x", w.Type)
		}
	}
}

// checkTail compares what follows the TLVs (padding and trailer of --pad
// images), aligned at the end since ECDSA signatures vary in length.
func checkTail(t *testing.T, got, want []byte) {
	require.InDelta(t, len(want), len(got), 40, "bytes after the TLVs")
	n := min(len(got), len(want))
	require.Equal(t, want[len(want)-n:], got[len(got)-n:], "padding or trailer differs")
}

var xzArgs = []string{"--format=raw", "--lzma2=dict=128KiB,lc=3,lp=1,pb=2", "-dc"}

// xzDecompress decodes a raw LZMA2 stream with xz-utils.
func xzDecompress(t *testing.T, stream []byte, armThumb bool) []byte {
	path, err := exec.LookPath("xz")
	require.NoError(t, err, "xz is not installed; scripts/install-deps.sh installs xz-utils")
	args := xzArgs
	if armThumb {
		args = append([]string{"--armthumb"}, xzArgs...)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = bytes.NewReader(stream)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Run(), "xz %v: %s", args, errOut.String())
	return out.Bytes()
}

// checkCompressed: xz restores the input from our body; the header (but
// img_size), the protected TLVs (DECOMP_SIZE, DECOMP_SHA and, for Ed25519,
// DECOMP_SIGNATURE) and the deterministic unprotected TLVs equal imgtool's;
// the image verifies. Only the LZMA2 stream and what hashes it may differ.
func checkCompressed(t *testing.T, argv []string, name string, got, want []byte, work string) {
	require.True(t, isCompressed(got), "our %s is not compressed, imgtool's is", name)
	gl, err := imgcheck.Parse(got)
	require.NoError(t, err, "our %s", name)
	wl, err := imgcheck.Parse(want)
	require.NoError(t, err)
	require.Equal(t, want[:12], got[:12], "header before img_size")
	require.Equal(t, want[16:32], got[16:32], "header after img_size")

	body := gl.Body(got)
	require.Equal(t, gl.Body(want)[:2], body[:2], "LZMA2 header")
	thumb := gl.Flags&signer.FlagCompressedARMThumb != 0
	app := inputBody(t, argv, work)
	require.True(t, bytes.Equal(app, xzDecompress(t, body[2:], thumb)), "xz does not restore the input")
	dec, err := imgcheck.Decompress(got)
	require.NoError(t, err)
	require.True(t, bytes.Equal(app, dec))

	require.Len(t, gl.Protected, len(wl.Protected))
	for i, w := range wl.Protected {
		if w.Type == signer.TLVDecompSignature && !hasEd25519(wl) {
			require.Equal(t, w.Type, gl.Protected[i].Type)
			continue
		}
		require.Equal(t, w, gl.Protected[i], "protected TLV %#x", w.Type)
	}
	checkUnprotectedCompressed(t, wl.Unprotected, gl.Unprotected)
	if k := argValue(argv, "-k", "--key"); k != "" {
		_, err = signer.Verify(got, loadVectorKey(t, work, k).Public)
		require.NoError(t, err, "our %s does not verify", name)
	}
	checkTail(t, got[gl.End:], want[wl.End:])
}

func hasEd25519(l *imgcheck.Layout) bool { return l.Find(signer.TLVEd25519) != nil }

// checkUnprotectedCompressed: the hash and signature are of the compressed
// image and so differ with the stream; the key hash does not.
func checkUnprotectedCompressed(t *testing.T, want, got []imgcheck.TLV) {
	require.Len(t, got, len(want))
	for i, w := range want {
		require.Equal(t, w.Type, got[i].Type)
		if w.Type == signer.TLVKeyHash || w.Type == signer.TLVPubKey {
			require.Equal(t, w.Value, got[i].Value)
		}
	}
}

var compressedSizeLine = regexp.MustCompile(`^compressed image size: \d+ bytes$`)

// checkSignStdout: sign prints what imgtool prints, less its "image.py:"
// progress lines. The compressed size is our encoder's.
func checkSignStdout(t *testing.T, name, stdout string) {
	log, err := os.ReadFile(filepath.Join(vectorsDir, "logs", name+".out"))
	require.NoError(t, err)
	var want []string
	for _, l := range strings.Split(string(log), "\n") {
		if !strings.HasPrefix(l, "image.py:") {
			want = append(want, l)
		}
	}
	got := strings.Split(stdout, "\n")
	require.Len(t, got, len(want), "stdout:\n%s", stdout)
	for i := range want {
		if compressedSizeLine.MatchString(want[i]) {
			require.Regexp(t, compressedSizeLine, got[i])
			continue
		}
		require.Equal(t, want[i], got[i])
	}
}
