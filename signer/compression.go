package signer

import (
	"context"

	"github.com/mcusign/mcusign/signer/compress"
)

// Compression is --compression: MCUboot decompresses the image body while
// installing it, so the slot for updates can be smaller.
type Compression string

// The --compression choices.
const (
	CompressNone          Compression = ""
	CompressLZMA2         Compression = "lzma2"
	CompressLZMA2ARMThumb Compression = "lzma2armthumb" // ARM-Thumb branch filter, then LZMA2
)

// CompressionResult is what a --compression attempt did; imgtool prints
// both sizes.
type CompressionResult struct {
	CompressedSize int  // the LZMA2 stream, without MCUboot's 2-byte header
	OriginalSize   int  // the uncompressed body
	Used           bool // false: compressing did not pay, the image is uncompressed
}

// buildCompressed follows imgtool: build and sign the uncompressed image,
// compress its body, and if that is smaller than the body even with the
// DECOMP_* TLVs, build and sign the compressed image carrying the
// uncompressed image's size, hash and signature. Otherwise the uncompressed
// image is the result.
func (s *signing) buildCompressed(ctx context.Context, body []byte, opts Options) (*Image, error) {
	// Like imgtool's, this first image has the encryption flags but is
	// neither padded nor encrypted; its hash and signature are what the
	// bootloader checks after decompressing.
	plain, err := s.assemble(ctx, body, opts, buildPass{})
	if err != nil {
		return nil, err
	}
	hs := opts.HeaderSize
	app := body[hs:]
	armThumb := opts.Compression == CompressLZMA2ARMThumb
	stream, err := compress.LZMA2(app, armThumb)
	if err != nil {
		return nil, err
	}
	res := &CompressionResult{CompressedSize: len(stream), OriginalSize: len(app)}

	bo := byteOrder(opts.BigEndian)
	tlvs := []TLV{
		{TLVDecompSize, bo.AppendUint32(nil, uint32(len(app)))},
		{TLVDecompSHA, plain.Digest},
	}
	overhead := 4 + len(plain.Digest)
	if plain.Signature != nil {
		tlvs = append(tlvs, TLV{TLVDecompSignature, plain.Signature})
		overhead += len(plain.Signature)
	}

	if len(stream)+overhead >= len(app) {
		img := plain
		if opts.Encrypt != nil {
			// imgtool would keep the first image: encryption flags but a
			// plaintext body and no key TLV, which no bootloader accepts.
			// Fall back to the real uncompressed encrypted image instead.
			if img, err = s.assemble(ctx, body, opts, buildPass{encrypt: true}); err != nil {
				return nil, err
			}
		}
		img.Compression = res
		return img, nil
	}
	res.Used = true

	// The new body: header slot (filled as for the uncompressed image),
	// MCUboot's LZMA2 header, the raw stream.
	cbody := make([]byte, hs, hs+2+len(stream))
	if opts.PadHeader {
		fill(cbody, opts.erased())
	}
	cbody = append(append(cbody, compress.Header()...), stream...)
	if opts.Encrypt != nil {
		// The length to decompress after decryption, without AES padding.
		tlvs = append(tlvs, TLV{TLVCompDecSize, bo.AppendUint32(nil, uint32(len(cbody)-hs))})
	}
	flags := uint32(FlagCompressedLZMA2)
	if armThumb {
		flags |= FlagCompressedARMThumb
	}
	// imgtool makes the compressed image without --test, which only
	// changes HEX output (no image_ok block); --pad remains.
	co := opts
	co.Pad, co.Test = opts.padded(), false
	img, err := s.assemble(ctx, cbody, co, buildPass{compTLVs: tlvs, compFlags: flags, encrypt: true})
	if err != nil {
		return nil, err
	}
	img.Compression = res
	return img, nil
}
