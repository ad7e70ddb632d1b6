package audit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// LineError names the line where verification failed.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: line %d: %s", e.File, e.Line, e.Msg)
}

// Verifier checks one chain, which may span several files (a log and its
// rotated predecessors, oldest first).
type Verifier struct {
	// Continued accepts a first record that continues an earlier file
	// (after log rotation) instead of starting from Genesis.
	Continued bool

	records  int
	started  bool
	prevSeq  uint64
	prevHash string
}

// Summary is what a successful verification saw.
type Summary struct {
	Records  int
	LastSeq  uint64
	LastHash string
}

// Summary reports the records checked so far.
func (v *Verifier) Summary() Summary {
	return Summary{Records: v.records, LastSeq: v.prevSeq, LastHash: v.prevHash}
}

// File checks the records read from r, continuing the chain of the files
// checked before. name is used in errors.
func (v *Verifier) File(name string, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		b, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return &LineError{name, line, fmt.Sprintf("line longer than %d bytes; this is not an mcusignd audit log", br.Size())}
		}
		if err == io.EOF {
			if len(b) > 0 {
				return &LineError{name, line, "incomplete last line (no newline): a write was interrupted or the file was cut"}
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if err := v.check(bytes.TrimSuffix(b, []byte("\n"))); err != nil {
			return &LineError{name, line, err.Error()}
		}
	}
}

func (v *Verifier) check(line []byte) error {
	if len(line) == 0 {
		return fmt.Errorf("empty line: lines were edited")
	}
	r, h, err := decode(line)
	if err != nil {
		return err
	}
	switch {
	case !v.started && r.Prev == Genesis && r.Seq != 1:
		return fmt.Errorf("the chain starts at seq %d, not 1: the record was altered", r.Seq)
	case !v.started && r.Prev != Genesis && !v.Continued:
		return fmt.Errorf("hash chain broken: the first record (seq %d) follows an earlier one: records were removed from the start, or this file continues a rotated log (verify it after that file, or pass --continued)", r.Seq)
	case v.started && r.Prev != v.prevHash:
		return fmt.Errorf("hash chain broken: prev does not match the record before (seq %d); a line was edited, removed, inserted or reordered", v.prevSeq)
	case v.started && r.Seq != v.prevSeq+1:
		return fmt.Errorf("seq %d follows seq %d: a line was removed, inserted or reordered", r.Seq, v.prevSeq)
	}
	v.started = true
	v.records++
	v.prevSeq, v.prevHash = r.Seq, h
	return nil
}
