// Package audit owns mcusignd's audit trail: an append-only file of JSON
// lines, one per request, chained by hashes so that any edited, removed or
// reordered line is detected by Verify.
//
// Each line is a JSON object whose last member is "hash": the hex SHA-256
// of the line's own JSON without that member. Every record's "prev" is the
// previous record's hash (Genesis for the first record of a chain), and its
// "seq" is one more than the previous record's. A record is written with one
// write(2) on an O_APPEND file under an exclusive flock (together with the
// records of concurrent requests: group commit), and fsynced before Append
// returns, so several processes can share a log and a caller that waits
// for Append knows the record is on disk.
//
// The chain cannot reveal lines cut from the end of the file; compare the
// last seq and hash with a copy kept elsewhere (mcusign status shows both).
//
// This package knows nothing of keys, tokens or transports; it must not
// import pkcs11key, plugin or the daemon.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Genesis is the prev of the first record of a new log: SHA-256 of nothing.
var Genesis = func() string { s := sha256.Sum256(nil); return hex.EncodeToString(s[:]) }()

// Events.
const (
	EventSign              = "sign"
	EventGenerateKey       = "generate-key"
	EventConnectionRefused = "connection-refused"
	EventRequestRefused    = "request-refused"
)

// Results.
const (
	ResultOK      = "ok"
	ResultError   = "error"
	ResultRefused = "refused"
)

// Peer is who made a request.
type Peer struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	PID int32  `json:"pid"`
	Exe string `json:"exe,omitempty"`
}

// Image is what was signed, from the image's own header.
type Image struct {
	Digest    string   `json:"digest"` // hex
	Hash      string   `json:"hash"`   // sha256, sha384, sha512
	Version   string   `json:"version"`
	Size      int      `json:"size"` // bytes signed: header, body, protected TLVs
	HdrSize   int      `json:"hdr_size"`
	ImgSize   int      `json:"img_size"`
	Flags     uint32   `json:"flags"`
	FlagNames []string `json:"flag_names,omitempty"`
	Pure      bool     `json:"pure,omitempty"`
	BigEndian bool     `json:"big_endian,omitempty"`
}

// Record is one audit line. Time, Seq and Prev are filled in by Append.
type Record struct {
	Time           string `json:"time"`
	Seq            uint64 `json:"seq"`
	Event          string `json:"event"`
	Mode           string `json:"mode,omitempty"` // standing, on-demand
	Peer           *Peer  `json:"peer,omitempty"`
	Method         string `json:"method,omitempty"` // refused RPCs
	KeyURI         string `json:"key_uri,omitempty"`
	KeyType        string `json:"key_type,omitempty"`
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
	Image          *Image `json:"image,omitempty"`
	SignatureType  string `json:"signature_type,omitempty"`
	Result         string `json:"result"`
	Error          string `json:"error,omitempty"`
	// Voids is the seq of an "ok" sign record this record takes back: the
	// record of a signature is made durable before the token's answer is
	// known, and when the token then fails, no signature was issued.
	Voids uint64 `json:"voids,omitempty"`
	Prev  string `json:"prev"`
}

// hashSuffix precedes the hash at the end of every line.
const hashSuffix = `,"hash":"`

// encode renders r as one line (with "\n") and returns it and its hash.
func encode(r *Record) ([]byte, string, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:])
	line := make([]byte, 0, len(body)+len(hashSuffix)+len(h)+3)
	line = append(line, body[:len(body)-1]...) // without the closing brace
	line = append(line, hashSuffix...)
	line = append(line, h...)
	line = append(line, "\"}\n"...)
	return line, h, nil
}

// decode checks one line (without "\n") against its own hash and parses it.
func decode(line []byte) (*Record, string, error) {
	const hexLen = 64
	n := len(line) - len(hashSuffix) - hexLen - 2
	if n < 2 || !bytes.HasSuffix(line, []byte(`"}`)) || !bytes.Equal(line[n:n+len(hashSuffix)], []byte(hashSuffix)) {
		return nil, "", errors.New(`malformed record: it does not end with its "hash"`)
	}
	h := string(line[n+len(hashSuffix) : len(line)-2])
	body := append(append([]byte(nil), line[:n]...), '}')
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != h {
		return nil, "", errors.New("record altered: its content does not match its hash")
	}
	var r Record
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, "", fmt.Errorf("malformed record: %v", err)
	}
	return &r, h, nil
}

// Log is an open audit log. It is safe for concurrent use, and several
// processes may append to one file.
//
// Appends that arrive together are committed together (group commit): one
// goroutine at a time holds the commit token and writes every record
// queued so far with one write(2) and one fsync, while the records that
// arrive meanwhile queue for the next commit. Each Append returns only
// after the fsync that covers its record, so waiting for Append still
// means the record is on disk; the fsyncs are merely shared.
type Log struct {
	path string

	commit chan struct{} // capacity 1: held while a batch is written, and by Reopen/Close

	mu       sync.Mutex // guards queue, and the chain head for Head
	queue    []*pending
	lastSeq  uint64
	lastHash string // carries the chain across Reopen onto a rotated file

	// Used with the commit token held.
	f        *os.File
	appended uint64    // records this Log wrote
	end      fileState // the file as this Log left it: unchanged means nobody else appended
	now      func() time.Time
	sync     func(*os.File) error // (*os.File).Sync; tests watch the commits through it
}

// pending is one Append waiting for its commit.
type pending struct {
	rec  Record
	seq  uint64
	err  error
	done chan struct{}
}

// fileState identifies a file's content for "has anyone written since?".
type fileState struct {
	ino, size int64
	mtime     int64 // ns
}

func stat(f *os.File) (fileState, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fileState{}, err
	}
	return fileState{ino: int64(st.Ino), size: st.Size, mtime: st.Mtim.Nano()}, nil
}

// maxBatch bounds the records one commit writes.
const maxBatch = 256

// Open opens (creating if needed, mode 0600, directories 0700) the log at path.
func Open(path string) (*Log, error) {
	l := &Log{path: path, now: time.Now, commit: make(chan struct{}, 1), sync: (*os.File).Sync}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) open() error {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
		return fmt.Errorf("cannot create the directory of audit log %s: %v; fix its permissions or choose another audit log path", l.path, err)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("cannot open audit log %s: %v; fix its permissions or choose another --audit-log", l.path, err)
	}
	// Fail now, not on the first request, if the file cannot continue a chain.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return fmt.Errorf("cannot lock audit log %s: %v", l.path, err)
	}
	seq, h, err := tail(l.path)
	var end fileState
	if err == nil {
		end, err = stat(f)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	if err != nil {
		f.Close()
		return err
	}
	l.mu.Lock()
	if seq > 0 {
		l.lastSeq, l.lastHash = seq, h
	}
	l.mu.Unlock()
	l.f, l.end = f, end
	return nil
}

// Path is the file's name.
func (l *Log) Path() string { return l.path }

// Append writes r as the next record and fsyncs it. It fills in Time (if
// empty), Seq and Prev, and returns Seq. An error means the record is not
// (reliably) on disk, and the caller must not act as if it were.
// Concurrent Appends share their write and fsync (see Log).
func (l *Log) Append(r Record) (uint64, error) {
	p := &pending{rec: r, done: make(chan struct{})}
	l.mu.Lock()
	l.queue = append(l.queue, p)
	l.mu.Unlock()
	select {
	case <-p.done: // committed by the goroutine that held the token
		return p.seq, p.err
	case l.commit <- struct{}{}:
	}
	defer func() { <-l.commit }()
	select {
	case <-p.done: // the previous holder took it along just before it let go
		return p.seq, p.err
	default:
	}
	l.mu.Lock()
	n := min(len(l.queue), maxBatch)
	batch := l.queue[:n:n]
	l.queue = l.queue[n:]
	l.mu.Unlock()
	// Our record is in the batch: it was queued before we got the token,
	// and whoever held it before closed done for everything it took.
	l.write(batch)
	return p.seq, p.err
}

// write commits batch (with the token held) and reports to its waiters.
func (l *Log) write(batch []*pending) {
	err := l.writeBatch(batch)
	for _, p := range batch {
		if err != nil && p.err == nil {
			p.seq, p.err = 0, err
		}
		close(p.done)
	}
}

// writeBatch writes batch's records as the next ones of the chain, with one
// write(2) under an exclusive flock, and fsyncs them. Records that cannot be
// encoded get their own error and no seq.
func (l *Log) writeBatch(batch []*pending) error {
	if l.f == nil {
		return fmt.Errorf("audit log %s is closed", l.path)
	}
	fd := int(l.f.Fd())
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return fmt.Errorf("cannot lock audit log %s: %v", l.path, err)
	}
	defer unix.Flock(fd, unix.LOCK_UN)
	l.mu.Lock()
	seq, prev := l.lastSeq, l.lastHash
	l.mu.Unlock()
	// Another process may have appended since our last record; the file
	// as we left it needs no second look.
	if st, err := stat(l.f); err != nil || st != l.end {
		tseq, tprev, err := tail(l.path)
		if err != nil {
			return err
		}
		if tseq > 0 || prev == "" {
			seq, prev = tseq, tprev
		}
		// else: a fresh file after rotation continues the chain.
	}
	if prev == "" {
		prev = Genesis
	}
	var buf []byte
	var wrote []*pending
	for _, p := range batch {
		r := p.rec
		if r.Time == "" {
			r.Time = l.now().UTC().Format(time.RFC3339Nano)
		}
		r.Seq, r.Prev = seq+1, prev
		line, h, err := encode(&r)
		if err != nil {
			p.err = fmt.Errorf("encoding an audit record: %v", err)
			continue
		}
		buf = append(buf, line...)
		p.seq = r.Seq
		seq, prev = r.Seq, h
		wrote = append(wrote, p)
	}
	if len(wrote) == 0 {
		return nil
	}
	// A write cut short (disk full) must not leave a partial line, which
	// would stop every later Append, and a record whose write or fsync
	// failed must not stay: its request fails. So both are cut off again.
	before, serr := stat(l.f)
	undo := func() {
		if serr == nil {
			_ = l.f.Truncate(before.size)
		}
	}
	if _, err := l.f.Write(buf); err != nil {
		undo()
		l.end = fileState{} // whatever was written, the next commit reads it back
		return fmt.Errorf("cannot write audit log %s: %v", l.path, err)
	}
	if err := l.sync(l.f); err != nil {
		undo()
		l.end = fileState{}
		return fmt.Errorf("cannot sync audit log %s to disk: %v", l.path, err)
	}
	if st, err := stat(l.f); err == nil {
		l.end = st
	} else {
		l.end = fileState{}
	}
	l.appended += uint64(len(wrote))
	l.mu.Lock()
	l.lastSeq, l.lastHash = seq, prev
	l.mu.Unlock()
	return nil
}

// Head is the seq and hash of the last record this Log knows of.
func (l *Log) Head() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSeq, l.lastHash
}

// Reopen closes the file and opens the path again, for log rotation: a
// new, empty file continues the chain of the old one.
func (l *Log) Reopen() error {
	l.commit <- struct{}{}
	defer func() { <-l.commit }()
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
	return l.open()
}

// Close closes the file.
func (l *Log) Close() error {
	l.commit <- struct{}{}
	defer func() { <-l.commit }()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// maxLine bounds a record; real ones are well under 2 KiB.
const maxLine = 64 << 10

// tail returns the seq and hash of the last line of the file (0, "" when it
// is empty). A last line without its newline means an interrupted write.
func tail(path string) (uint64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", fmt.Errorf("cannot read audit log %s: %v", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	size := st.Size()
	if size == 0 {
		return 0, "", nil
	}
	n := min(size, maxLine+1)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil && err != io.EOF {
		return 0, "", fmt.Errorf("cannot read audit log %s: %v", path, err)
	}
	if buf[len(buf)-1] != '\n' {
		return 0, "", fmt.Errorf("audit log %s ends in a partial line (an interrupted write?); check it with `mcusign audit verify %s`, move it aside and restart", path, path)
	}
	line := buf[:len(buf)-1]
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	} else if n < size {
		return 0, "", fmt.Errorf("audit log %s ends in a line longer than %d bytes; it is not an mcusignd audit log", path, maxLine)
	}
	r, h, err := decode(line)
	if err != nil {
		return 0, "", fmt.Errorf("the last line of audit log %s is damaged (%v); check it with `mcusign audit verify %s`, move it aside and restart", path, err, path)
	}
	return r.Seq, h, nil
}
