package signer

import (
	"encoding/binary"
	"fmt"
)

// SignedRegion describes the to-be-signed region of an image: header,
// header padding, body and protected TLVs, exactly the bytes a Key is asked
// to sign (SignRequest.Payload). A signing service that receives bytes from
// a client checks them with ParseSignedRegion before it signs, so it only
// ever signs MCUboot images and can account for what it signed.
type SignedRegion struct {
	BigEndian        bool // imgtool --endian big
	LoadAddr         uint32
	HdrSize          int
	ImgSize          int
	ProtectedTLVSize int
	Flags            uint32
	Version          Version
}

// Size is the length of the region.
func (r *SignedRegion) Size() int { return r.HdrSize + r.ImgSize + r.ProtectedTLVSize }

// FlagNames names the header flags set in flags, in imgtool's order;
// unknown bits are shown in hex.
func FlagNames(flags uint32) []string {
	var out []string
	for _, f := range flagNames {
		if flags&f.Flag != 0 {
			out = append(out, f.Name)
			flags &^= f.Flag
		}
	}
	if flags != 0 {
		out = append(out, fmt.Sprintf("0x%x", flags))
	}
	return out
}

// ParseSignedRegion checks that b is exactly the to-be-signed region of an
// MCUboot image — a header with the image magic (either byte order), a
// header size of at least 32, and hdr_size + img_size + protected TLV size
// equal to len(b), with a well-formed protected TLV area — and returns its
// header fields. It rejects a whole signed image (which has the unprotected
// TLVs appended) as well as truncated or arbitrary bytes.
func ParseSignedRegion(b []byte) (*SignedRegion, error) {
	if len(b) < ImageHeaderSize {
		return nil, fmt.Errorf("not an MCUboot image: %d bytes is shorter than the 32-byte header", len(b))
	}
	var bo binary.ByteOrder = binary.LittleEndian
	big := false
	switch {
	case binary.LittleEndian.Uint32(b) == ImageMagic:
	case binary.BigEndian.Uint32(b) == ImageMagic:
		bo, big = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("not an MCUboot image: the header magic is %#08x, want %#08x", binary.LittleEndian.Uint32(b), uint32(ImageMagic))
	}
	r := &SignedRegion{
		BigEndian:        big,
		LoadAddr:         bo.Uint32(b[4:]),
		HdrSize:          int(bo.Uint16(b[8:])),
		ProtectedTLVSize: int(bo.Uint16(b[10:])),
		ImgSize:          int(bo.Uint32(b[12:])),
		Flags:            bo.Uint32(b[16:]),
		Version:          Version{b[20], b[21], bo.Uint16(b[22:]), bo.Uint32(b[24:])},
	}
	if r.HdrSize < ImageHeaderSize {
		return nil, fmt.Errorf("not an MCUboot image: hdr_size %d is below the 32-byte header", r.HdrSize)
	}
	// int64: hdr_size + img_size must not overflow on 32-bit platforms.
	want := int64(r.HdrSize) + int64(r.ImgSize) + int64(r.ProtectedTLVSize)
	if want != int64(len(b)) {
		return nil, fmt.Errorf("not the to-be-signed region of an MCUboot image: the header says hdr_size %#x + img_size %#x + protected TLVs %#x = %#x bytes, but %#x were sent",
			r.HdrSize, r.ImgSize, r.ProtectedTLVSize, want, len(b))
	}
	if r.ProtectedTLVSize == 0 {
		return r, nil
	}
	off := r.HdrSize + r.ImgSize
	end := len(b)
	if r.ProtectedTLVSize < tlvInfoSize {
		return nil, fmt.Errorf("not an MCUboot image: protected TLV size %d is smaller than the TLV info header", r.ProtectedTLVSize)
	}
	if m := bo.Uint16(b[off:]); m != TLVProtMagic {
		return nil, fmt.Errorf("not an MCUboot image: the protected TLV area at %#x has magic %#04x, want %#04x", off, m, TLVProtMagic)
	}
	if tot := int(bo.Uint16(b[off+2:])); tot != r.ProtectedTLVSize {
		return nil, fmt.Errorf("not an MCUboot image: the protected TLV area says %d bytes but the header says %d", tot, r.ProtectedTLVSize)
	}
	for p := off + tlvInfoSize; p < end; {
		if p+tlvHeaderSize > end {
			return nil, fmt.Errorf("not an MCUboot image: a protected TLV header at %#x runs past the area", p)
		}
		p += tlvHeaderSize + int(bo.Uint16(b[p+2:]))
		if p > end {
			return nil, fmt.Errorf("not an MCUboot image: a protected TLV runs past the end of its area")
		}
	}
	return r, nil
}
