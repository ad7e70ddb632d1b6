// Package imgcheck undoes what the signer does to an image body, as the
// bootloader would: Decrypt recovers the plaintext of an -E image with the
// device's private key, Decompress expands a --compression image. It is the
// test-side oracle for encrypted and compressed output; the tool itself
// never imports it.
//
// It is written from the format description (MCUboot's image format,
// sections "Encryption" and "Compression"), not from package signer, so a
// misreading in one is not silently shared by the other.
package imgcheck

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/ulikunitz/xz/lzma"

	"github.com/mcusign/mcusign/signer/compress"
)

// Format constants, restated here on purpose (see the package comment).
const (
	imageMagic   = 0x96f3b83d
	headerSize   = 32
	protMagic    = 0x6908
	unprotMagic  = 0x6907
	flagAES128   = 0x04
	flagAES256   = 0x08
	flagLZMA2    = 0x400
	flagARMThumb = 0x800

	tlvEncRSA2048      = 0x30
	tlvEncEC256        = 0x32
	tlvEncX25519       = 0x33
	tlvEncX25519SHA512 = 0x34
	tlvDecompSize      = 0x70
	tlvCompDecSize     = 0x73

	eciesInfo = "MCUBoot_ECIES_v1"
)

// TLV is one TLV entry of an image.
type TLV struct {
	Type  uint16
	Value []byte
}

// Layout is what the header and TLV areas of a little-endian image say.
type Layout struct {
	HdrSize, ImgSize, ProtSize int
	Flags                      uint32
	Protected, Unprotected     []TLV
	End                        int // end of the unprotected TLV area
}

// Body is the image payload: after the header slot, ImgSize bytes.
func (l *Layout) Body(img []byte) []byte { return img[l.HdrSize : l.HdrSize+l.ImgSize] }

// Find returns the first TLV of type t in either area.
func (l *Layout) Find(t uint16) *TLV {
	for _, area := range [][]TLV{l.Protected, l.Unprotected} {
		for i := range area {
			if area[i].Type == t {
				return &area[i]
			}
		}
	}
	return nil
}

// Parse reads the header and both TLV areas, checking every length.
func Parse(img []byte) (*Layout, error) {
	if len(img) < headerSize || binary.LittleEndian.Uint32(img) != imageMagic {
		return nil, errors.New("not a little-endian MCUboot image: bad header magic")
	}
	le := binary.LittleEndian
	l := &Layout{
		HdrSize:  int(le.Uint16(img[8:])),
		ProtSize: int(le.Uint16(img[10:])),
		ImgSize:  int(le.Uint32(img[12:])),
		Flags:    le.Uint32(img[16:]),
	}
	if l.HdrSize < headerSize {
		return nil, fmt.Errorf("header size %d is below 32", l.HdrSize)
	}
	off := l.HdrSize + l.ImgSize // int is 64-bit: no overflow
	if off > len(img) {
		return nil, fmt.Errorf("image is truncated: body ends at %#x, file has %#x bytes", off, len(img))
	}
	var err error
	if l.ProtSize != 0 {
		if l.Protected, off, err = area(img, off, protMagic); err != nil {
			return nil, err
		}
		if off != l.HdrSize+l.ImgSize+l.ProtSize {
			return nil, errors.New("protected TLV area size disagrees with the header")
		}
	}
	if l.Unprotected, l.End, err = area(img, off, unprotMagic); err != nil {
		return nil, err
	}
	return l, nil
}

func area(img []byte, off int, magic uint16) ([]TLV, int, error) {
	le := binary.LittleEndian
	if off+4 > len(img) || le.Uint16(img[off:]) != magic {
		return nil, 0, fmt.Errorf("no TLV area with magic %#x at %#x", magic, off)
	}
	end := off + int(le.Uint16(img[off+2:]))
	if end > len(img) {
		return nil, 0, fmt.Errorf("TLV area at %#x runs past the end of the file", off)
	}
	var tlvs []TLV
	for p := off + 4; p < end; {
		if p+4 > end {
			return nil, 0, fmt.Errorf("TLV header at %#x runs past its area", p)
		}
		n := int(le.Uint16(img[p+2:]))
		if p+4+n > end {
			return nil, 0, fmt.Errorf("TLV at %#x runs past its area", p)
		}
		tlvs = append(tlvs, TLV{le.Uint16(img[p:]), img[p+4 : p+4+n]})
		p += 4 + n
	}
	return tlvs, end, nil
}

// Decrypt returns a copy of img whose body is decrypted with priv, the
// device's private key (*ecdsa.PrivateKey P-256, *ecdh.PrivateKey X25519 or
// *rsa.PrivateKey). Header and TLVs are unchanged, so the hash and
// signature verify on the result. A --clear image would be garbled: it is
// not encrypted although its flags say so.
func Decrypt(img []byte, priv crypto.PrivateKey) ([]byte, error) {
	l, err := Parse(img)
	if err != nil {
		return nil, err
	}
	key, err := ImageKey(l, priv)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(img)
	body := l.Body(out)
	ctr(key, body, body)
	return out, nil
}

// ImageKey recovers the image's AES key from its key TLV with priv.
func ImageKey(l *Layout, priv crypto.PrivateKey) ([]byte, error) {
	var keyLen int
	switch l.Flags & (flagAES128 | flagAES256) {
	case flagAES128:
		keyLen = 16
	case flagAES256:
		keyLen = 32
	default:
		return nil, fmt.Errorf("image flags %#x do not say AES-128 or AES-256 encrypted", l.Flags)
	}
	var found []TLV
	for _, t := range l.Unprotected {
		switch t.Type {
		case tlvEncRSA2048, tlvEncEC256, tlvEncX25519, tlvEncX25519SHA512:
			found = append(found, t)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("want exactly one encryption key TLV, found %d", len(found))
	}
	return UnwrapKey(found[0].Type, found[0].Value, priv, keyLen)
}

// UnwrapKey decrypts the AES key of keyLen bytes from a key TLV.
func UnwrapKey(typ uint16, v []byte, priv crypto.PrivateKey, keyLen int) ([]byte, error) {
	switch typ {
	case tlvEncRSA2048:
		k, ok := priv.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("ENCRSA2048 needs an RSA private key, not %T", priv)
		}
		key, err := rsa.DecryptOAEP(sha256.New(), nil, k, v, nil)
		if err != nil {
			return nil, fmt.Errorf("RSA-OAEP: %w", err)
		}
		if len(key) != keyLen {
			return nil, fmt.Errorf("RSA-OAEP gave a %d-byte key, the flags say %d", len(key), keyLen)
		}
		return key, nil
	case tlvEncEC256:
		k, ok := priv.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("ENCEC256 needs a P-256 private key, not %T", priv)
		}
		ek, err := k.ECDH()
		if err != nil {
			return nil, err
		}
		return eciesOpen(ek, 65, sha256.New, v, keyLen)
	case tlvEncX25519, tlvEncX25519SHA512:
		k, ok := priv.(*ecdh.PrivateKey)
		if !ok || k.Curve() != ecdh.X25519() {
			return nil, fmt.Errorf("ENCX25519 needs an X25519 private key, not %T", priv)
		}
		h := sha256.New
		if typ == tlvEncX25519SHA512 {
			h = sha512.New
		}
		return eciesOpen(k, 32, h, v, keyLen)
	}
	return nil, fmt.Errorf("TLV %#x is not an encryption key TLV", typ)
}

// eciesOpen: v = ephemeral public key (pubLen) || HMAC tag || AES-CTR(key).
func eciesOpen(priv *ecdh.PrivateKey, pubLen int, h func() hash.Hash, v []byte, keyLen int) ([]byte, error) {
	tagLen := h().Size()
	if len(v) != pubLen+tagLen+keyLen {
		return nil, fmt.Errorf("ECIES TLV has %d bytes, want %d", len(v), pubLen+tagLen+keyLen)
	}
	eph, err := priv.Curve().NewPublicKey(v[:pubLen])
	if err != nil {
		return nil, fmt.Errorf("ECIES ephemeral key: %w", err)
	}
	shared, err := priv.ECDH(eph)
	if err != nil {
		return nil, err
	}
	okm, err := hkdf.Key(h, shared, nil, eciesInfo, keyLen+tagLen)
	if err != nil {
		return nil, err
	}
	tag, sealed := v[pubLen:pubLen+tagLen], v[pubLen+tagLen:]
	mac := hmac.New(h, okm[keyLen:])
	mac.Write(sealed)
	if !hmac.Equal(mac.Sum(nil), tag) {
		return nil, errors.New("ECIES HMAC mismatch: wrong private key or corrupt TLV")
	}
	key := make([]byte, keyLen)
	ctr(okm[:keyLen], key, sealed)
	return key, nil
}

// ctr is AES-CTR with a zero IV, MCUboot's mode for the body and the key.
func ctr(key, dst, src []byte) {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // keys are 16 or 32 bytes here
	}
	cipher.NewCTR(b, make([]byte, aes.BlockSize)).XORKeyStream(dst, src)
}

// maxDecompressed bounds what Decompress produces, so fuzzed headers cannot
// ask for gigabytes.
const maxDecompressed = 64 << 20

// Decompress returns the uncompressed body of a (decrypted) --compression
// image: it checks MCUboot's 2-byte LZMA2 header, decodes the raw LZMA2
// stream, undoes the ARM-Thumb filter if flagged, and checks DECOMP_SIZE.
func Decompress(img []byte) ([]byte, error) {
	l, err := Parse(img)
	if err != nil {
		return nil, err
	}
	if l.Flags&flagLZMA2 == 0 {
		return nil, fmt.Errorf("image flags %#x are not LZMA2-compressed", l.Flags)
	}
	body := l.Body(img)
	if t := l.Find(tlvCompDecSize); t != nil { // encrypted: drop the AES padding
		if len(t.Value) != 4 || int(binary.LittleEndian.Uint32(t.Value)) > len(body) {
			return nil, errors.New("bad COMP_DEC_SIZE TLV")
		}
		body = body[:binary.LittleEndian.Uint32(t.Value)]
	}
	if len(body) < 2 || !bytes.Equal(body[:2], compress.Header()) {
		return nil, fmt.Errorf("compressed body does not start with the LZMA2 header % x", compress.Header())
	}
	size := l.Find(tlvDecompSize)
	if size == nil || len(size.Value) != 4 {
		return nil, errors.New("no 4-byte DECOMP_SIZE TLV")
	}
	want := int64(binary.LittleEndian.Uint32(size.Value))
	if want > maxDecompressed {
		return nil, fmt.Errorf("DECOMP_SIZE %d is too large", want)
	}
	r, err := lzma.Reader2Config{DictCap: compress.DictSize}.NewReader2(bytes.NewReader(body[2:]))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(r, want+1))
	if err != nil {
		return nil, fmt.Errorf("LZMA2: %w", err)
	}
	if int64(len(out)) != want {
		return nil, fmt.Errorf("DECOMP_SIZE says %d bytes, the stream holds more or fewer", want)
	}
	if l.Flags&flagARMThumb != 0 {
		compress.ARMThumbDecode(out)
	}
	return out, nil
}
