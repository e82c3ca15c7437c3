package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var testKey = bytes.Repeat([]byte{7}, KeyLen)

func writeLog(t *testing.T, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Append(Entry{Event: EventRelease, Peer: "spiffe://ks/unsealer/u", Target: "vault-1", Decision: "allow", Indices: []uint8{uint8(i%5 + 1)}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAppendVerifyReopen(t *testing.T) {
	p := writeLog(t, 20)
	n, err := Verify(p, testKey)
	if err != nil || n != 20 {
		t.Fatalf("Verify = %d, %v; want 20, nil", n, err)
	}
	l, err := Open(p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Entry{Event: EventCommit, Generation: 2, Decision: "ok"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if n, err := Verify(p, testKey); err != nil || n != 21 {
		t.Fatalf("after reopen: %d, %v", n, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestTamperDetected(t *testing.T) {
	type tc struct {
		name   string
		mutate func([][]byte) [][]byte
		line   string
	}
	run := func(t *testing.T, tc tc) {
		p := writeLog(t, 5)
		b, _ := os.ReadFile(p)
		lines := bytes.SplitAfter(b, []byte("\n"))
		lines = lines[:len(lines)-1] // trailing empty
		out := bytes.Join(tc.mutate(lines), nil)
		if err := os.WriteFile(p, out, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Verify(p, testKey)
		if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), tc.line) {
			t.Fatalf("err = %v, want ErrBroken at %s", err, tc.line)
		}
		if _, err := Open(p, testKey); !errors.Is(err, ErrBroken) {
			t.Fatalf("Open of a broken log: err = %v", err)
		}
	}
	for _, c := range []tc{
		{name: "fail/edit-decision", line: "line 3", mutate: func(l [][]byte) [][]byte {
			l[2] = bytes.Replace(l[2], []byte(`"allow"`), []byte(`"deny"`), 1)
			return l
		}},
		{name: "fail/delete-line", line: "line 2", mutate: func(l [][]byte) [][]byte { return append(l[:1], l[2:]...) }},
		{name: "fail/swap-lines", line: "line 4", mutate: func(l [][]byte) [][]byte { l[3], l[4] = l[4], l[3]; return l }},
		{name: "fail/truncated-last", line: "line 5", mutate: func(l [][]byte) [][]byte { l[4] = l[4][:10]; return l }},
		{name: "fail/garbage-line", line: "line 1", mutate: func(l [][]byte) [][]byte { return append([][]byte{[]byte("hello\n")}, l...) }},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}
