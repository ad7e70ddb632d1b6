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
	"io"
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
	Digest    []byte // hash of the signed region (of the plaintext when encrypted)
	Signature []byte // nil when unsigned

	// Compression reports what --compression did; nil without it.
	Compression *CompressionResult

	opts      Options
	encTLVLen int // length of the encryption key TLV; sizes the trailer with --save-enctlv
}

// Build lays out an image from the application binary, signing it with key,
// or inserting fixed, or neither (an unsigned image). It follows imgtool's
// byte layout exactly. With Options.Compression the key signs twice: the
// uncompressed image, whose signature the compressed one carries, and the
// compressed image. app is not modified; Build works on one copy of it
// (BuildApp works on none).
func Build(ctx context.Context, app []byte, opts Options, key Key, fixed *FixedSignature) (*Image, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	a := NewApp(len(app), opts)
	copy(a.Bytes(), app)
	return BuildApp(ctx, a, opts, key, fixed)
}

// prepare checks the options and the key for one build.
func prepare(opts *Options, key Key, fixed *FixedSignature) (*signing, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if key != nil && fixed != nil {
		return nil, errors.New("-k/--key and --fix-sig exclude each other: sign with a key, or insert a signature made elsewhere")
	}
	if fixed != nil && opts.Compression != CompressNone {
		return nil, ErrCompressNeedsKey
	}
	return newSigning(opts, key, fixed)
}

// ErrCompressNeedsKey refuses --compression with external signing: imgtool
// reuses the one --fix-sig signature for both images, so one never verifies.
var ErrCompressNeedsKey = errors.New("--compression needs the signing key (-k): a compressed image carries two signatures, of the uncompressed and of the compressed image, so --vector-to-sign/--fix-sig cannot make one")

// signing is what the key decides for every image built with it.
type signing struct {
	key      Key
	fixed    *FixedSignature
	pub      crypto.PublicKey // nil when unsigned
	kt       KeyType
	hash     crypto.Hash
	pubBytes []byte
	keyHash  []byte // KEYHASH, and the boot record's signer id
}

func newSigning(opts *Options, key Key, fixed *FixedSignature) (*signing, error) {
	s := &signing{key: key, fixed: fixed}
	// Which public key (if any) decides the hash and goes into KEYHASH.
	private := false
	switch {
	case key != nil:
		s.pub, private = key.Public(), true
	case fixed != nil:
		s.pub = fixed.PublicKey
	}
	if s.pub != nil {
		var err error
		if s.kt, err = TypeOf(s.pub); err != nil {
			return nil, err
		}
		if !s.kt.CanSign() {
			return nil, fmt.Errorf("an %s key cannot sign: X25519 keys only encrypt (-E); sign with an Ed25519 key", s.kt)
		}
	}
	if opts.Encrypt != nil {
		signing := KeyType("")
		if key != nil { // imgtool pairs -E with -k only, not with --fix-sig-pubkey
			signing = s.kt
		}
		if err := opts.Encrypt.check(signing); err != nil {
			return nil, err
		}
	}
	var err error
	if s.hash, err = chooseHash(s.kt, private, opts.Hash, opts.Pure); err != nil {
		return nil, err
	}
	if s.pub != nil {
		if s.pubBytes, err = PublicKeyBytes(s.pub); err != nil {
			return nil, err
		}
		s.keyHash = digest(s.hash, s.pubBytes)
	} else {
		s.keyHash = make([]byte, 32) // imgtool's signer id for unsigned images
	}
	return s, nil
}

// buildPass is what differs between the images one Build may make.
type buildPass struct {
	compTLVs  []TLV  // DECOMP_SIZE/SHA/SIGNATURE, COMP_DEC_SIZE: protected, after the dependencies
	compFlags uint32 // COMPRESSED_* header flags
	// encrypt pads, encrypts and adds the key TLV. The uncompressed first
	// image of a compressed build has only the flags, as imgtool makes it.
	encrypt bool
	// inPlace builds the image in body itself (and its spare capacity),
	// which the image then shares.
	inPlace bool
}

// assemble builds one image from body (header slot + payload); body is not
// modified unless p.inPlace.
func (s *signing) assemble(ctx context.Context, body []byte, opts Options, p buildPass) (*Image, error) {
	bo := byteOrder(opts.BigEndian)
	hs, hash, enc := opts.HeaderSize, s.hash, opts.Encrypt
	encrypt := enc != nil && p.encrypt

	buf := body
	if !p.inPlace {
		buf = make([]byte, len(body), len(body)+tailRoom(&opts))
		copy(buf, body)
	}
	if encrypt && len(buf)%16 != 0 {
		// imgtool pads header slot + body to whole AES blocks, also with
		// --clear; the padding is part of the image and its hash.
		buf = append(buf, make([]byte, 16-len(buf)%16)...)
	}
	imgSize := len(buf) - hs
	if uint64(imgSize) > 0xffffffff {
		return nil, fmt.Errorf("image of %d bytes does not fit the header's 32-bit size field", imgSize)
	}

	prot := newTLVArea(TLVProtMagic, bo)
	if opts.SecurityCounter != nil {
		prot.addU32(TLVSecCnt, *opts.SecurityCounter)
	}
	if opts.BootRecord != "" {
		ver := fmt.Sprintf("%d.%d.%d", opts.Version.Major, opts.Version.Minor, opts.Version.Revision)
		prot.add(TLVBootRecord, bootRecord(opts.BootRecord, ver, hashName(hash), s.keyHash, make([]byte, hash.Size())))
	}
	for _, d := range opts.Dependencies {
		v := make([]byte, 12)
		v[0] = d.ImageID
		v[4], v[5] = d.Version.Major, d.Version.Minor
		bo.PutUint16(v[6:], d.Version.Revision)
		bo.PutUint32(v[8:], d.Version.Build)
		prot.add(TLVDependency, v)
	}
	for _, t := range p.compTLVs {
		prot.add(t.Type, t.Value)
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

	flags := p.compFlags
	if enc != nil {
		flags |= enc.flag()
	}
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
	hdr := buf[:ImageHeaderSize]
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

	region := append(buf, protBytes...)
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

	if s.pub != nil {
		sig, err := s.sign(ctx, SignRequest{Payload: region, Digest: sum, Hash: hash, Pure: opts.Pure})
		if err != nil {
			return nil, err
		}
		if opts.FullPublicKey {
			unprot.add(TLVPubKey, s.pubBytes)
		} else {
			unprot.add(TLVKeyHash, s.keyHash)
		}
		unprot.add(s.kt.SigTLV(), sig)
		img.Signature = sig
	}
	if encrypt {
		// The hash and signature cover the plaintext; only the body (with
		// its padding) is encrypted, header and TLVs stay readable.
		aesKey, keyTLV, err := enc.seal()
		if err != nil {
			return nil, err
		}
		unprot.add(enc.tlvType(), keyTLV)
		img.encTLVLen = len(keyTLV)
		if !enc.Clear {
			body := region[hs : hs+imgSize]
			if err := aesCTR(aesKey, body, body); err != nil {
				return nil, err
			}
		}
	}
	unprotBytes, err := unprot.bytes()
	if err != nil {
		return nil, err
	}
	img.Bytes = append(region, unprotBytes...)

	if opts.SlotSize > 0 {
		t := trailerSize(&opts, img.encTLVLen)
		if len(img.Bytes)+t > opts.SlotSize {
			return nil, fmt.Errorf("image size (%#x) + trailer (%#x) exceeds the slot size %#x: enlarge the slot (-S) or shrink the image", len(img.Bytes), t, opts.SlotSize)
		}
	}
	return img, nil
}

// sign signs req with the key, or checks the fixed signature.
func (s *signing) sign(ctx context.Context, req SignRequest) ([]byte, error) {
	var sig []byte
	if s.key != nil {
		var err error
		if sig, err = s.key.Sign(ctx, req); err != nil {
			return nil, fmt.Errorf("signing failed: %w", err)
		}
	} else {
		sig = s.fixed.Signature
	}
	// A signature that does not verify makes an image that never boots;
	// imgtool accepts it silently, we refuse.
	if err := VerifySignature(s.pub, req, sig); err != nil {
		if s.key == nil {
			return nil, fmt.Errorf("the --fix-sig signature does not verify against --fix-sig-pubkey for this image: sign the %s digest (from --vector-to-sign digest with the same options) with the matching private key", hashName(req.Hash))
		}
		return nil, fmt.Errorf("the key produced a signature that does not verify (%v); check the key and the HSM", err)
	}
	return sig, nil
}

// Size is the length of the image as flashed into a slot (WriteTo,
// Padded): the slot size with --pad, --confirm or --test, else len(Bytes).
func (img *Image) Size() int {
	o := &img.opts
	if !o.padded() {
		return len(img.Bytes)
	}
	return max(o.SlotSize, len(img.Bytes)+trailerSize(o, img.encTLVLen))
}

// Padded returns the image as flashed into a slot: with --pad, --confirm or
// --test it is filled to the slot size and ends with the trailer; otherwise
// it is Bytes unchanged. WriteTo writes the same without making it.
func (img *Image) Padded() []byte {
	if !img.opts.padded() {
		return img.Bytes
	}
	var b bytes.Buffer
	b.Grow(img.Size())
	_, _ = img.WriteTo(&b)
	return b.Bytes()
}

// WriteTo writes the image as flashed into a slot (what Padded returns),
// streaming the erased fill instead of making a slot-sized copy.
func (img *Image) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(img.Bytes)
	written := int64(n)
	if err != nil || !img.opts.padded() {
		return written, err
	}
	o := &img.opts
	// The trailer patches lie in the slot's last bytes; everything between
	// the image and the first patch is erased flash.
	patches := img.TrailerPatches()
	first := o.SlotSize
	for _, p := range patches {
		first = min(first, p.Offset)
	}
	tail := make([]byte, o.SlotSize-first)
	fill(tail, o.erased())
	for _, p := range patches {
		copy(tail[p.Offset-first:], p.Data)
	}
	gap := int64(img.Size() - len(img.Bytes) - len(tail))
	if gap < 0 { // Build refuses images that leave no room for the trailer
		return written, fmt.Errorf("the image (%#x bytes) overlaps its trailer in the %#x-byte slot", len(img.Bytes), o.SlotSize)
	}
	if gap > 0 {
		chunk := make([]byte, min(gap, 256<<10))
		fill(chunk, o.erased())
		for gap > 0 {
			n, err := w.Write(chunk[:min(gap, int64(len(chunk)))])
			written += int64(n)
			gap -= int64(n)
			if err != nil {
				return written, err
			}
		}
	}
	n, err = w.Write(tail)
	return written + int64(n), err
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

// trailerSize is the space imgtool reserves at the end of the slot. With
// encryption it includes the two slots' keys; encTLVLen is the key TLV's
// length, which sizes them with --save-enctlv (0 in the uncompressed first
// image of a compressed build, as in imgtool).
func trailerSize(o *Options, encTLVLen int) int {
	ma := o.maxAlign()
	magic := alignUp(16, ma)
	if o.OverwriteOnly {
		return 2*ma + magic
	}
	t := o.maxSectors()*3*o.align() + 4*ma + magic
	if e := o.Encrypt; e != nil {
		n := 16 // imgtool reserves 16 bytes per key even for AES-256
		if e.SaveEncTLV {
			n = encTLVLen
		}
		t += 2 * alignUp(n, ma)
	}
	return t
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
