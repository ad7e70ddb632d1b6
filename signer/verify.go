package signer

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
)

// Verification failures, with imgtool's wording.
var (
	ErrInvalidMagic    = errors.New("Invalid image magic; is this an MCUboot image?")
	ErrInvalidTLVMagic = errors.New("Invalid TLV info magic; is this an MCUboot image?")
	ErrInvalidHash     = errors.New("Image has an invalid hash")
	ErrNoSignature     = errors.New("No signature found for the given key")
	ErrKeyMismatch     = errors.New("Key type does not match TLV record")
)

// Verified describes an image that passed Verify.
type Verified struct {
	Version Version
	Digest  []byte // nil for pure signatures
	// PureSignature is the Ed25519 signature over the image, for --pure images.
	PureSignature []byte
}

// Verify checks an image the way `imgtool verify` does: the hash TLV must
// match, and with a public key, a signature of that key's type must verify.
// pub may be nil to check only the hash.
func Verify(img []byte, pub crypto.PublicKey) (*Verified, error) {
	var kt KeyType
	if pub != nil {
		var err error
		if kt, err = TypeOf(pub); err != nil {
			return nil, err
		}
		if !kt.CanSign() {
			return nil, fmt.Errorf("an %s key cannot verify signatures: X25519 keys only encrypt; pass the signing key", kt)
		}
	}
	if len(img) < ImageHeaderSize || binary.LittleEndian.Uint32(img) != ImageMagic {
		return nil, ErrInvalidMagic
	}
	le := binary.LittleEndian
	hdrSize := int(le.Uint16(img[8:]))
	imgSize := int(le.Uint32(img[12:]))
	ver := Version{img[20], img[21], le.Uint16(img[22:]), le.Uint32(img[24:])}

	off := hdrSize + imgSize
	magic, tot, ok := tlvInfo(img, off)
	if ok && magic == TLVProtMagic {
		off += tot
		magic, tot, ok = tlvInfo(img, off)
	}
	if !ok || magic != TLVInfoMagic {
		return nil, ErrInvalidTLVMagic
	}
	region := img[:off]
	end := off + tot
	if end > len(img) {
		return nil, fmt.Errorf("image is truncated: the TLV area ends at %#x but the file has %#x bytes", end, len(img))
	}

	type tlv struct {
		typ   byte
		value []byte
	}
	var tlvs []tlv
	pure := false
	for p := off + tlvInfoSize; p < end; {
		if p+tlvHeaderSize > end {
			return nil, fmt.Errorf("image is truncated: TLV header at %#x runs past the TLV area", p)
		}
		n := int(le.Uint16(img[p+2:]))
		if p+tlvHeaderSize+n > end {
			return nil, fmt.Errorf("image is malformed: TLV at %#x claims %d bytes, past the end of the TLV area", p, n)
		}
		t := tlv{img[p], img[p+tlvHeaderSize : p+tlvHeaderSize+n]}
		pure = pure || t.typ == TLVSigPure
		tlvs = append(tlvs, t)
		p += tlvHeaderSize + n
	}

	var sum []byte
	for _, t := range tlvs {
		switch {
		case t.typ == TLVSHA256 || t.typ == TLVSHA384 || t.typ == TLVSHA512:
			h := map[byte]crypto.Hash{TLVSHA256: crypto.SHA256, TLVSHA384: crypto.SHA384, TLVSHA512: crypto.SHA512}[t.typ]
			if pub != nil {
				if _, err := chooseHash(kt, false, h, false); err != nil {
					return nil, ErrKeyMismatch
				}
			}
			sum = digest(h, region)
			if !bytes.Equal(sum, t.value) {
				return nil, ErrInvalidHash
			}
			if pub == nil {
				return &Verified{Version: ver, Digest: sum}, nil
			}
		case pub == nil:
		case !pure && uint16(t.typ) == kt.SigTLV() && sum != nil:
			if VerifySignature(pub, SignRequest{Payload: region, Digest: sum}, t.value) == nil {
				return &Verified{Version: ver, Digest: sum}, nil
			}
		case pure && t.typ == TLVEd25519 && kt == Ed25519:
			if VerifySignature(pub, SignRequest{Payload: region, Pure: true}, t.value) == nil {
				return &Verified{Version: ver, PureSignature: t.value}, nil
			}
		}
	}
	return nil, ErrNoSignature
}

// tlvInfo reads a TLV area info header at off.
func tlvInfo(img []byte, off int) (magic uint16, tot int, ok bool) {
	if off < 0 || off+tlvInfoSize > len(img) {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint16(img[off:]), int(binary.LittleEndian.Uint16(img[off+2:])), true
}
