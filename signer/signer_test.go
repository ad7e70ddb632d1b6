package signer_test

import (
	"context"
	"crypto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/filekey"
)

const vectors = "../testdata/vectors"

func loadKey(t testing.TB, name string) *filekey.File {
	t.Helper()
	k, err := filekey.LoadFile(filepath.Join(vectors, "keys", name), nil)
	require.NoError(t, err)
	return k
}

func readVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectors, name))
	require.NoError(t, err)
	return b
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want signer.Version
		err  string
	}{
		{"1.2.3+4", signer.Version{1, 2, 3, 4}, ""},
		{"2", signer.Version{Major: 2}, ""},
		{"0.9", signer.Version{Minor: 9}, ""},
		{"255.255.65535+4294967295", signer.Version{255, 255, 65535, 4294967295}, ""},
		{"1.2.3.4", signer.Version{}, "use maj.min.rev+build"},
		{"01.2.3", signer.Version{}, "no leading zeros"},
		{"256.0.0", signer.Version{}, "major must be at most 255"},
		{"1.2.65536", signer.Version{}, "revision must be at most 65535"},
		{"1.2.3+4294967296", signer.Version{}, "build must be at most 4294967295"},
		{"", signer.Version{}, "invalid version"},
		{"v1.0", signer.Version{}, "invalid version"},
	} {
		got, err := signer.ParseVersion(tc.in)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}

func TestParseInt(t *testing.T) {
	for in, want := range map[string]int64{
		"512": 512, "0x200": 512, "0X200": 512, "0o1000": 512, "0b1000000000": 512,
		"0": 0, "00": 0, "1_000": 1000, "0x_ff": 255, "-1": -1, " 7 ": 7,
	} {
		got, err := signer.ParseInt(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"512k", "", "0123", "0x", "1__0", "_1", "1_", "0xg", "1e3"} {
		_, err := signer.ParseInt(in)
		require.ErrorContains(t, err, "not a valid integer", in)
	}
}

func TestParseDependencies(t *testing.T) {
	deps, err := signer.ParseDependencies("(1,1.2.3+0), (2, 2.0.0)")
	require.NoError(t, err)
	require.Equal(t, []signer.Dependency{{1, signer.Version{1, 2, 3, 0}}, {2, signer.Version{Major: 2}}}, deps)
	_, err = signer.ParseDependencies("1,1.2.3")
	require.ErrorContains(t, err, "invalid dependencies")
	_, err = signer.ParseDependencies("(1,1.2.3), (2)")
	require.ErrorContains(t, err, "2 image ids but 1 versions")
	_, err = signer.ParseDependencies("(300,1.0.0)")
	require.ErrorContains(t, err, "use 0-255")
}

// Every signed golden image verifies with its key (private or public half),
// and a flipped payload bit is caught.
func TestVerifyGoldenImages(t *testing.T) {
	for _, tc := range []struct{ image, key string }{
		{"signed/rsa-2048.bin", "rsa-2048.pub.pem"},
		{"signed/rsa-3072.bin", "rsa-3072.pem"},
		{"signed/ecdsa-p256.bin", "ecdsa-p256.pub.pem"},
		{"signed/ecdsa-p384.bin", "ecdsa-p384.pem"},
		{"signed/ed25519.bin", "ed25519.pub.pem"},
		{"variants/ed25519-pure.bin", "ed25519.pem"},
		{"variants/ed25519-sha512.bin", "ed25519.pem"},
		{"variants/pubkey-full-p256.bin", "ecdsa-p256.pem"},
		{"variants/pubkey-full-rsa2048.bin", "rsa-2048.pem"},
		{"variants/boot-record-p384.bin", "ecdsa-p384.pem"},
		{"variants/all-protected.bin", "ed25519.pem"},
		{"variants/pad-confirm.bin", "ed25519.pem"},
		{"external/rsa-2048.payload.fixsig.bin", "rsa-2048.pub.pem"},
		{"external/ecdsa-p384.fixsig.bin", "ecdsa-p384.pub.pem"},
	} {
		t.Run(tc.image, func(t *testing.T) {
			v, err := signer.Verify(readVector(t, tc.image), loadKey(t, tc.key).Public)
			require.NoError(t, err)
			require.Equal(t, "1.2.3+4", v.Version.String())
		})
	}
	ed := loadKey(t, "ed25519.pem").Public
	_, err := signer.Verify(readVector(t, "errors/ed25519-corrupt.bin"), ed)
	require.ErrorIs(t, err, signer.ErrInvalidHash)
	_, err = signer.Verify(readVector(t, "external/garbage.fixsig.bin"), ed)
	require.ErrorIs(t, err, signer.ErrNoSignature)
	_, err = signer.Verify(readVector(t, "inputs/app-100k.bin"), ed)
	require.ErrorIs(t, err, signer.ErrInvalidMagic)
	_, err = signer.Verify(readVector(t, "signed/ed25519.bin"), loadKey(t, "ecdsa-p256.pem").Public)
	require.ErrorIs(t, err, signer.ErrNoSignature)
	_, err = signer.Verify(readVector(t, "signed/ecdsa-p384.bin"), loadKey(t, "ecdsa-p256.pem").Public)
	require.ErrorIs(t, err, signer.ErrKeyMismatch)
}

// The engine refuses what would not boot, with a message naming the fix.
func TestBuildErrors(t *testing.T) {
	app := readVector(t, "inputs/app-100k.bin")
	ed, err := loadKey(t, "ed25519.pem").Key()
	require.NoError(t, err)
	base := signer.Options{Version: signer.Version{Major: 1}, HeaderSize: 0x200, PadHeader: true, SlotSize: 0x60000}
	sig := readVector(t, "external/ed25519.sig")
	for _, tc := range []struct {
		name  string
		edit  func(o *signer.Options)
		key   signer.Key
		fixed *signer.FixedSignature
		app   []byte
		err   string
	}{
		{"header too small", func(o *signer.Options) { o.HeaderSize = 16 }, nil, nil, app, "CONFIG_BOOTLOADER_MCUBOOT=y"},
		{"header not zero", func(o *signer.Options) { o.PadHeader = false }, nil, nil, app, "add --pad-header"},
		{"too large", func(o *signer.Options) { o.SlotSize = 0x10000 }, nil, nil, app, "exceeds the slot size 0x10000"},
		{"load and rom", func(o *signer.Options) { o.LoadAddr, o.ROMFixed = 1, 2 }, nil, nil, app, "exclude each other"},
		{"bad align", func(o *signer.Options) { o.Align = 3 }, nil, nil, app, "invalid --align 3"},
		{"pure with rsa", func(o *signer.Options) { o.Pure = true }, nil, nil, app, "--pure needs an Ed25519 key"},
		{"sha384 with ed25519", func(o *signer.Options) { o.Hash = crypto.SHA384 }, ed, nil, app, "cannot be used with --sha 384: use --sha 256 or 512"},
		{"long boot record", func(o *signer.Options) { o.BootRecord = "ThisIsTooLong13" }, nil, nil, app, "too long (15 characters)"},
		{"key and fixed", func(o *signer.Options) {}, ed, &signer.FixedSignature{PublicKey: loadKey(t, "ed25519.pub.pem").Public, Signature: sig}, app, "exclude each other"},
		{"garbage fixed sig", func(o *signer.Options) {}, nil, &signer.FixedSignature{PublicKey: loadKey(t, "ed25519.pub.pem").Public, Signature: []byte{0, 0, 0}}, app, "does not verify against --fix-sig-pubkey"},
		{"x25519 fixed pubkey", func(o *signer.Options) {}, nil, &signer.FixedSignature{PublicKey: loadKey(t, "x25519.pub.pem").Public, Signature: sig}, app, "X25519 keys only encrypt"},
		{"short input", func(o *signer.Options) { o.PadHeader = false }, nil, nil, make([]byte, 10), "shorter than the 512-byte header"},
		{"custom tlv dup", func(o *signer.Options) { o.CustomTLVs = []signer.TLV{{0xa0, nil}, {0xa0, nil}} }, nil, nil, app, "given twice"},
		{"custom tlv predefined", func(o *signer.Options) { o.CustomTLVs = []signer.TLV{{0x50, nil}} }, nil, nil, app, "conflicts with the predefined SEC_CNT"},
		{"huge custom tlv", func(o *signer.Options) { o.CustomTLVs = []signer.TLV{{0xa0, make([]byte, 70000)}} }, nil, nil, app, "exceeds the 64 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.edit(&o)
			if tc.name == "pure with rsa" {
				rsaKey, err := loadKey(t, "rsa-2048.pem").Key()
				require.NoError(t, err)
				tc.key = rsaKey
			}
			_, err := signer.Build(context.Background(), tc.app, o, tc.key, tc.fixed)
			require.ErrorContains(t, err, tc.err)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

// FuzzVerify: hostile images never panic the verifier.
func FuzzVerify(f *testing.F) {
	for _, name := range []string{"signed/ed25519.bin", "variants/all-protected.bin", "variants/ed25519-pure.bin", "variants/pad-confirm.bin"} {
		b := readVector(f, name)
		if len(b) > 0x20000 {
			b = b[:0x20000]
		}
		f.Add(b)
	}
	// Small images the key really signed: mutations of their TLV areas
	// keep the hash valid and reach the signature checks quickly.
	key, err := loadKey(f, "ed25519.pem").Key()
	if err != nil {
		f.Fatal(err)
	}
	cnt := uint32(3)
	for _, o := range []signer.Options{
		{HeaderSize: 32, PadHeader: true, Align: 1},
		{HeaderSize: 32, PadHeader: true, Align: 1, SecurityCounter: &cnt, FullPublicKey: true},
		{HeaderSize: 32, PadHeader: true, Align: 1, Pure: true},
	} {
		img, err := signer.Build(context.Background(), []byte("tiny app"), o, key, nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(img.Bytes)
	}
	pub := loadKey(f, "ed25519.pem").Public
	f.Fuzz(func(t *testing.T, img []byte) {
		v, err := signer.Verify(img, pub)
		if err == nil && v == nil {
			t.Fatal("nil result without error")
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error: %q", err)
		}
		signer.Verify(img, nil)
	})
}
