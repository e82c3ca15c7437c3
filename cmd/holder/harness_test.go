package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/devpki"
)

var holderBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "holder-bin-")
	if err != nil {
		panic(err)
	}
	holderBin = filepath.Join(dir, "holder")
	out, err := exec.Command("go", "build", "-race", "-o", holderBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "failed to build holder: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a port that was free on ip a moment ago.
func freePort(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuf is a bytes.Buffer safe for a process writer and test readers.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// proc is a running holder process.
type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuf
	done   chan error
}

func startHolder(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{stderr: &syncBuf{}, done: make(chan error, 1)}
	p.cmd = exec.Command(holderBin, args...)
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("holder output:\n%s", p.stderr.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits (bounded) for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("holder exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("holder did not stop within 20 s of SIGTERM")
	}
}

// runCLI runs a one-shot holder command and returns its output and exit code.
func runCLI(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, holderBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// world is the certificates and files of one test deployment.
type world struct {
	dir  string
	ca   *devpki.CA
	vca  *devpki.CA // Vault's CA, pinned by the holder
	cert map[string][2]string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{dir: t.TempDir(), cert: map[string][2]string{}}
	var err error
	if w.ca, err = devpki.NewCA("keyshare.test"); err != nil {
		t.Fatal(err)
	}
	if w.vca, err = devpki.NewCA("vault.test"); err != nil {
		t.Fatal(err)
	}
	if err := w.ca.WriteCA(filepath.Join(w.dir, "ca.crt")); err != nil {
		t.Fatal(err)
	}
	if err := w.vca.WriteCA(filepath.Join(w.dir, "vault-ca.crt")); err != nil {
		t.Fatal(err)
	}
	for _, id := range [][2]string{{"holder", "a"}, {"holder", "b"}, {"unsealer", "u1"}, {"operator", "oncall"}} {
		leaf, err := w.ca.IssueID(id[0], id[1], net.ParseIP("127.0.0.1"))
		if err != nil {
			t.Fatal(err)
		}
		c, k, err := leaf.WriteFiles(w.dir, id[0]+"-"+id[1])
		if err != nil {
			t.Fatal(err)
		}
		w.cert[id[0]+"/"+id[1]] = [2]string{c, k}
	}
	return w
}

func (w *world) path(name string) string { return filepath.Join(w.dir, name) }

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every 50 ms until it holds or the bound passes.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", bound, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
