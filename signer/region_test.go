package signer

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"strings"
	"testing"
)

func regionOf(t testing.TB, big bool, secCnt bool) []byte {
	t.Helper()
	o := Options{Version: Version{1, 2, 3, 4}, HeaderSize: 0x200, PadHeader: true, SlotSize: 0x10000, Align: 1, BigEndian: big, Vector: "payload"}
	if secCnt {
		c := uint32(7)
		o.SecurityCounter = &c
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	img, err := Build(context.Background(), make([]byte, 1000), o, CryptoKey{Signer: priv}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return img.Bytes
}

// The daemon signs only bytes that are exactly a to-be-signed region.
func TestParseSignedRegion(t *testing.T) {
	le := regionOf(t, false, true)
	r, err := ParseSignedRegion(le)
	if err != nil {
		t.Fatal(err)
	}
	if r.BigEndian || r.HdrSize != 0x200 || r.ImgSize != 1000 || r.ProtectedTLVSize == 0 || r.Version.String() != "1.2.3+4" || r.Size() != len(le) {
		t.Fatalf("parsed %+v from %d bytes", r, len(le))
	}
	be := regionOf(t, true, false)
	if r, err := ParseSignedRegion(be); err != nil || !r.BigEndian || r.ProtectedTLVSize != 0 {
		t.Fatalf("big-endian region: %+v, %v", r, err)
	}

	mutate := func(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"empty", "shorter than the 32-byte header", nil},
		{"arbitrary bytes", "header magic", mutate(le, func(b []byte) []byte { b[0] ^= 0xff; return b })},
		{"truncated", "were sent", le[:len(le)-1]},
		{"with unprotected TLVs appended", "were sent", append(append([]byte(nil), le...), 0x07, 0x69, 4, 0)},
		{"hdr_size below 32", "hdr_size", mutate(le, func(b []byte) []byte { binary.LittleEndian.PutUint16(b[8:], 16); return b })},
		{"bad protected magic", "protected TLV area", mutate(le, func(b []byte) []byte { b[0x200+1000] ^= 1; return b })},
		{"protected TLV overruns", "past", mutate(le, func(b []byte) []byte { b[0x200+1000+4+2] = 0xff; return b })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSignedRegion(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestFlagNames(t *testing.T) {
	got := strings.Join(FlagNames(FlagRAMLoad|FlagNonBootable|0x80000000), ",")
	if got != "NON_BOOTABLE,RAM_LOAD,0x80000000" {
		t.Fatal(got)
	}
}

// The daemon parses bytes from clients: no input may panic, and whatever
// it accepts is exactly a region.
func FuzzParseSignedRegion(f *testing.F) {
	f.Add(regionOf(f, false, true))
	f.Add(regionOf(f, true, false))
	f.Add([]byte{0x3d, 0xb8, 0xf3, 0x96})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseSignedRegion(b)
		if err == nil && r.Size() != len(b) {
			t.Fatalf("accepted %d bytes as a region of %d", len(b), r.Size())
		}
	})
}
