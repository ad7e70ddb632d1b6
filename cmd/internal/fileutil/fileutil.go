// Package fileutil writes output files so that a reader never sees a
// half-written file and a failed command leaves nothing behind.
package fileutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Pending is an output file written to a temporary name beside its target;
// Commit renames it into place, Abort removes it.
type Pending struct {
	tmp, path string
}

// Stage writes data to a temporary file in path's directory and syncs it.
func Stage(path string, data []byte, perm os.FileMode) (*Pending, error) {
	return StageFrom(path, bytes.NewReader(data), perm)
}

// StageFrom is Stage with the content written by src, so that a large
// output need not exist in memory as one slice.
func StageFrom(path string, src io.WriterTo, perm os.FileMode) (*Pending, error) {
	// Checked first: the rename would fail only after the whole output
	// was written, and with a message naming the temporary file.
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("cannot write %s: it is a directory; name the file to write", path)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("cannot write %s: directory %s does not exist; create it first", path, dir)
		}
		return nil, fmt.Errorf("cannot write %s: %w", path, unwrapPath(err))
	}
	p := &Pending{tmp: f.Name(), path: path}
	_, err = src.WriteTo(f)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		p.Abort()
		return nil, fmt.Errorf("cannot write %s: %w", path, unwrapPath(err))
	}
	return p, nil
}

// Commit moves the file into place.
func (p *Pending) Commit() error {
	if err := os.Rename(p.tmp, p.path); err != nil {
		p.Abort()
		return fmt.Errorf("cannot write %s: %w", p.path, unwrapPath(err))
	}
	return nil
}

// Abort removes the temporary file.
func (p *Pending) Abort() { os.Remove(p.tmp) }

// WriteAll stages every file, then commits them all, so that either all
// outputs appear or none does.
func WriteAll(files map[string][]byte, perm os.FileMode) error {
	srcs := make(map[string]io.WriterTo, len(files))
	for path, data := range files {
		srcs[path] = bytes.NewReader(data)
	}
	return WriteAllFrom(srcs, perm)
}

// WriteAllFrom is WriteAll with each file's content written by its
// io.WriterTo.
func WriteAllFrom(files map[string]io.WriterTo, perm os.FileMode) error {
	var staged []*Pending
	abort := func() {
		for _, p := range staged {
			p.Abort()
		}
	}
	for path, src := range files {
		p, err := StageFrom(path, src, perm)
		if err != nil {
			abort()
			return err
		}
		staged = append(staged, p)
	}
	for i, p := range staged {
		if err := p.Commit(); err != nil {
			for _, q := range staged[i+1:] {
				q.Abort()
			}
			return err
		}
	}
	return nil
}

// WriteFile writes one file atomically.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteAll(map[string][]byte{path: data}, perm)
}

// unwrapPath drops the temporary name from *PathError and *LinkError
// messages so errors name the file the user asked for.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
