package audit

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
)

// A line ends with one of two suffixes. Lines written before the chain was
// keyed end with `,"hash":"<hex SHA-256(prev || body)>"}`; keyed lines end
// with `,"mac":"<hex HMAC-SHA256(key, prev || body)>"}`. Once a keyed line
// appears, every later line must be keyed.
const (
	hashField = `,"hash":"`
	macField  = `,"mac":"`
)

func hashSuffixLen() int { return len(hashField) + 2*sha256.Size + len(`"}`) }
func macSuffixLen() int  { return len(macField) + 2*sha256.Size + len(`"}`) }

// link computes the chain value of body after prev: a keyed MAC when key is
// set, the legacy plain hash when it is nil.
func link(key []byte, prev string, body []byte) string {
	if key == nil {
		h := sha256.New()
		h.Write([]byte(prev))
		h.Write(body)
		return hex.EncodeToString(h.Sum(nil))
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(prev))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// encodeLine appends the keyed chain field to an encoded entry.
func encodeLine(key []byte, prev string, body []byte) (line []byte, sum string) {
	sum = link(key, prev, body)
	line = append(bytes.Clone(body[:len(body)-1]), []byte(macField+sum+"\"}\n")...)
	return line, sum
}

// chainState is what reading a log tells: how far it goes and how.
type chainState struct {
	seq      uint64 // last sequence number (0: empty log)
	prev     string // chain value of the last line
	keyedAt  uint64 // seq of the first keyed line, 0 if none
	unkeyedN uint64 // legacy lines before the first keyed one
	// macAt is the chain value of the line whose seq is wantSeq, if any.
	wantSeq uint64
	macAt   string
}

// readChain checks every line of r. key verifies keyed lines; a keyed line
// with no key given is an error, since it cannot be checked.
func readChain(r io.Reader, key []byte, wantSeq uint64) (chainState, error) {
	st := chainState{prev: genesis, wantSeq: wantSeq}
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		raw, rerr := br.ReadBytes('\n')
		if len(raw) == 0 && rerr == io.EOF {
			return st, nil
		}
		if rerr != nil && rerr != io.EOF {
			return st, fmt.Errorf("failed to read line %d: %w", line, rerr)
		}
		if rerr == io.EOF {
			return st, fmt.Errorf("%w at line %d: incomplete last line (a crash mid-write?)", ErrBroken, line)
		}
		raw = bytes.TrimSuffix(raw, []byte("\n"))
		var keyed bool
		var n int
		switch {
		case len(raw) > macSuffixLen() && bytes.HasPrefix(raw[len(raw)-macSuffixLen():], []byte(macField)):
			keyed, n = true, macSuffixLen()
		case len(raw) > hashSuffixLen() && bytes.HasPrefix(raw[len(raw)-hashSuffixLen():], []byte(hashField)):
			n = hashSuffixLen()
		default:
			return st, fmt.Errorf("%w at line %d: no hash or mac field", ErrBroken, line)
		}
		if !keyed && st.keyedAt != 0 {
			return st, fmt.Errorf("%w at line %d: an unkeyed line after keyed ones (the chain is keyed from seq %d on)", ErrBroken, line, st.keyedAt)
		}
		if keyed && key == nil {
			return st, fmt.Errorf("%w at line %d: a keyed line, and no key to check it: verify with the holder's seal key", ErrUnverifiable, line)
		}
		body := append(bytes.Clone(raw[:len(raw)-n]), '}')
		var fieldLen = len(hashField)
		if keyed {
			fieldLen = len(macField)
		}
		got := string(raw[len(raw)-n+fieldLen : len(raw)-2])
		var e Entry
		if err := json.Unmarshal(body, &e); err != nil {
			return st, fmt.Errorf("%w at line %d: %w", ErrBroken, line, err)
		}
		if e.Prev != st.prev || e.Seq != st.seq+1 {
			return st, fmt.Errorf("%w at line %d (seq %d): it does not follow line %d", ErrBroken, line, e.Seq, line-1)
		}
		k := key
		if !keyed {
			k = nil
		}
		if want := link(k, st.prev, body); !hmac.Equal([]byte(got), []byte(want)) {
			what := "hash"
			if keyed {
				what = "mac (a line rewritten without the seal key?)"
			}
			return st, fmt.Errorf("%w at line %d (seq %d): %s does not match its content", ErrBroken, line, e.Seq, what)
		}
		if keyed && st.keyedAt == 0 {
			st.keyedAt = e.Seq
		}
		if !keyed {
			st.unkeyedN++
		}
		st.seq, st.prev = e.Seq, got
		if e.Seq == wantSeq {
			st.macAt = got
		}
	}
}
