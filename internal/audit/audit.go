// Package audit is the holder's append-only, hash-chained audit log.
//
// Each line is one JSON object. Its last field is "hash", the hex SHA-256 of
// the previous line's hash followed by the exact bytes of this line before
// the hash field. Editing, removing or reordering any line breaks the chain
// from that line on, and Verify names the first broken line. Every append
// is fsynced before the decision it records takes effect.
//
// The log records who asked for what and what was decided. It never holds
// share bytes: Entry has no field that could carry them.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/keyshare/keyshare/pkg/shares"
)

// Event names.
const (
	EventRelease = "release"
	// EventRekeyRelease is a release to an operator for Vault's rekey.
	EventRekeyRelease = "rekey_release"
	EventStage        = "stage"
	EventCommit       = "commit"
	EventAbort        = "abort"
	EventHold         = "hold"
	EventStart        = "start"
)

// Entry is one audited decision.
type Entry struct {
	Seq        uint64         `json:"seq"`
	Time       time.Time      `json:"time"`
	Event      string         `json:"event"`
	Peer       string         `json:"peer,omitempty"`
	Source     string         `json:"source,omitempty"`
	Target     string         `json:"target,omitempty"`
	Generation uint64         `json:"generation,omitempty"`
	Indices    shares.Indices `json:"indices,omitempty"`
	Decision   string         `json:"decision"` // "allow", "deny", "ok", "error"
	Reason     string         `json:"reason,omitempty"`
	Detail     string         `json:"detail,omitempty"`
	Rule       string         `json:"rule,omitempty"`
	Prev       string         `json:"prev"`
}

// genesis is the "previous hash" of the first entry.
var genesis = hex.EncodeToString(make([]byte, sha256.Size))

// ErrBroken is returned by Verify and Open when the chain is broken.
var ErrBroken = errors.New("audit chain broken")

// Log appends entries to a file. It is safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	path string
	seq  uint64
	prev string
	now  func() time.Time
}

// Open opens (or creates, mode 0600) an audit log and checks its whole chain
// before appending to it. A broken chain is an error: move the file aside
// after keeping it as evidence, and start a new one.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open audit log %s: %w", path, err)
	}
	seq, prev, err := verify(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit log %s: %w: keep it as evidence, move it aside, and restart", path, err)
	}
	return &Log{f: f, path: path, seq: seq, prev: prev, now: time.Now}, nil
}

// Append records e, filling in Seq, Time and Prev, and fsyncs.
func (l *Log) Append(e Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.Seq = l.seq + 1
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	e.Prev = l.prev
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("failed to encode audit entry: %w", err)
	}
	sum := chain(l.prev, body)
	line := append(body[:len(body)-1], []byte(`,"hash":"`+sum+"\"}\n")...)
	if _, err := l.f.Write(line); err != nil {
		return fmt.Errorf("failed to append to audit log %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("failed to fsync audit log %s: %w", l.path, err)
	}
	l.seq, l.prev = e.Seq, sum
	return nil
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// Verify checks the chain of the log at path and returns the number of
// entries. On a broken chain the error names the first bad line.
func Verify(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("failed to open audit log %s: %w", path, err)
	}
	defer f.Close()
	n, _, err := verify(f)
	if err != nil {
		return int(n), fmt.Errorf("audit log %s: %w", path, err)
	}
	return int(n), nil
}

func chain(prev string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// hashSuffix is what Append puts after the body: `,"hash":"<64 hex>"}`.
const hashSuffixLen = len(`,"hash":""}`) + 2*sha256.Size

func verify(r io.Reader) (seq uint64, prev string, err error) {
	prev = genesis
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		raw, rerr := br.ReadBytes('\n')
		if len(raw) == 0 && rerr == io.EOF {
			return seq, prev, nil
		}
		if rerr != nil && rerr != io.EOF {
			return seq, prev, fmt.Errorf("failed to read line %d: %w", line, rerr)
		}
		if rerr == io.EOF {
			return seq, prev, fmt.Errorf("%w at line %d: incomplete last line (a crash mid-write?)", ErrBroken, line)
		}
		raw = bytes.TrimSuffix(raw, []byte("\n"))
		if len(raw) <= hashSuffixLen || !bytes.HasPrefix(raw[len(raw)-hashSuffixLen:], []byte(`,"hash":"`)) {
			return seq, prev, fmt.Errorf("%w at line %d: no hash field", ErrBroken, line)
		}
		body := append(bytes.Clone(raw[:len(raw)-hashSuffixLen]), '}')
		got := string(raw[len(raw)-hashSuffixLen+len(`,"hash":"`) : len(raw)-2])
		var e Entry
		if err := json.Unmarshal(body, &e); err != nil {
			return seq, prev, fmt.Errorf("%w at line %d: %w", ErrBroken, line, err)
		}
		if e.Prev != prev || e.Seq != seq+1 {
			return seq, prev, fmt.Errorf("%w at line %d (seq %d): it does not follow line %d", ErrBroken, line, e.Seq, line-1)
		}
		if want := chain(prev, body); got != want {
			return seq, prev, fmt.Errorf("%w at line %d (seq %d): hash does not match its content", ErrBroken, line, e.Seq)
		}
		seq, prev = e.Seq, got
	}
}
