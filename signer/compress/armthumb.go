package compress

// The ARM-Thumb BCJ filter (xz's --armthumb). A Thumb BL instruction is two
// little-endian halfwords, 11110xxx xxxxxxxx then 11111xxx xxxxxxxx, holding
// a 22-bit branch offset in halfwords. Calls to the same function from
// different places have different relative offsets but the same absolute
// target, so the encoder rewrites offsets to targets before LZMA2 sees them
// and the decoder rewrites them back. Positions count from the start of the
// stream (xz's default start offset 0), in steps of 2 bytes; a converted
// instruction is skipped as a whole.

// ARMThumbEncode converts the BL offsets in b to absolute targets, in place.
func ARMThumbEncode(b []byte) { armThumb(b, true) }

// ARMThumbDecode undoes ARMThumbEncode, in place.
func ARMThumbDecode(b []byte) { armThumb(b, false) }

func armThumb(b []byte, encode bool) {
	for i := 0; i+4 <= len(b); i += 2 {
		if b[i+1]&0xf8 != 0xf0 || b[i+3]&0xf8 != 0xf8 {
			continue
		}
		v := uint32(b[i+1]&7)<<19 | uint32(b[i])<<11 | uint32(b[i+3]&7)<<8 | uint32(b[i+2])
		v <<= 1 // halfwords to bytes
		pc := uint32(i) + 4
		if encode {
			v += pc
		} else {
			v -= pc
		}
		v >>= 1
		b[i+1] = 0xf0 | byte(v>>19)&7
		b[i] = byte(v >> 11)
		b[i+3] = 0xf8 | byte(v>>8)&7
		b[i+2] = byte(v)
		i += 2
	}
}
