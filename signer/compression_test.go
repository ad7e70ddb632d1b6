package signer_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/compress"
	"github.com/mcusign/mcusign/signer/imgcheck"
)

// countingKey counts the signatures a Key makes, like an HSM audit log.
type countingKey struct {
	signer.Key
	n atomic.Int32
}

func (k *countingKey) Sign(ctx context.Context, req signer.SignRequest) ([]byte, error) {
	k.n.Add(1)
	return k.Key.Sign(ctx, req)
}

func compOptions() signer.Options {
	return signer.Options{Version: signer.Version{Major: 1, Minor: 2, Revision: 3, Build: 4}, HeaderSize: 0x200, PadHeader: true,
		SlotSize: 0x60000, Align: 4, Compression: signer.CompressLZMA2}
}

func tlvValue(t *testing.T, l *imgcheck.Layout, typ uint16) []byte {
	t.Helper()
	v := l.Find(typ)
	require.NotNil(t, v, "TLV %#x missing", typ)
	return v.Value
}

// The compressed image carries the uncompressed image's size, hash and
// signature (both made through the same Key), decompresses to the input
// and verifies; every signature goes through the Key.
func TestCompressSignsTwiceThroughKey(t *testing.T) {
	app := readVector(t, "inputs/compressible-100k.bin")
	for _, kt := range []string{"ed25519.pem", "ecdsa-p256.pem", "rsa-2048.pem", "ecdsa-p384.pem"} {
		t.Run(kt, func(t *testing.T) {
			inner, err := loadKey(t, kt).Key()
			require.NoError(t, err)
			key := &countingKey{Key: inner}
			o := compOptions()
			o.Compression = signer.CompressLZMA2ARMThumb
			img, err := signer.Build(context.Background(), app, o, key, nil)
			require.NoError(t, err)
			require.EqualValues(t, 2, key.n.Load(), "uncompressed, then compressed")
			require.True(t, img.Compression.Used)
			require.Equal(t, len(app), img.Compression.OriginalSize)

			l, err := imgcheck.Parse(img.Bytes)
			require.NoError(t, err)
			require.Equal(t, uint32(signer.FlagCompressedLZMA2|signer.FlagCompressedARMThumb), l.Flags)
			require.Equal(t, img.Compression.CompressedSize+2, l.ImgSize)
			dec, err := imgcheck.Decompress(img.Bytes)
			require.NoError(t, err)
			require.Equal(t, app, dec)
			_, err = signer.Verify(img.Bytes, loadKey(t, kt).Public)
			require.NoError(t, err)

			// DECOMP_* describe the plain image with the same options.
			plainOpts := compOptions()
			plainOpts.Compression = signer.CompressNone
			plain, err := signer.Build(context.Background(), app, plainOpts, inner, nil)
			require.NoError(t, err)
			require.Equal(t, binary.LittleEndian.AppendUint32(nil, uint32(len(app))), tlvValue(t, l, signer.TLVDecompSize))
			require.Equal(t, plain.Digest, tlvValue(t, l, signer.TLVDecompSHA))
			dsig := tlvValue(t, l, signer.TLVDecompSignature)
			require.NoError(t, signer.VerifySignature(loadKey(t, kt).Public, signer.SignRequest{Digest: plain.Digest}, dsig))
			if kt == "ed25519.pem" {
				require.Equal(t, plain.Signature, dsig)
			}
			require.Nil(t, l.Find(signer.TLVCompDecSize), "COMP_DEC_SIZE only when encrypted")
		})
	}
}

// Unsigned: DECOMP_SIZE and DECOMP_SHA, no DECOMP_SIGNATURE.
func TestCompressUnsigned(t *testing.T) {
	app := readVector(t, "inputs/compressible-100k.bin")
	img, err := signer.Build(context.Background(), app, compOptions(), nil, nil)
	require.NoError(t, err)
	l, err := imgcheck.Parse(img.Bytes)
	require.NoError(t, err)
	require.Len(t, l.Protected, 2)
	_, err = signer.Verify(img.Bytes, nil)
	require.NoError(t, err)
}

// Compressed and encrypted: the compressed body is padded and encrypted,
// COMP_DEC_SIZE gives the compressed length to decompress after
// decryption, and DECOMP_SHA is the hash of imgtool's first image, which
// has the encryption flag but a plain, unpadded body.
func TestCompressEncrypted(t *testing.T) {
	app := readVector(t, "inputs/compressible-100k.bin")[:50001]
	key := signKey(t, "ed25519.pem")
	for _, clear := range []bool{false, true} {
		o := compOptions()
		o.Encrypt = &signer.Encryption{PublicKey: loadKey(t, "x25519.pub.pem").Public, KeyBits: 256, Clear: clear, Rand: seeded(3)}
		img, err := signer.Build(context.Background(), app, o, key, nil)
		require.NoError(t, err)
		require.True(t, img.Compression.Used)
		l, err := imgcheck.Parse(img.Bytes)
		require.NoError(t, err)
		require.Equal(t, uint32(signer.FlagCompressedLZMA2|signer.FlagEncryptedAES256), l.Flags)
		require.Zero(t, (l.HdrSize+l.ImgSize)%16, "AES block padding")
		compLen := img.Compression.CompressedSize + 2
		require.Equal(t, binary.LittleEndian.AppendUint32(nil, uint32(compLen)), tlvValue(t, l, signer.TLVCompDecSize))
		require.Equal(t, []uint16{signer.TLVDecompSize, signer.TLVDecompSHA, signer.TLVDecompSignature, signer.TLVCompDecSize},
			[]uint16{l.Protected[0].Type, l.Protected[1].Type, l.Protected[2].Type, l.Protected[3].Type})

		dec := img.Bytes
		if !clear {
			dec, err = imgcheck.Decrypt(img.Bytes, loadKey(t, "x25519.pem").Private)
			require.NoError(t, err)
		}
		_, err = signer.Verify(dec, loadKey(t, "ed25519.pem").Public)
		require.NoError(t, err)
		out, err := imgcheck.Decompress(dec)
		require.NoError(t, err)
		require.Equal(t, app, out)

		// The first image: no padding, no encryption, but the flag.
		first := signer.Options{Version: o.Version, HeaderSize: 0x200, PadHeader: true, Vector: "payload"}
		payload, err := signer.Build(context.Background(), app, first, nil, nil)
		require.NoError(t, err)
		binary.LittleEndian.PutUint32(payload.Bytes[16:], signer.FlagEncryptedAES256)
		require.Equal(t, digestOf(payload.Bytes), tlvValue(t, l, signer.TLVDecompSHA))
	}
}

func digestOf(b []byte) []byte {
	h := crypto.SHA256.New()
	h.Write(b)
	return h.Sum(nil)
}

// Incompressible input: the uncompressed image, byte-identical to a build
// without --compression (imgtool's fallback). With -E it is the properly
// encrypted image, where imgtool would keep its unencrypted first image.
func TestCompressFallback(t *testing.T) {
	app := readVector(t, "inputs/app-100k.bin")
	key := signKey(t, "ed25519.pem")
	img, err := signer.Build(context.Background(), app, compOptions(), key, nil)
	require.NoError(t, err)
	require.False(t, img.Compression.Used)
	require.Greater(t, img.Compression.CompressedSize, len(app))
	require.Equal(t, readVector(t, "variants/comp-fallback.bin"), img.Bytes)

	o := compOptions()
	o.Encrypt = &signer.Encryption{PublicKey: loadKey(t, "x25519.pub.pem").Public, Rand: seeded(5)}
	img, err = signer.Build(context.Background(), app, o, key, nil)
	require.NoError(t, err)
	o.Compression = signer.CompressNone
	o.Encrypt.Rand = seeded(5)
	want, err := signer.Build(context.Background(), app, o, key, nil)
	require.NoError(t, err)
	require.Equal(t, want.Bytes, img.Bytes)
	dec, err := imgcheck.Decrypt(img.Bytes, loadKey(t, "x25519.pem").Private)
	require.NoError(t, err)
	_, err = signer.Verify(dec, loadKey(t, "ed25519.pem").Public)
	require.NoError(t, err)
}

// The compressed image keeps --pad and the trailer, and --non-bootable
// (which imgtool drops there); --test becomes --pad, as in imgtool.
func TestCompressOptionsCarryOver(t *testing.T) {
	app := readVector(t, "inputs/compressible-100k.bin")
	o := compOptions()
	o.Test, o.NonBootable, o.LoadAddr = true, true, 0x20000000
	img, err := signer.Build(context.Background(), app, o, signKey(t, "ed25519.pem"), nil)
	require.NoError(t, err)
	require.True(t, img.Compression.Used)
	l, err := imgcheck.Parse(img.Bytes)
	require.NoError(t, err)
	require.Equal(t, uint32(signer.FlagCompressedLZMA2|signer.FlagNonBootable|signer.FlagRAMLoad), l.Flags)
	padded := img.Padded()
	require.Len(t, padded, 0x60000)
	require.Equal(t, readVector(t, "variants/pad.bin")[0x60000-16:], padded[0x60000-16:], "trailer magic")
	require.Len(t, img.TrailerPatches(), 1, "only the magic, no --test image_ok block (HEX)")
}

// Like imgtool, the uncompressed image must fit the slot too: the
// bootloader installs it decompressed.
func TestCompressSlotCheck(t *testing.T) {
	app := readVector(t, "inputs/compressible-100k.bin")
	o := compOptions()
	o.SlotSize = 0x10000
	_, err := signer.Build(context.Background(), app, o, signKey(t, "ed25519.pem"), nil)
	require.ErrorContains(t, err, "exceeds the slot size 0x10000")
}

func TestCompressErrors(t *testing.T) {
	app := readVector(t, "inputs/compressible-100k.bin")
	pub := loadKey(t, "ed25519.pub.pem").Public
	for _, tc := range []struct {
		name  string
		edit  func(o *signer.Options)
		fixed *signer.FixedSignature
		err   string
	}{
		{"fix-sig", func(o *signer.Options) {}, &signer.FixedSignature{PublicKey: pub, Signature: make([]byte, 64)}, "--compression needs the signing key (-k)"},
		{"vector", func(o *signer.Options) { o.Vector = "digest" }, nil, "--vector-to-sign/--fix-sig cannot make one"},
		{"bad type", func(o *signer.Options) { o.Compression = "lzma1" }, nil, "use lzma2 or lzma2armthumb"},
	} {
		o := compOptions()
		tc.edit(&o)
		_, err := signer.Build(context.Background(), app, o, nil, tc.fixed)
		require.ErrorContains(t, err, tc.err, tc.name)
		require.NotContains(t, err.Error(), "\n")
	}
}

// The body is MCUboot's 2-byte LZMA2 header, then the raw stream.
func TestCompressBodyHeader(t *testing.T) {
	app := readVector(t, "inputs/compressible-100k.bin")
	for _, pad := range []bool{true, false} {
		o := compOptions()
		in := app
		if !pad {
			o.PadHeader = false
			in = append(make([]byte, 0x200), app...)
		}
		img, err := signer.Build(context.Background(), in, o, nil, nil)
		require.NoError(t, err)
		l, err := imgcheck.Parse(img.Bytes)
		require.NoError(t, err)
		require.Equal(t, compress.Header(), l.Body(img.Bytes)[:2])
		fillByte := byte(0)
		if pad {
			fillByte = 0xff
		}
		require.Equal(t, bytes.Repeat([]byte{fillByte}, 0x200-32), img.Bytes[32:0x200], "header slot filled as without compression")
		dec, err := imgcheck.Decompress(img.Bytes)
		require.NoError(t, err)
		require.Equal(t, app, dec)
	}
}
