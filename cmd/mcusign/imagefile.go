package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcusign/mcusign/plugin/fdpass"
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
// buffer its image is built in, with no copy in between. With toDaemon,
// that buffer is a memory file (the kernel copies the input in) that a
// daemon's key passes as it is, sealed (plugin.WithRegionBuffer); the
// caller closes it when done with the image. Where there is no memory
// file to be had, region is nil and the App is in ordinary memory.
func readApp(path string, opts signer.Options, toDaemon bool) (app *signer.App, region *fdpass.Buffer, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, usagef("input file %s not found", path)
		}
		return nil, nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if !st.Mode().IsRegular() { // a pipe, a device: its size is unknown
		raw, err := io.ReadAll(f)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read %s: %w", path, err)
		}
		a := signer.NewApp(len(raw), opts)
		copy(a.Bytes(), raw)
		return a, nil, nil
	}
	var mem []byte
	var r io.Reader = f
	if toDaemon && st.Size() <= 1<<40 {
		if region, err = fdpass.NewBuffer("mcusign-image", signer.AppSize(int(st.Size()), opts)); err == nil {
			mem, r = region.Bytes(), region.Reader(f)
		} // else: ordinary memory, and a copy when signing
	}
	if app, err = signer.ReadAppInto(mem, r, st.Size(), opts); err != nil {
		region.Close()
		return nil, nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	return app, region, nil
}
