package signer

// Image and TLV constants of the MCUboot image format (boot/bootutil/include/bootutil/image.h).
const (
	ImageMagic      = 0x96f3b83d
	ImageHeaderSize = 32
	TLVInfoMagic    = 0x6907 // unprotected TLV area
	TLVProtMagic    = 0x6908 // protected TLV area
	tlvInfoSize     = 4
	tlvHeaderSize   = 4

	// Custom (vendor) TLV types imgtool accepts with --custom-tlv.
	TLVVendorMin = 0x00a0
	TLVVendorMax = 0xfffe
)

// TLV types.
const (
	TLVKeyHash         = 0x01
	TLVPubKey          = 0x02
	TLVSHA256          = 0x10
	TLVSHA384          = 0x11
	TLVSHA512          = 0x12
	TLVRSA2048         = 0x20
	TLVECDSASig        = 0x22
	TLVRSA3072         = 0x23
	TLVEd25519         = 0x24
	TLVSigPure         = 0x25
	TLVEncRSA2048      = 0x30
	TLVEncKW           = 0x31
	TLVEncEC256        = 0x32
	TLVEncX25519       = 0x33
	TLVEncX25519SHA512 = 0x34
	TLVDependency      = 0x40
	TLVSecCnt          = 0x50
	TLVBootRecord      = 0x60
	TLVDecompSize      = 0x70
	TLVDecompSHA       = 0x71
	TLVDecompSignature = 0x72
	TLVCompDecSize     = 0x73
	TLVUUIDVID         = 0x74
	TLVUUIDCID         = 0x75
)

// tlvNames are imgtool's names for the standard TLV types, in its table order.
var tlvNames = []struct {
	Name string
	Type uint16
}{
	{"KEYHASH", TLVKeyHash},
	{"PUBKEY", TLVPubKey},
	{"SHA256", TLVSHA256},
	{"SHA384", TLVSHA384},
	{"SHA512", TLVSHA512},
	{"RSA2048", TLVRSA2048},
	{"ECDSASIG", TLVECDSASig},
	{"RSA3072", TLVRSA3072},
	{"ED25519", TLVEd25519},
	{"SIG_PURE", TLVSigPure},
	{"ENCRSA2048", TLVEncRSA2048},
	{"ENCKW", TLVEncKW},
	{"ENCEC256", TLVEncEC256},
	{"ENCX25519", TLVEncX25519},
	{"ENCX25519_SHA512", TLVEncX25519SHA512},
	{"DEPENDENCY", TLVDependency},
	{"SEC_CNT", TLVSecCnt},
	{"BOOT_RECORD", TLVBootRecord},
	{"DECOMP_SIZE", TLVDecompSize},
	{"DECOMP_SHA", TLVDecompSHA},
	{"DECOMP_SIGNATURE", TLVDecompSignature},
	{"COMP_DEC_SIZE", TLVCompDecSize},
	{"UUID_VID", TLVUUIDVID},
	{"UUID_CID", TLVUUIDCID},
}

// TLVName returns imgtool's name for a TLV type, or "UNKNOWN".
func TLVName(t uint16) string {
	for _, n := range tlvNames {
		if n.Type == t {
			return n.Name
		}
	}
	return "UNKNOWN"
}

// IsStandardTLV reports whether t is one of the predefined TLV types, which
// --custom-tlv must not reuse.
func IsStandardTLV(t uint16) bool { return TLVName(t) != "UNKNOWN" }

// Header flags.
const (
	FlagPIC                = 0x01
	FlagEncryptedAES128    = 0x04
	FlagEncryptedAES256    = 0x08
	FlagNonBootable        = 0x10
	FlagRAMLoad            = 0x20
	FlagROMFixed           = 0x100
	FlagCompressedLZMA1    = 0x200
	FlagCompressedLZMA2    = 0x400
	FlagCompressedARMThumb = 0x800
)

// flagNames are imgtool's names for the header flags, in its table order.
var flagNames = []struct {
	Name string
	Flag uint32
}{
	{"PIC", FlagPIC},
	{"ENCRYPTED_AES128", FlagEncryptedAES128},
	{"ENCRYPTED_AES256", FlagEncryptedAES256},
	{"NON_BOOTABLE", FlagNonBootable},
	{"RAM_LOAD", FlagRAMLoad},
	{"ROM_FIXED", FlagROMFixed},
	{"COMPRESSED_LZMA1", FlagCompressedLZMA1},
	{"COMPRESSED_LZMA2", FlagCompressedLZMA2},
	{"COMPRESSED_ARM_THUMB", FlagCompressedARMThumb},
}

// Trailer magics: the classic one for max_align 8, and the one prefixed with
// the alignment for 16 and 32.
var (
	bootMagic  = []byte{0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80}
	bootMagic2 = []byte{0x2d, 0xe1, 0x5d, 0x29, 0x41, 0x0b, 0x8d, 0x77, 0x67, 0x9c, 0x11, 0x0f, 0x1f, 0x8a}
)
