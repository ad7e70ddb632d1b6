package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/ihex"
)

// isHex is imgtool's rule: a .hex extension (any case) means Intel HEX.
func isHex(path string) bool { return strings.EqualFold(filepath.Ext(path), ".hex") }

// readImage reads a binary or Intel HEX file. base is the lowest address of
// a HEX file, nil for binaries.
func readImage(path string) (data []byte, base *uint32, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, usagef("input file %s not found", path)
		}
		return nil, nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if !isHex(path) {
		return raw, nil, nil
	}
	data, b, err := ihex.Read(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, &b, nil
}

// readApp reads a binary input file into an App laid out for opts: the one
// buffer its image is built in, with no copy in between. alloc, if not
// nil, provides that buffer (zeroed, of the size asked for) and the reader
// of f that fills it, or nil for ordinary memory.
func readApp(path string, opts signer.Options, alloc func(size int, f *os.File) ([]byte, io.Reader)) (*signer.App, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, usagef("input file %s not found", path)
		}
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if !st.Mode().IsRegular() { // a pipe, a device: its size is unknown
		raw, err := io.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", path, err)
		}
		a := signer.NewApp(len(raw), opts)
		copy(a.Bytes(), raw)
		return a, nil
	}
	var mem []byte
	var r io.Reader = f
	if alloc != nil && st.Size() <= 1<<40 {
		mem, r = alloc(signer.AppSize(int(st.Size()), opts), f)
	}
	a, err := signer.ReadAppInto(mem, r, st.Size(), opts)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	return a, nil
}
