package signer_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
)

// Verify (mcusign verify, and the --fix-sig check) on hostile images:
// truncated anywhere, sizes that point past the file, TLVs that overrun
// their area, a maximal run of empty TLVs, a signature of the wrong
// length. Each is refused with one line; none panics or loops. (Inspect,
// behind dumpinfo, has the same table in TestInspectErrors; both are
// fuzzed: FuzzVerify, FuzzInspect.)
func TestVerifyMalformed(t *testing.T) {
	img := readVector(t, "signed/ed25519.bin") // hdr 0x200, img 0x19000, TLV area 0x19200..0x19290
	pub := loadKey(t, "ed25519.pem").Public
	const tlvOff = 0x19200
	le := binary.LittleEndian
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(img)) }

	run := make([]byte, 32+4+0xfffb) // header, then 0xffff bytes of zero-length TLVs
	le.PutUint32(run, signer.ImageMagic)
	le.PutUint16(run[8:], 32)
	le.PutUint16(run[32:], signer.TLVInfoMagic)
	le.PutUint16(run[34:], 0xffff)

	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "Invalid image magic"},
		{"short header", img[:31], "Invalid image magic"},
		{"not an image", bytes.Repeat([]byte{0xff}, 4096), "Invalid image magic"},
		{"no TLV area", img[:tlvOff], "Invalid TLV info magic"},
		{"TLV area cut", img[:len(img)-1], "image is truncated: the TLV area ends at 0x19290 but the file has 0x1928f bytes"},
		{"huge img_size", with(func(b []byte) []byte { le.PutUint32(b[12:], 0xffffffff); return b }), "Invalid TLV info magic"},
		{"huge hdr_size", with(func(b []byte) []byte { le.PutUint16(b[8:], 0xffff); return b }), "Invalid TLV info magic"},
		{"huge tlv_tot", with(func(b []byte) []byte { le.PutUint16(b[tlvOff+2:], 0xffff); return b }), "image is truncated: the TLV area ends at"},
		{"TLV overruns its area", with(func(b []byte) []byte { le.PutUint16(b[tlvOff+6:], 0xffff); return b }), "claims 65535 bytes, past the end of the TLV area"},
		{"TLV header past the area", with(func(b []byte) []byte { le.PutUint16(b[tlvOff+2:], 6); return b }), "TLV header at 0x19204 runs past the TLV area"},
		{"empty TLV area", with(func(b []byte) []byte { le.PutUint16(b[tlvOff+2:], 4); return b }), "No signature found"},
		{"body changed", with(func(b []byte) []byte { b[0x300] ^= 1; return b }), "Image has an invalid hash"},
		{"protected area past the end", with(func(b []byte) []byte {
			le.PutUint16(b[10:], 0x10)
			le.PutUint16(b[tlvOff:], signer.TLVProtMagic)
			le.PutUint16(b[tlvOff+2:], 0xfff0)
			return b
		}), "Invalid TLV info magic"},
		{"signature of the wrong length", with(func(b []byte) []byte {
			b = b[:len(b)-1]
			le.PutUint16(b[tlvOff+2:], 0x8f)
			le.PutUint16(b[len(b)-0x3f-2:], 0x3f)
			return b
		}), "No signature found"},
		{"65535 bytes of empty TLVs", run, "runs past the TLV area"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := signer.Verify(c.data, pub)
			require.Nil(t, v)
			require.ErrorContains(t, err, c.want)
			require.NotContains(t, err.Error(), "\n")
			_, err = signer.Verify(c.data, nil) // hash only
			if err != nil {
				require.NotContains(t, err.Error(), "\n")
			}
		})
	}
}
