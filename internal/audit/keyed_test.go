package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lines returns the log's lines, newline included.
func lines(t *testing.T, p string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	l := bytes.SplitAfter(b, []byte("\n"))
	return l[:len(l)-1]
}

// rechain rewrites every line as an attacker without the key would: the
// content of line i changed by edit, and the chain recomputed with key
// (nil: the legacy unkeyed hash).
func rechain(t *testing.T, in [][]byte, key []byte, edit func(i int, e *Entry)) []byte {
	t.Helper()
	var out bytes.Buffer
	prev := genesis
	for i, raw := range in {
		var e Entry
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		e.Prev = prev
		if edit != nil {
			edit(i, &e)
		}
		body, _ := json.Marshal(e)
		sum := link(key, prev, body)
		field := macField
		if key == nil {
			field = hashField
		}
		out.Write(body[:len(body)-1])
		out.WriteString(field + sum + "\"}\n")
		prev = sum
	}
	return out.Bytes()
}

// TestKeyedChainRewriteDetected: a log rewritten and re-chained by someone
// without the seal key no longer verifies, whichever way it is re-chained.
// Before the chain was keyed, each of these passed Verify.
func TestKeyedChainRewriteDetected(t *testing.T) {
	otherKey := bytes.Repeat([]byte{9}, KeyLen)
	deny := func(i int, e *Entry) {
		if i == 2 {
			e.Decision = "deny"
		}
	}
	for _, tc := range []struct {
		name string
		key  []byte
		head bool // keep the head file
		want error
	}{
		{name: "fail/rechained-with-another-key", key: otherKey, head: true, want: ErrBroken},
		{name: "fail/rechained-unkeyed-head-kept", key: nil, head: true, want: ErrBroken},
		{name: "fail/rechained-with-another-key-head-deleted", key: otherKey, head: false, want: ErrBroken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeLog(t, 5)
			forged := rechain(t, lines(t, p), tc.key, deny)
			if err := os.WriteFile(p, forged, 0o600); err != nil {
				t.Fatal(err)
			}
			if !tc.head {
				os.Remove(HeadPath(p))
			}
			if _, err := Verify(p, testKey); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if _, err := Open(p, testKey); !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestTruncatedTailDetected: whole lines cut from the end leave a valid
// chain; the head file shows the cut. Before the head file, Verify passed.
func TestTruncatedTailDetected(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(p string, l [][]byte) []byte
	}{
		{name: "fail/last-two-lines", cut: func(_ string, l [][]byte) []byte { return bytes.Join(l[:3], nil) }},
		{name: "fail/every-line", cut: func(_ string, l [][]byte) []byte { return nil }},
		{name: "fail/head-deleted-too", cut: func(p string, l [][]byte) []byte {
			os.Remove(HeadPath(p))
			return bytes.Join(l[:3], nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeLog(t, 5)
			if err := os.WriteFile(p, tc.cut(p, lines(t, p)), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Verify(p, testKey)
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("Verify = %v, want ErrTruncated", err)
			}
			t.Log(err)
			if _, err := Open(p, testKey); !errors.Is(err, ErrTruncated) {
				t.Fatalf("Open = %v, want ErrTruncated", err)
			}
		})
	}
}

// TestHeadBehindLogAccepted: a crash between the log's fsync and the head's
// rename leaves the log one entry ahead of its head. That is not a
// truncation, and Open goes on.
func TestHeadBehindLogAccepted(t *testing.T) {
	p := writeLog(t, 3)
	old, err := os.ReadFile(HeadPath(p))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Entry{Event: EventCommit, Decision: "ok"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := os.WriteFile(HeadPath(p), old, 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := Verify(p, testKey); err != nil || n != 4 {
		t.Fatalf("Verify = %d, %v; want 4, nil", n, err)
	}
	if l, err = Open(p, testKey); err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestUnkeyedLogUpgraded: a log from before the chain was keyed is kept,
// checked, and marked; from the marker on every line is keyed.
func TestUnkeyedLogUpgraded(t *testing.T) {
	p := writeLog(t, 4)
	legacy := rechain(t, lines(t, p), nil, nil)
	os.Remove(HeadPath(p))
	if err := os.WriteFile(p, legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := Verify(p, testKey); err != nil || n != 4 {
		t.Fatalf("Verify of the legacy log = %d, %v", n, err)
	}
	l, err := Open(p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if l.Upgraded != 4 {
		t.Fatalf("Upgraded = %d, want 4", l.Upgraded)
	}
	if err := l.Append(Entry{Event: EventStart, Decision: "ok"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	got := lines(t, p)
	if len(got) != 6 || !bytes.Contains(got[4], []byte(`"event":"`+EventKeyed+`"`)) || !bytes.Contains(got[4], []byte(macField)) {
		t.Fatalf("line 5 is not the keyed marker: %s", got[4])
	}
	if n, err := Verify(p, testKey); err != nil || n != 6 {
		t.Fatalf("Verify after upgrade = %d, %v", n, err)
	}
	// A reopen does not mark again.
	if l, err = Open(p, testKey); err != nil || l.Upgraded != 0 {
		t.Fatalf("reopen: %v, upgraded %d", err, l.Upgraded)
	}
	l.Close()
	// A legacy line after keyed ones is a downgrade.
	tail := rechain(t, got, nil, nil)
	last := bytes.SplitAfter(tail, []byte("\n"))[5]
	var e Entry
	_ = json.Unmarshal(last, &e)
	if err := os.WriteFile(p, append(bytes.Join(got[:5], nil), last...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(p, testKey); !errors.Is(err, ErrBroken) {
		t.Fatalf("Verify with a downgraded last line = %v, want ErrBroken", err)
	}
}

// TestLooseModeRefused: Open and Verify check the log's mode on the open
// descriptor, like the holder's other files. Before, a 0644 log was used.
func TestLooseModeRefused(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o620, 0o606} {
		t.Run(fmt.Sprintf("fail/%#o", mode), func(t *testing.T) {
			p := writeLog(t, 1)
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
			_, err := Open(p, testKey)
			if err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
				t.Fatalf("Open of a %#o log = %v", mode, err)
			}
			if _, err := Verify(p, testKey); err == nil {
				t.Fatalf("Verify of a %#o log passed", mode)
			}
		})
	}
	t.Run("fail/new-file-in-loose-umask", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "audit.log")
		if err := os.WriteFile(p, nil, 0o664); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o664); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(p, testKey); err == nil {
			t.Fatal("Open of a group-writable empty log passed")
		}
	})
}

func TestVerifyNeedsKey(t *testing.T) {
	p := writeLog(t, 2)
	if _, err := Verify(p, nil); !errors.Is(err, ErrUnverifiable) {
		t.Fatalf("Verify without a key = %v, want ErrUnverifiable", err)
	}
	if _, err := Open(p, []byte("short")); err == nil {
		t.Fatal("Open with a short key passed")
	}
}

// TestTornHeadSlot: the head file's two slots are written in turn, so a
// crash mid-write damages only the newer one: the log then holds the entry
// whose head was being written, and opens. Damaging the newer slot to hide
// a cut last line does not work.
func TestTornHeadSlot(t *testing.T) {
	tear := func(t *testing.T, p string) {
		hb, err := os.ReadFile(HeadPath(p))
		if err != nil || len(hb) != 2*headSlotLen {
			t.Fatalf("head file: %d bytes, %v", len(hb), err)
		}
		// Tear the slot holding seq 5; the other must hold seq 4, which
		// writeLogSeq guarantees (the head writer folds appends that come
		// while it writes, so writeLog's concurrent appends could leave an
		// older seq there, and a cut of one line would then look like a
		// crash: this test flaked that way under -count=20).
		newest := -1
		for i := range 2 {
			h, ok := decodeSlot(testKey, hb[i*headSlotLen:(i+1)*headSlotLen])
			if ok && h.Seq == 5 {
				newest = i
			} else if !ok || h.Seq != 4 {
				t.Fatalf("head slot %d holds %+v (valid %v); want seqs 4 and 5", i, h, ok)
			}
		}
		if newest < 0 {
			t.Fatal("no head slot holds seq 5")
		}
		copy(hb[newest*headSlotLen+20:], "garbage")
		if err := os.WriteFile(HeadPath(p), hb, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeLog := writeLogSeq
	t.Run("ok/crash-mid-write", func(t *testing.T) {
		p := writeLog(t, 5)
		tear(t, p)
		if n, err := Verify(p, testKey); err != nil || n != 5 {
			t.Fatalf("Verify = %d, %v; want 5, nil", n, err)
		}
		l, err := Open(p, testKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(Entry{Event: EventStart, Decision: "ok"}); err != nil {
			t.Fatal(err)
		}
		l.Close()
		if n, err := Verify(p, testKey); err != nil || n != 6 {
			t.Fatalf("after the next append: %d, %v", n, err)
		}
	})
	t.Run("fail/torn-slot-hides-a-cut", func(t *testing.T) {
		p := writeLog(t, 5)
		tear(t, p)
		ls := lines(t, p)
		if err := os.WriteFile(p, bytes.Join(ls[:4], nil), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(p, testKey); !errors.Is(err, ErrTruncated) {
			t.Fatalf("Verify = %v, want ErrTruncated", err)
		}
	})
	t.Run("fail/both-slots-damaged", func(t *testing.T) {
		p := writeLog(t, 5)
		if err := os.WriteFile(HeadPath(p), bytes.Repeat([]byte{' '}, 2*headSlotLen), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(p, testKey); !errors.Is(err, ErrBroken) {
			t.Fatalf("Open = %v, want ErrBroken", err)
		}
	})
}

// writeLogSeq writes n entries one after the other, waiting for the head
// file after each, so that its two slots hold the last two seqs.
func writeLogSeq(t *testing.T, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := l.Append(Entry{Event: EventRelease, Peer: "spiffe://ks/unsealer/u", Target: "vault-1", Decision: "allow"}); err != nil {
			t.Fatal(err)
		}
		if err := l.head.flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}
