package signer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// shrinkImage keeps what dumpinfo looks at (header, TLVs, end of file) but
// cuts the payload to 64 bytes and the padding to 512, so that the fuzzer
// mutates small inputs.
func shrinkImage(img []byte) []byte {
	le := binary.LittleEndian
	hdr, size := int(le.Uint16(img[8:])), int(le.Uint32(img[12:]))
	tlvs := hdr + size
	end := tlvs + int(le.Uint16(img[10:]))
	if end+4 > len(img) {
		return img[:min(len(img), 4096)] // not parseable anyway
	}
	end += int(le.Uint16(img[end+2:]))
	if end > len(img) {
		return img[:min(len(img), 4096)]
	}
	out := append(bytes.Clone(img[:hdr]), img[hdr:hdr+min(size, 64)]...)
	le.PutUint32(out[12:], uint32(min(size, 64)))
	out = append(out, img[tlvs:end]...)
	if tail := len(img) - end; tail > 0 {
		out = append(out, img[len(img)-min(tail, 512):]...)
	}
	return out
}

func FuzzInspect(f *testing.F) {
	for _, rel := range []string{
		"signed/ed25519.bin", "signed/ecdsa-p256.bin", "variants/all-protected.bin", "variants/pad-confirm.bin",
		"variants/pad-align32.bin", "variants/pad-overwrite-only.bin", "variants/comp-lzma2.bin",
		"encrypted/ed25519-ecies-x25519-pad.bin", "encrypted/p256-ecies-p256-aes256.bin", "variants/big-endian.bin",
	} {
		img, err := os.ReadFile(filepath.Join(dumpVectors, rel))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(shrinkImage(img), filepath.Base(rel))
	}
	img, err := os.ReadFile(filepath.Join(dumpVectors, "signed/rsa-2048.bin"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(img, "rsa-2048.bin") // one full-size image
	edges, _ := filepath.Glob(filepath.Join("testdata", "dumpinfo", "edge-*.bin"))
	for _, e := range edges {
		img, err := os.ReadFile(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(img, "dir/"+filepath.Base(e)+" 'x': #1")
	}

	f.Fuzz(func(t *testing.T, data []byte, name string) {
		info, err := Inspect(data, name)
		if err != nil {
			if info != nil || strings.Contains(err.Error(), "\n") {
				t.Fatalf("bad error result: %v %q", info, err)
			}
			return
		}
		copied := 0
		for _, tl := range slices.Concat(info.ProtectedTLVs, info.TLVs) {
			copied += len(tl.Data)
			if len(tl.Data) != int(tl.Len) {
				t.Fatalf("TLV data %d bytes, len %d", len(tl.Data), tl.Len)
			}
		}
		if copied > len(data) {
			t.Fatalf("copied %d bytes of a %d-byte input", copied, len(data))
		}
		for _, format := range []string{FormatHuman, FormatYAML, FormatJSON} {
			var b bytes.Buffer
			if err := info.Write(&b, format, true); err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			out := b.Bytes()
			switch format {
			case FormatHuman:
				if !bytes.HasSuffix(out, []byte("#### End of Image  #########################################\n")) {
					t.Fatalf("human output ends with %q", out[max(len(out)-80, 0):])
				}
			case FormatYAML:
				if !utf8.Valid(out) || !bytes.HasSuffix(out, []byte("\n")) {
					t.Fatalf("bad YAML output")
				}
			case FormatJSON:
				var v struct {
					Filename string `json:"filename"`
				}
				if err := json.Unmarshal(out, &v); err != nil {
					t.Fatalf("invalid JSON: %v", err)
				}
				if base := pyBasename(name); utf8.ValidString(base) && v.Filename != base {
					t.Fatalf("JSON filename %q, want %q", v.Filename, base)
				}
			}
		}
	})
}
