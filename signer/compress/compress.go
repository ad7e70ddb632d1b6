// Package compress produces the compressed image bodies of imgtool's
// --compression option: a raw LZMA2 stream (no .xz or .lzma container),
// optionally after the ARM-Thumb branch filter, with the fixed parameters
// MCUboot's decompressor is built for.
//
// The compressed bytes need not equal liblzma's; they decode with any raw
// LZMA2 decoder, e.g. xz --format=raw --lzma2=dict=128KiB,lc=3,lp=1,pb=2
// (with --armthumb before it for the filtered variant).
package compress

import (
	"bytes"
	"fmt"

	"github.com/ulikunitz/xz/lzma"
)

// imgtool's LZMA2 parameters (main.py comp_default_*). MCUboot reads them
// back from the 2-byte Header, but its decoder buffer is sized for these.
const (
	DictSize = 128 << 10
	LC       = 3
	LP       = 1
	PB       = 2
)

// Header is the 2 bytes MCUboot expects in front of the raw stream: the
// LZMA2 dictionary-size code and the lc/lp/pb properties byte.
func Header() []byte {
	return []byte{dictSizeCode(DictSize), byte((PB*5+LP)*9 + LC)}
}

// dictSizeCode is the smallest LZMA2 code whose dictionary, (2|(c&1)) <<
// (c/2+11), holds size bytes.
func dictSizeCode(size int) byte {
	for c := 0; c < 40; c++ {
		if size <= (2|c&1)<<(c/2+11) {
			return byte(c)
		}
	}
	return 40
}

// LZMA2 compresses data into a raw LZMA2 stream, ending with the
// end-of-stream marker. With armThumb the data first goes through the
// ARM-Thumb BCJ encoder, as xz's --armthumb filter does before LZMA2.
// data is not modified.
func LZMA2(data []byte, armThumb bool) ([]byte, error) {
	if armThumb {
		data = bytes.Clone(data)
		ARMThumbEncode(data)
	}
	var out bytes.Buffer
	w, err := lzma.Writer2Config{
		Properties: &lzma.Properties{LC: LC, LP: LP, PB: PB},
		DictCap:    DictSize,
	}.NewWriter2(&out)
	if err != nil {
		return nil, fmt.Errorf("LZMA2 encoder setup failed: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return nil, fmt.Errorf("LZMA2 compression failed: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("LZMA2 compression failed: %w", err)
	}
	return out.Bytes(), nil
}
