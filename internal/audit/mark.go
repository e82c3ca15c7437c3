package audit

import (
	"fmt"
	"os"
)

// Mark keeps the log's high-water mark outside the log and its head file:
// the holder's sealed, authenticated store (shares.Store). The head file
// sits next to the log, so whoever can cut the log's tail can rewind or
// delete it as well; the mark is under the store's MAC, bound to the seal
// key, and cannot be lowered without it.
type Mark interface {
	// AuditMark returns the newest entry's sequence number recorded; 0
	// if none.
	AuditMark() (uint64, error)
	// SetAuditMark raises the recorded mark to seq; never lowers it.
	SetAuditMark(seq uint64) error
}

// OpenMarked is Open that also holds the log to a high-water mark kept in
// m: a log that ends before the mark lost lines from its tail (with its
// head file rewound or deleted too), and is refused with ErrTruncated. The
// mark is raised to the log's end at open, then after each append, behind
// the head file (never ahead of the durable log, so a crash cannot make a
// good log look cut).
func OpenMarked(path string, key []byte, m Mark) (*Log, error) {
	if len(key) != KeyLen {
		return nil, fmt.Errorf("audit log %s: chain key has %d bytes, want %d", path, len(key), KeyLen)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open audit log %s: %w", path, err)
	}
	l, err := openMarked(f, path, key, m)
	if err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

func openMarked(f *os.File, path string, key []byte, m Mark) (*Log, error) {
	want, err := m.AuditMark()
	if err != nil {
		return nil, fmt.Errorf("audit log %s: failed to read its high-water mark from the sealed store: %w", path, err)
	}
	l, err := open(f, path, key)
	if err != nil {
		return nil, err
	}
	if err := checkMark(path, l.seq, want); err != nil {
		_ = l.head.stop()
		return nil, err
	}
	if err := m.SetAuditMark(l.seq); err != nil {
		_ = l.head.stop()
		return nil, fmt.Errorf("audit log %s: failed to record its high-water mark in the sealed store: %w", path, err)
	}
	l.head.setMark(m)
	return l, nil
}

// VerifyMarked is Verify that also holds the log to the high-water mark
// want, read from the sealed store.
func VerifyMarked(path string, key []byte, want uint64) (int, error) {
	n, err := Verify(path, key)
	if err != nil {
		return n, err
	}
	return n, checkMark(path, uint64(n), want)
}

// checkMark refuses a log whose last entry is older than the sealed mark.
func checkMark(path string, seq, want uint64) error {
	if seq >= want {
		return nil
	}
	return fmt.Errorf("audit log %s: %w: it ends at seq %d but the holder's sealed store records seq %d: "+
		"%d lines were removed from its tail (its head file %s was rewound or deleted as well); keep the log and its head as evidence. "+
		"To start a new log on purpose, move both aside and run 'holder audit reset-mark' with the holder stopped",
		path, ErrTruncated, seq, want, want-seq, HeadPath(path))
}
