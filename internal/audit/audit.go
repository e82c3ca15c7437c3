// Package audit is the holder's append-only, keyed, hash-chained audit log.
//
// Each line is one JSON object. Its last field is "mac", the hex
// HMAC-SHA256, under a key derived from the holder's seal key (KeyFromSeal),
// of the previous line's MAC followed by the exact bytes of this line before
// the mac field. Editing, removing or reordering any line breaks the chain
// from that line on, and Verify names the first broken line; without the
// seal key a rewritten chain cannot be made to verify. Every append is
// fsynced before the decision it records takes effect.
//
// The chain cannot show lines cut from its tail, so a small head file next
// to the log (<log>.head, see head.go) records the last sequence number and
// MAC under the same key; Open and Verify refuse a log shorter than its head.
// The head follows each append within one fsync (headsync.go).
//
// Logs written before the chain was keyed end their lines with "hash" (a
// plain SHA-256 chain). Open keeps them: it checks their chain and appends
// an "audit_keyed" marker entry, keyed, after which every line is keyed.
//
// Denials are coalesced per peer (see coalesce.go), so a peer denied in a
// loop costs a bounded number of lines, not a full disk.
//
// The log records who asked for what and what was decided. It never holds
// share bytes: Entry has no field that could carry them.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
	// EventKeyed marks where an unkeyed log became keyed.
	EventKeyed = "audit_keyed"
	// EventMarkReset records that an operator lowered the sealed
	// high-water mark after moving the old log aside.
	EventMarkReset = "audit_mark_reset"
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
	// Count, First and Last summarize coalesced denials: Count denials of
	// Peer between First and Last that got no line of their own.
	Count uint64    `json:"count,omitempty"`
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	Prev  string    `json:"prev"`
}

// genesis is the "previous hash" of the first entry.
var genesis = hex.EncodeToString(make([]byte, sha256.Size))

// ErrBroken is returned by Verify and Open when the chain is broken.
var ErrBroken = errors.New("audit chain broken")

// ErrTruncated is returned by Verify and Open when the log ends before the
// head recorded in its head file: lines were removed from its tail.
var ErrTruncated = errors.New("audit log truncated")

// ErrUnverifiable is returned by Verify when the log has keyed lines and no
// key was given to check them.
var ErrUnverifiable = errors.New("audit chain cannot be checked")

// KeyLen is the length of the chain key.
const KeyLen = 32

// KeyFromSeal derives the chain key from the holder's seal key. The caller
// owns the result.
func KeyFromSeal(k shares.SealKey) ([]byte, error) {
	key, err := shares.Subkey(k, "audit-chain")
	if err != nil {
		return nil, fmt.Errorf("failed to derive the audit chain key from the seal key: %w", err)
	}
	return key, nil
}

// Log appends entries to a file. It is safe for concurrent use.
type Log struct {
	mu     sync.Mutex
	f      *os.File
	path   string
	key    []byte
	seq    uint64
	prev   string
	now    func() time.Time
	denied *coalescer
	head   *headSync
	// Upgraded is the number of unkeyed entries found when Open keyed the
	// chain, 0 if it was keyed already (or empty). The daemon logs it.
	Upgraded uint64
}

// Open opens (or creates, mode 0600) an audit log, refuses it if group or
// others may read or write it, and checks its whole chain and its head file
// before appending to it. A broken or truncated chain is an error: keep the
// file (and its head) as evidence, move them aside, and start a new one.
// An unkeyed log is upgraded: see the package comment.
func Open(path string, key []byte) (*Log, error) {
	if len(key) != KeyLen {
		return nil, fmt.Errorf("audit log %s: chain key has %d bytes, want %d", path, len(key), KeyLen)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open audit log %s: %w", path, err)
	}
	l, err := open(f, path, key)
	if err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

func open(f *os.File, path string, key []byte) (*Log, error) {
	if err := checkMode(f, path); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	st, h, err := check(f, path, key)
	if err != nil {
		return nil, fmt.Errorf("audit log %s: %w: keep it and %s as evidence, move both aside, and restart", path, err, HeadPath(path))
	}
	if h.torn {
		// A crash tore the newer slot; write the head found afresh into
		// both, so the next append does not overwrite the only good one.
		slot, err := encodeSlot(key, st.seq, st.prev)
		if err == nil {
			err = createHead(HeadPath(path), slot)
		}
		if err != nil {
			return nil, fmt.Errorf("audit log %s: failed to repair its head: %w", path, err)
		}
	}
	l := &Log{f: f, path: path, key: append([]byte(nil), key...), seq: st.seq, prev: st.prev, now: time.Now}
	l.head = newHeadSync(path, l.key)
	l.denied = newCoalescer(DefaultDenyWindow, DefaultDenyBurst)
	if st.keyedAt == 0 && st.seq > 0 {
		l.Upgraded = st.seq
		if err := l.Append(Entry{Event: EventKeyed, Decision: "ok", Detail: fmt.Sprintf(
			"the chain is keyed (HMAC-SHA256 under a key derived from the seal key) from this entry on; the %d entries before it are only hash-chained", st.seq)}); err != nil {
			_ = l.head.stop()
			return nil, err
		}
	}
	return l, nil
}

// check reads the chain of f and compares it with the head file.
func check(f *os.File, path string, key []byte) (chainState, head, error) {
	h, ok, err := readHead(path, key)
	if err != nil {
		return chainState{}, h, err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return chainState{}, h, fmt.Errorf("failed to read: %w", err)
	}
	st, err := readChain(f, key, h.Seq)
	if err != nil {
		return st, h, err
	}
	return st, h, checkHead(path, st, h, ok)
}

// Append records e, filling in Seq, Time and Prev, fsyncs, and moves the
// head file. A denial (Decision "deny") may be coalesced instead of written
// (see AppendDenial).
func (l *Log) Append(e Entry) error {
	if e.Decision == "deny" {
		_, err := l.AppendDenial(e)
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.flushLocked(false); err != nil {
		return err
	}
	return l.appendLocked(e)
}

func (l *Log) appendLocked(e Entry) error {
	if l.f == nil {
		return fmt.Errorf("audit log %s is closed", l.path)
	}
	e.Seq = l.seq + 1
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	e.Prev = l.prev
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("failed to encode audit entry: %w", err)
	}
	line, sum := encodeLine(l.key, l.prev, body)
	if _, err := l.f.Write(line); err != nil {
		return fmt.Errorf("failed to append to audit log %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("failed to fsync audit log %s: %w", l.path, err)
	}
	l.seq, l.prev = e.Seq, sum
	if err := l.head.moved(l.seq, l.prev); err != nil {
		return fmt.Errorf("audit log %s: entry %d written but its head file could not be moved: %w", l.path, l.seq, err)
	}
	return nil
}

// Close writes the summaries of coalesced denials and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	ferr := l.flushLocked(true)
	if l.denied.timer != nil {
		l.denied.timer.Stop()
		l.denied.timer = nil
	}
	if err := l.head.stop(); err != nil && ferr == nil {
		ferr = fmt.Errorf("audit log %s: %w", l.path, err)
	}
	shares.Zero(l.key)
	f := l.f
	l.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to close audit log %s: %w", l.path, err)
	}
	return ferr
}

// Verify checks the chain of the log at path, with the key from KeyFromSeal,
// and its head file, and returns the number of entries. On a broken chain
// the error names the first bad line; a log shorter than its head is
// ErrTruncated. It refuses a log that group or others may read or write.
func Verify(path string, key []byte) (int, error) {
	if len(key) != KeyLen {
		return 0, fmt.Errorf("audit log %s: %w: chain key has %d bytes, want %d (derive it from the seal key)", path, ErrUnverifiable, len(key), KeyLen)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("failed to open audit log %s: %w", path, err)
	}
	defer f.Close()
	if err := checkMode(f, path); err != nil {
		return 0, fmt.Errorf("audit log: %w", err)
	}
	st, _, err := check(f, path, key)
	if err != nil {
		return int(st.seq), fmt.Errorf("audit log %s: %w", path, err)
	}
	return int(st.seq), nil
}
