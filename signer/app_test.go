package signer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// vectorEd25519 is the vector Ed25519 key: deterministic signatures, so
// two builds of the same image are byte-identical.
func vectorEd25519(t *testing.T) CryptoKey {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../testdata/vectors/keys", "ed25519.pem"))
	require.NoError(t, err)
	block, _ := pem.Decode(data)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	require.NoError(t, err)
	return CryptoKey{Signer: k.(ed25519.PrivateKey)}
}

func vectorPub(t *testing.T, name string) any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../testdata/vectors/keys", name))
	require.NoError(t, err)
	block, _ := pem.Decode(data)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	require.NoError(t, err)
	return pub
}

func chacha(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// paddedReference is how Padded made the flashed image before WriteTo:
// a slot-sized copy, filled, with the trailer patches written over it.
func paddedReference(img *Image) []byte {
	o := &img.opts
	if !o.padded() {
		return img.Bytes
	}
	t := trailerSize(o, img.encTLVLen)
	out := make([]byte, max(o.SlotSize, len(img.Bytes)+t))
	copy(out, img.Bytes)
	fill(out[len(img.Bytes):], o.erased())
	for _, p := range img.TrailerPatches() {
		copy(out[len(out)-o.SlotSize+p.Offset:], p.Data)
	}
	return out
}

// buildCases are option sets covering every layout path: header slot
// prepended or in the input, padding and trailer variants, encryption
// (whose AES padding and key TLV are appended), TLVs, vectors.
func buildCases(t *testing.T) map[string]Options {
	base := Options{Version: Version{1, 2, 3, 4}, HeaderSize: 0x200, PadHeader: true, Align: 4, SlotSize: 0x60000}
	with := func(f func(o *Options)) Options {
		o := base
		f(&o)
		return o
	}
	cnt := uint32(3)
	return map[string]Options{
		"plain":         base,
		"zero-header":   with(func(o *Options) { o.PadHeader = false }),
		"pad":           with(func(o *Options) { o.Pad = true }),
		"confirm-max32": with(func(o *Options) { o.Confirm, o.Align, o.MaxAlign = true, 32, 32 }),
		"test-erased0":  with(func(o *Options) { o.Test, o.ErasedZero = true, true }),
		"overwrite":     with(func(o *Options) { o.Pad, o.OverwriteOnly = true, true }),
		"big-slot":      with(func(o *Options) { o.Pad, o.SlotSize = true, 3<<20 }), // fill beyond one 256 KiB chunk
		"tlvs": with(func(o *Options) {
			o.SecurityCounter, o.BootRecord = &cnt, "fw"
			o.Dependencies = []Dependency{{1, Version{Major: 2}}}
			o.CustomTLVs = []TLV{{0xa0, bytes.Repeat([]byte{7}, 5000)}}
		}),
		"encrypted": with(func(o *Options) {
			o.Pad = true
			o.Encrypt = &Encryption{PublicKey: vectorPub(t, "x25519.pub.pem"), SaveEncTLV: true}
		}),
		"payload": with(func(o *Options) { o.Vector = "payload" }),
		"digest":  with(func(o *Options) { o.Vector = "digest" }),
	}
}

// BuildApp builds in the App's own buffer and makes what Build makes from
// a copy; WriteTo streams what the slot-sized copy held.
func TestBuildAppInPlace(t *testing.T) {
	key := vectorEd25519(t)
	app := make([]byte, 100_003)
	chacha(1).Read(app)
	for name, o := range buildCases(t) {
		t.Run(name, func(t *testing.T) {
			in := app
			if !o.PadHeader {
				in = append(make([]byte, o.HeaderSize), app...)
			}
			orig := bytes.Clone(in)
			if o.Encrypt != nil {
				o.Encrypt.Rand = chacha(2)
			}
			want, err := Build(context.Background(), in, o, key, nil)
			require.NoError(t, err)
			require.Equal(t, orig, in, "Build modified its input")

			a := NewApp(len(in), o)
			copy(a.Bytes(), in)
			buf := a.buf
			if o.Encrypt != nil {
				o.Encrypt.Rand = chacha(2)
			}
			got, err := BuildApp(context.Background(), a, o, key, nil)
			require.NoError(t, err)
			require.Equal(t, want.Bytes, got.Bytes)
			require.Equal(t, want.Digest, got.Digest)
			if o.Vector != "digest" {
				require.Same(t, &buf[0], &got.Bytes[0], "the image was not built in the App's buffer")
			}

			require.Equal(t, paddedReference(want), want.Padded())
			var w bytes.Buffer
			n, err := got.WriteTo(&w)
			require.NoError(t, err)
			require.EqualValues(t, got.Size(), n)
			require.Equal(t, paddedReference(want), w.Bytes())
		})
	}
}

// An App made for another header-slot layout is copied, not misread.
func TestBuildAppOtherLayout(t *testing.T) {
	key := vectorEd25519(t)
	app := make([]byte, 5000)
	chacha(3).Read(app)
	o := Options{Version: Version{Major: 1}, HeaderSize: 0x200, PadHeader: true}
	want, err := Build(context.Background(), app, o, key, nil)
	require.NoError(t, err)
	a := NewApp(len(app), Options{HeaderSize: 0x100, PadHeader: true})
	copy(a.Bytes(), app)
	got, err := BuildApp(context.Background(), a, o, key, nil)
	require.NoError(t, err)
	require.Equal(t, want.Bytes, got.Bytes)
}

// ReadApp takes exactly the size it was told, and says so when the input
// holds less or more.
func TestReadApp(t *testing.T) {
	o := Options{Version: Version{Major: 1}, HeaderSize: 0x20, PadHeader: true}
	data := []byte("0123456789")
	a, err := ReadApp(iotest.OneByteReader(bytes.NewReader(data)), int64(len(data)), o)
	require.NoError(t, err)
	require.Equal(t, data, a.Bytes())
	require.Equal(t, bytes.Repeat([]byte{0xff}, 0x20), a.buf[:0x20])

	_, err = ReadApp(bytes.NewReader(data), 11, o)
	require.ErrorIs(t, err, ErrInputChanged)
	_, err = ReadApp(bytes.NewReader(data), 9, o)
	require.ErrorIs(t, err, ErrInputChanged)
	_, err = ReadApp(iotest.ErrReader(os.ErrPermission), 9, o)
	require.ErrorIs(t, err, os.ErrPermission)
}
