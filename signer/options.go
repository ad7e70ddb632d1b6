package signer

import (
	"crypto"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Options are the image layout and metadata choices of `imgtool sign`.
// The zero value is not valid: HeaderSize and Version must be set.
type Options struct {
	Version    Version
	HeaderSize int  // -H; at least 32
	PadHeader  bool // prepend HeaderSize erased bytes instead of requiring a zeroed header slot
	SlotSize   int  // -S; 0 disables the size check

	Align      int // --align: 1, 2, 4, 8, 16 or 32; 0 means 1
	MaxAlign   int // --max-align: 8, 16 or 32; 0 means max(8, Align)
	MaxSectors int // -M; 0 means 128

	Pad           bool // pad to SlotSize and write the trailer magic
	Confirm       bool // --confirm: Pad, and mark image_ok
	Test          bool // --test: Pad (differs from Pad only in HEX output)
	OverwriteOnly bool
	ErasedZero    bool // -R 0: flash reads back 0x00 when erased, not 0xff
	BigEndian     bool // -e big, reproduced as imgtool writes it

	LoadAddr    uint32 // -L; sets RAM_LOAD
	ROMFixed    uint32 // -F; sets ROM_FIXED
	NonBootable bool

	SecurityCounter *uint32 // -s
	Dependencies    []Dependency
	BootRecord      string // --boot-record sw_type; "" for none
	VID, CID        []byte // 16-byte UUIDs (see ParseVID, ParseCID)
	CustomTLVs      []TLV  // in command-line order

	FullPublicKey bool        // --public-key-format full: PUBKEY instead of KEYHASH
	Hash          crypto.Hash // --sha; 0 means the key type's default
	Pure          bool        // Ed25519 over the image itself

	Vector string // --vector-to-sign: "", "payload" or "digest"

	Encrypt     *Encryption // -E and its options; nil for a plaintext image
	Compression Compression // --compression
}

// TLV is one type-length-value record.
type TLV struct {
	Type  uint16
	Value []byte
}

// Dependency is a DEPENDENCY TLV: the image with ImageID must be at least Version.
type Dependency struct {
	ImageID uint8
	Version Version
}

func (o *Options) align() int {
	if o.Align == 0 {
		return 1
	}
	return o.Align
}

func (o *Options) maxAlign() int {
	if o.MaxAlign != 0 {
		return o.MaxAlign
	}
	return max(8, o.align())
}

func (o *Options) maxSectors() int {
	if o.MaxSectors == 0 {
		return 128
	}
	return o.MaxSectors
}

func (o *Options) erased() byte {
	if o.ErasedZero {
		return 0
	}
	return 0xff
}

func (o *Options) padded() bool { return o.Pad || o.Confirm || o.Test }

func isOneOf(v int, set ...int) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

func (o *Options) validate() error {
	switch {
	case o.HeaderSize < ImageHeaderSize:
		return fmt.Errorf("header size %d is too small: MCUboot needs at least 32 bytes (-H 0x200 is usual); a Zephyr app must be built with CONFIG_BOOTLOADER_MCUBOOT=y to reserve it", o.HeaderSize)
	case o.HeaderSize > 0xffff:
		return fmt.Errorf("header size %#x does not fit the header's 16-bit field; use at most 0xffff", o.HeaderSize)
	case o.SlotSize < 0:
		return fmt.Errorf("slot size must not be negative")
	case !isOneOf(o.align(), 1, 2, 4, 8, 16, 32):
		return fmt.Errorf("invalid --align %d: use 1, 2, 4, 8, 16 or 32", o.Align)
	case o.MaxAlign != 0 && !isOneOf(o.MaxAlign, 8, 16, 32):
		return fmt.Errorf("invalid --max-align %d: use 8, 16 or 32", o.MaxAlign)
	case o.MaxSectors < 0:
		return fmt.Errorf("--max-sectors must be positive")
	case o.LoadAddr != 0 && o.ROMFixed != 0:
		return fmt.Errorf("--load-addr and --rom-fixed exclude each other: an image either runs from RAM or from a fixed flash address")
	case o.Vector != "" && o.Vector != "payload" && o.Vector != "digest":
		return fmt.Errorf("invalid --vector-to-sign %q: use payload or digest", o.Vector)
	case len(o.BootRecord) > 0 && len([]rune(o.BootRecord)) > 12:
		return fmt.Errorf("--boot-record %q is too long (%d characters): at most 12", o.BootRecord, len([]rune(o.BootRecord)))
	case o.VID != nil && len(o.VID) != 16, o.CID != nil && len(o.CID) != 16:
		return fmt.Errorf("--vid and --cid must be 16-byte UUIDs")
	case o.padded() && o.SlotSize == 0:
		return fmt.Errorf("--pad, --confirm and --test need the slot size: pass -S/--slot-size")
	case o.Compression != CompressNone && o.Compression != CompressLZMA2 && o.Compression != CompressLZMA2ARMThumb:
		return fmt.Errorf("invalid --compression %q: use lzma2 or lzma2armthumb", o.Compression)
	case o.Compression != CompressNone && o.Vector != "":
		return ErrCompressNeedsKey
	case o.Encrypt != nil && o.Encrypt.PublicKey == nil:
		return fmt.Errorf("encryption needs the device's public key: pass -E/--encrypt with its PEM file")
	}
	if o.Hash != 0 && o.Hash != crypto.SHA256 && o.Hash != crypto.SHA384 && o.Hash != crypto.SHA512 {
		return fmt.Errorf("unsupported hash %v: use --sha 256, 384 or 512", o.Hash)
	}
	seen := map[uint16]bool{}
	for _, t := range o.CustomTLVs {
		if err := checkCustomTLVType(t.Type); err != nil {
			return err
		}
		if seen[t.Type] {
			return fmt.Errorf("custom TLV %#x is given twice; each type may appear once", t.Type)
		}
		seen[t.Type] = true
	}
	return nil
}

func checkCustomTLVType(t uint16) error {
	if IsStandardTLV(t) {
		return fmt.Errorf("custom TLV %#x conflicts with the predefined %s TLV; pick a type in 0x00a0-0xfffe", t, TLVName(t))
	}
	if t < TLVVendorMin || t > TLVVendorMax {
		return fmt.Errorf("custom TLV type %#04x is out of range: use 0x00a0-0xfffe", t)
	}
	return nil
}

// ParseCustomTLV parses --custom-tlv TAG VALUE: a value starting with "0x" is
// hex bytes, anything else is the string's UTF-8 bytes (imgtool's rule).
func ParseCustomTLV(tag, value string) (TLV, error) {
	t, err := parseTLVTag(tag)
	if err != nil {
		return TLV{}, err
	}
	if strings.HasPrefix(value, "0x") {
		digits := value[2:]
		if len(digits)%2 != 0 {
			return TLV{}, fmt.Errorf("custom TLV %#x value %q has an odd number of hex digits; write whole bytes (e.g. 0x0123)", t, value)
		}
		b, err := hex.DecodeString(digits)
		if err != nil {
			return TLV{}, fmt.Errorf("custom TLV %#x value %q is not hex; drop the 0x prefix to store it as a string", t, value)
		}
		return TLV{t, b}, nil
	}
	return TLV{t, []byte(value)}, nil
}

func parseTLVTag(tag string) (uint16, error) {
	n, err := ParseInt(tag)
	if err != nil || n < 0 || n > 0xffff {
		return 0, fmt.Errorf("invalid custom TLV type %q: use a number in 0x00a0-0xfffe", tag)
	}
	if err := checkCustomTLVType(uint16(n)); err != nil {
		return 0, err
	}
	return uint16(n), nil
}

// ParseCustomTLVFile builds --custom-tlv-file TAG FILE from the file's bytes.
func ParseCustomTLVFile(tag string, data []byte) (TLV, error) {
	t, err := parseTLVTag(tag)
	if err != nil {
		return TLV{}, err
	}
	return TLV{t, data}, nil
}

var (
	depImageRE   = regexp.MustCompile(`\((\d+)`)
	depVersionRE = regexp.MustCompile(`,\s*([0-9.+]+)\)`)
)

// ParseDependencies parses -d "(<image id>,<version>), ..." with imgtool's rules.
func ParseDependencies(s string) ([]Dependency, error) {
	ids := depImageRE.FindAllStringSubmatch(s, -1)
	if len(ids) == 0 {
		return nil, fmt.Errorf("invalid dependencies %q: use \"(<image id>,<version>), ...\", e.g. \"(1,1.2.3+0)\"", s)
	}
	vers := depVersionRE.FindAllStringSubmatch(s, -1)
	if len(ids) != len(vers) {
		return nil, fmt.Errorf("invalid dependencies %q: %d image ids but %d versions; write each as (<image id>,<version>)", s, len(ids), len(vers))
	}
	deps := make([]Dependency, len(ids))
	for i := range ids {
		id, err := strconv.ParseUint(ids[i][1], 10, 8)
		if err != nil {
			return nil, fmt.Errorf("invalid dependency image id %s: use 0-255", ids[i][1])
		}
		v, err := ParseVersion(vers[i][1])
		if err != nil {
			return nil, fmt.Errorf("invalid dependency: %w", err)
		}
		deps[i] = Dependency{uint8(id), v}
	}
	return deps, nil
}

// ParseInt reads an integer the way Python's int(x, 0) does: decimal without
// leading zeros, or 0x/0o/0b prefixed, with optional underscores and sign.
func ParseInt(s string) (int64, error) {
	t := strings.TrimSpace(s)
	neg := false
	if strings.HasPrefix(t, "-") || strings.HasPrefix(t, "+") {
		neg = t[0] == '-'
		t = t[1:]
	}
	base := 10
	if len(t) > 1 && t[0] == '0' {
		switch t[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 10 {
			t = strings.TrimPrefix(t[2:], "_")
		}
	}
	if base == 10 && len(strings.TrimLeft(t, "0_")) != 0 && t[0] == '0' {
		t = "" // Python rejects 0123
	}
	if t == "" || strings.HasPrefix(t, "_") || strings.HasSuffix(t, "_") || strings.Contains(t, "__") {
		return 0, fmt.Errorf("%q is not a valid integer: use decimal or 0x/0o/0b prefixed numbers", s)
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(t, "_", ""), base, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a valid integer: use decimal or 0x/0o/0b prefixed numbers", s)
	}
	if neg {
		n = -n
	}
	return n, nil
}

var (
	dashedUUIDRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	rawUUIDRE    = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
	namespaceDNS = []byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
)

// ParseVID turns --vid into a UUID: a dashed or 32-hex-digit UUID as is, any
// other printable string as UUIDv5 in the DNS namespace.
func ParseVID(s string) ([]byte, error) { return parseUUID(namespaceDNS, s, "--vid") }

// ParseCID turns --cid into a UUID; a name is hashed in the namespace of the
// vendor UUID, so a name needs --vid.
func ParseCID(s string, vid []byte) ([]byte, error) { return parseUUID(vid, s, "--cid") }

func parseUUID(namespace []byte, s, flag string) ([]byte, error) {
	switch {
	case dashedUUIDRE.MatchString(s):
		return hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	case rawUUIDRE.MatchString(s):
		return hex.DecodeString(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return nil, fmt.Errorf("%s %q is neither a UUID nor a printable name", flag, s)
		}
	}
	if namespace == nil {
		return nil, fmt.Errorf("%s %q is a name, which is hashed in the vendor's namespace: pass --vid too, or give a UUID", flag, s)
	}
	h := sha1.New()
	h.Write(namespace)
	h.Write([]byte(s))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u, nil
}
