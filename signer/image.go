// Package signer builds, signs, verifies and inspects MCUboot images,
// byte-compatible with imgtool 2.4.0.
//
// It knows the image format and nothing else: no files, flags, sockets or
// tokens. Keys come in through the Key interface, so a PEM file, a PKCS#11
// token and the mcusignd daemon all sign through the same code.
// Backends live in subpackages (filekey, pkcs11key); this package must not
// import them.
package signer

import (
	"bytes"
	"context"
	"crypto"
	_ "crypto/sha256" // hash implementations used via crypto.Hash
	_ "crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
)

// FixedSignature is a signature made elsewhere (--fix-sig) with the public
// key that must verify it (--fix-sig-pubkey).
type FixedSignature struct {
	PublicKey crypto.PublicKey
	Signature []byte
}

// Image is the result of Build.
type Image struct {
	// Bytes is the image: header, body, protected and unprotected TLVs.
	// With Options.Vector it is the payload or digest to sign instead.
	Bytes     []byte
	Digest    []byte // hash of the signed region
	Signature []byte // nil when unsigned

	opts Options
}

// Build lays out an image from the application binary, signing it with key,
// or inserting fixed, or neither (an unsigned image). It follows imgtool's
// byte layout exactly.
func Build(ctx context.Context, app []byte, opts Options, key Key, fixed *FixedSignature) (*Image, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if key != nil && fixed != nil {
		return nil, errors.New("-k/--key and --fix-sig exclude each other: sign with a key, or insert a signature made elsewhere")
	}
	bo := byteOrder(opts.BigEndian)

	// Which public key (if any) decides the hash and goes into KEYHASH.
	var pub crypto.PublicKey
	private := false
	switch {
	case key != nil:
		pub, private = key.Public(), true
	case fixed != nil:
		pub = fixed.PublicKey
	}
	var kt KeyType
	if pub != nil {
		var err error
		if kt, err = TypeOf(pub); err != nil {
			return nil, err
		}
		if !kt.CanSign() {
			return nil, fmt.Errorf("an %s key cannot sign: X25519 keys only encrypt (-E); sign with an Ed25519 key", kt)
		}
	}
	hash, err := chooseHash(kt, private, opts.Hash, opts.Pure)
	if err != nil {
		return nil, err
	}

	var pubBytes, keyHash []byte
	if pub != nil {
		if pubBytes, err = PublicKeyBytes(pub); err != nil {
			return nil, err
		}
		keyHash = digest(hash, pubBytes)
	} else {
		keyHash = make([]byte, 32) // imgtool's signer id for unsigned images
	}

	// The body, with the header slot in front.
	hs := opts.HeaderSize
	var body []byte
	if opts.PadHeader {
		body = make([]byte, hs+len(app))
		fill(body[:hs], opts.erased())
		copy(body[hs:], app)
	} else {
		if len(app) < hs {
			return nil, fmt.Errorf("the input (%d bytes) is shorter than the %d-byte header slot; add --pad-header to prepend the header", len(app), hs)
		}
		if !allZero(app[:hs]) {
			return nil, fmt.Errorf("the input does not start with %#x zero bytes for the header: add --pad-header to prepend them, or build with room for the MCUboot header (CONFIG_ROM_START_OFFSET)", hs)
		}
		body = append([]byte(nil), app...)
	}
	imgSize := len(body) - hs
	if uint64(imgSize) > 0xffffffff {
		return nil, fmt.Errorf("image of %d bytes does not fit the header's 32-bit size field", imgSize)
	}

	prot := newTLVArea(TLVProtMagic, bo)
	if opts.SecurityCounter != nil {
		prot.addU32(TLVSecCnt, *opts.SecurityCounter)
	}
	if opts.BootRecord != "" {
		ver := fmt.Sprintf("%d.%d.%d", opts.Version.Major, opts.Version.Minor, opts.Version.Revision)
		prot.add(TLVBootRecord, bootRecord(opts.BootRecord, ver, hashName(hash), keyHash, make([]byte, hash.Size())))
	}
	for _, d := range opts.Dependencies {
		v := make([]byte, 12)
		v[0] = d.ImageID
		v[4], v[5] = d.Version.Major, d.Version.Minor
		bo.PutUint16(v[6:], d.Version.Revision)
		bo.PutUint32(v[8:], d.Version.Build)
		prot.add(TLVDependency, v)
	}
	if opts.VID != nil {
		prot.add(TLVUUIDVID, opts.VID)
	}
	if opts.CID != nil {
		prot.add(TLVUUIDCID, opts.CID)
	}
	for _, c := range opts.CustomTLVs {
		prot.addCustom(c.Type, c.Value)
	}
	protBytes, err := prot.bytes()
	if err != nil {
		return nil, err
	}

	var flags uint32
	if opts.LoadAddr != 0 {
		flags |= FlagRAMLoad
	}
	if opts.ROMFixed != 0 {
		flags |= FlagROMFixed
	}
	if opts.NonBootable {
		flags |= FlagNonBootable
	}
	load := opts.LoadAddr
	if opts.ROMFixed != 0 {
		load = opts.ROMFixed
	}
	hdr := body[:ImageHeaderSize]
	bo.PutUint32(hdr[0:], ImageMagic)
	bo.PutUint32(hdr[4:], load)
	bo.PutUint16(hdr[8:], uint16(hs))
	bo.PutUint16(hdr[10:], uint16(len(protBytes)))
	bo.PutUint32(hdr[12:], uint32(imgSize))
	bo.PutUint32(hdr[16:], flags)
	hdr[20], hdr[21] = opts.Version.Major, opts.Version.Minor
	bo.PutUint16(hdr[22:], opts.Version.Revision)
	bo.PutUint32(hdr[24:], opts.Version.Build)
	bo.PutUint32(hdr[28:], 0)

	region := append(body, protBytes...)
	sum := digest(hash, region)
	img := &Image{Digest: sum, opts: opts}

	unprot := newTLVArea(TLVInfoMagic, bo)
	unprot.add(hashTLV(hash), sum)
	if opts.Pure {
		unprot.add(TLVSigPure, []byte{1})
	}
	switch opts.Vector {
	case "payload":
		img.Bytes = region
		return img, nil
	case "digest":
		img.Bytes = sum
		return img, nil
	}

	if pub != nil {
		if opts.FullPublicKey {
			unprot.add(TLVPubKey, pubBytes)
		} else {
			unprot.add(TLVKeyHash, keyHash)
		}
		req := SignRequest{Payload: region, Digest: sum, Hash: hash, Pure: opts.Pure}
		var sig []byte
		if key != nil {
			if sig, err = key.Sign(ctx, req); err != nil {
				return nil, fmt.Errorf("signing failed: %w", err)
			}
		} else {
			sig = fixed.Signature
		}
		// A signature that does not verify makes an image that never boots;
		// imgtool accepts it silently, we refuse.
		if err := VerifySignature(pub, req, sig); err != nil {
			if key == nil {
				return nil, fmt.Errorf("the --fix-sig signature does not verify against --fix-sig-pubkey for this image: sign the %s digest (from --vector-to-sign digest with the same options) with the matching private key", hashName(hash))
			}
			return nil, fmt.Errorf("the key produced a signature that does not verify (%v); check the key and the HSM", err)
		}
		unprot.add(kt.SigTLV(), sig)
		img.Signature = sig
	}
	unprotBytes, err := unprot.bytes()
	if err != nil {
		return nil, err
	}
	img.Bytes = append(region, unprotBytes...)

	if opts.SlotSize > 0 {
		t := trailerSize(&opts)
		if len(img.Bytes)+t > opts.SlotSize {
			return nil, fmt.Errorf("image size (%#x) + trailer (%#x) exceeds the slot size %#x: enlarge the slot (-S) or shrink the image", len(img.Bytes), t, opts.SlotSize)
		}
	}
	return img, nil
}

// Padded returns the image as flashed into a slot: with --pad, --confirm or
// --test it is filled to the slot size and ends with the trailer; otherwise
// it is Bytes unchanged.
func (img *Image) Padded() []byte {
	o := &img.opts
	if !o.padded() {
		return img.Bytes
	}
	t := trailerSize(o)
	out := make([]byte, max(o.SlotSize, len(img.Bytes)+t))
	copy(out, img.Bytes)
	fill(out[len(img.Bytes):], o.erased())
	for _, p := range img.TrailerPatches() {
		copy(out[len(out)-o.SlotSize+p.Offset:], p.Data)
	}
	return out
}

// Patch is data at an offset from the start of the slot.
type Patch struct {
	Offset int
	Data   []byte
}

// TrailerPatches are the trailer bytes that differ from erased flash, as
// offsets into the slot. imgtool writes only these into HEX output.
func (img *Image) TrailerPatches() []Patch {
	o := &img.opts
	if !o.padded() {
		return nil
	}
	ma := o.maxAlign()
	var patches []Patch
	if (o.Test || o.Confirm) && !o.OverwriteOnly {
		flag := make([]byte, ma)
		fill(flag, o.erased())
		if o.Confirm {
			flag[0] = 1 // image_ok
		}
		patches = append(patches, Patch{o.SlotSize - alignUp(16, ma) - ma, flag})
	}
	return append(patches, Patch{o.SlotSize - 16, trailerMagic(o)})
}

func trailerMagic(o *Options) []byte {
	ma := o.maxAlign()
	if ma == 8 {
		return bootMagic
	}
	m := make([]byte, 2, 16)
	byteOrder(o.BigEndian).PutUint16(m, uint16(ma))
	return append(m, bootMagic2...)
}

// trailerSize is the space imgtool reserves at the end of the slot.
func trailerSize(o *Options) int {
	ma := o.maxAlign()
	magic := alignUp(16, ma)
	if o.OverwriteOnly {
		return 2*ma + magic
	}
	return o.maxSectors()*3*o.align() + 4*ma + magic
}

// chooseHash applies imgtool's table of hashes allowed per key type.
func chooseHash(kt KeyType, private bool, want crypto.Hash, pure bool) (crypto.Hash, error) {
	if pure {
		if want != 0 {
			return 0, errors.New("--pure always hashes with SHA-512; drop --sha")
		}
		if kt != Ed25519 {
			return 0, fmt.Errorf("--pure needs an Ed25519 key, not %s", orNone(kt))
		}
		return crypto.SHA512, nil
	}
	var allowed []crypto.Hash
	switch kt {
	case "":
		allowed = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}
	case RSA2048, RSA3072:
		allowed = []crypto.Hash{crypto.SHA256}
	case ECDSAP256:
		allowed = []crypto.Hash{crypto.SHA256}
		if !private { // imgtool allows it for --fix-sig-pubkey only
			allowed = append(allowed, crypto.SHA512)
		}
	case ECDSAP384:
		allowed = []crypto.Hash{crypto.SHA384}
	case Ed25519:
		allowed = []crypto.Hash{crypto.SHA256, crypto.SHA512}
	}
	if want == 0 {
		return allowed[0], nil
	}
	for _, h := range allowed {
		if h == want {
			return h, nil
		}
	}
	names := ""
	for i, h := range allowed {
		if i > 0 {
			names += " or "
		}
		names += hashName(h)[3:]
	}
	return 0, fmt.Errorf("a %s key cannot be used with --sha %s: use --sha %s", kt, hashName(want)[3:], names)
}

func orNone(kt KeyType) string {
	if kt == "" {
		return "no key"
	}
	return string(kt)
}

func hashName(h crypto.Hash) string {
	switch h {
	case crypto.SHA384:
		return "SHA384"
	case crypto.SHA512:
		return "SHA512"
	}
	return "SHA256"
}

func hashTLV(h crypto.Hash) uint16 {
	switch h {
	case crypto.SHA384:
		return TLVSHA384
	case crypto.SHA512:
		return TLVSHA512
	}
	return TLVSHA256
}

func digest(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}

// tlvArea accumulates one TLV area.
type tlvArea struct {
	magic uint16
	bo    order
	buf   bytes.Buffer
}

func newTLVArea(magic uint16, bo order) *tlvArea {
	return &tlvArea{magic: magic, bo: bo}
}

// add writes a standard TLV. imgtool packs its type as two bytes (type, 0)
// even in big-endian images; we reproduce that.
func (a *tlvArea) add(t uint16, v []byte) {
	a.buf.Write([]byte{byte(t), 0})
	a.buf.Write(a.bo.AppendUint16(nil, uint16(len(v))))
	a.buf.Write(v)
}

func (a *tlvArea) addCustom(t uint16, v []byte) {
	a.buf.Write(a.bo.AppendUint16(nil, t))
	a.buf.Write(a.bo.AppendUint16(nil, uint16(len(v))))
	a.buf.Write(v)
}

func (a *tlvArea) addU32(t uint16, x uint32) { a.add(t, a.bo.AppendUint32(nil, x)) }

// bytes returns the area with its info header, or nothing when it is empty
// (an empty protected area is omitted entirely).
func (a *tlvArea) bytes() ([]byte, error) {
	if a.buf.Len() == 0 {
		return nil, nil
	}
	tot := a.buf.Len() + tlvInfoSize
	if tot > 0xffff {
		return nil, fmt.Errorf("TLV area of %d bytes exceeds the 64 KiB MCUboot allows; shrink the custom TLVs", tot)
	}
	out := a.bo.AppendUint16(nil, a.magic)
	out = a.bo.AppendUint16(out, uint16(tot))
	return append(out, a.buf.Bytes()...), nil
}

// bootRecord is the CBOR measured-boot record imgtool writes: a map with
// integer keys in the fixed order 1, 4, 5, 6, 2 (measurement last, since the
// bootloader patches it).
func bootRecord(swType, version, hashName string, signerID, measurement []byte) []byte {
	var b []byte
	b = append(b, 0xa5)
	b = cborText(append(b, 0x01), swType)
	b = cborText(append(b, 0x04), version)
	b = cborBytes(append(b, 0x05), signerID)
	b = cborText(append(b, 0x06), hashName)
	b = cborBytes(append(b, 0x02), measurement)
	return b
}

func cborHead(b []byte, major byte, n int) []byte {
	switch {
	case n < 24:
		return append(b, major<<5|byte(n))
	case n < 0x100:
		return append(b, major<<5|24, byte(n))
	default:
		return append(b, major<<5|25, byte(n>>8), byte(n))
	}
}

func cborText(b []byte, s string) []byte  { return append(cborHead(b, 3, len(s)), s...) }
func cborBytes(b []byte, v []byte) []byte { return append(cborHead(b, 2, len(v)), v...) }

// order is a byte order that can both put and append.
type order interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

func byteOrder(big bool) order {
	if big {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
