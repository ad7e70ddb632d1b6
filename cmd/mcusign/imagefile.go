package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
