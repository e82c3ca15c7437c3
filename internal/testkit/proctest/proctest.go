// Package proctest runs the project's real binaries in tests: it builds them
// once per test binary, starts them with their output captured, stops them
// by signal with a bound, and runs one-shot commands for their output and
// exit code. It also has the small loopback helpers those tests share.
package proctest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
)

// Build compiles each package (a path relative to the caller's package
// folder, like "." or "../holder") into dir, and returns the binary paths
// by package. race builds with the race detector.
func Build(dir string, race bool, pkgs ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, pkg := range pkgs {
		abs, err := filepath.Abs(pkg)
		if err != nil {
			return nil, err
		}
		bin := filepath.Join(dir, filepath.Base(abs))
		args := []string{"build", "-o", bin}
		if race {
			args = append(args, "-race")
		}
		if b, err := exec.Command("go", append(args, pkg)...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("failed to build %s: %w\n%s", pkg, err, b)
		}
		out[pkg] = bin
	}
	return out, nil
}

// Buffer is a bytes.Buffer safe for a process writing and a test reading.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }

// String returns everything written so far.
func (s *Buffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Proc is a running process with its stdout and stderr captured together.
type Proc struct {
	Cmd  *exec.Cmd
	Out  *Buffer
	done chan error
}

// Start runs bin with args (and env added to the test's environment). The
// process is killed when the test ends, and its output is logged if the
// test failed.
func Start(tb testing.TB, env []string, bin string, args ...string) *Proc {
	tb.Helper()
	p := &Proc{Out: &Buffer{}, done: make(chan error, 1)}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	if err := p.Cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { p.done <- p.Cmd.Wait() }()
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("%s output:\n%s", filepath.Base(bin), p.Out.String())
		}
	})
	return p
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	if err, ok := <-p.done; ok {
		p.done <- err
	}
}

// Stop sends SIGTERM and fails the test unless the process exits cleanly
// within bound.
func (p *Proc) Stop(tb testing.TB, bound time.Duration) {
	tb.Helper()
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			tb.Fatalf("%s exited with %v after SIGTERM", p.Cmd.Path, err)
		}
	case <-time.After(bound):
		tb.Fatalf("%s did not stop within %s of SIGTERM", p.Cmd.Path, bound)
	}
}

// Run runs a one-shot command with stdin and env, bounded to 2 minutes, and
// returns its stdout, stderr and exit code.
func Run(tb testing.TB, stdin string, env []string, bin string, args ...string) (stdout, stderr string, code int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewBufferString(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		tb.Fatal(err)
	}
	return o.String(), e.String(), code
}

// AnyPort is ip:0: the address to configure for a child process's
// listener, so that the kernel picks a port at bind time. Picking a port
// that is free now and letting the child bind it later races with every
// other process on the host; read the bound address back from the child's
// log with LogAttr instead.
func AnyPort(ip string) string { return net.JoinHostPort(ip, "0") }

// LogAttr waits until p has written a JSON log line (log/slog's JSON
// handler) whose msg is msg, and returns its attribute key, failing the
// test after bound. The daemons log the addresses they bound this way:
// "holder serving" (listen, gossip) and "metrics listening"
// (metrics_listen).
func LogAttr(tb testing.TB, p *Proc, bound time.Duration, msg, key string) string {
	tb.Helper()
	var v string
	WaitFor(tb, bound, fmt.Sprintf("a log line %q with %q", msg, key), func() bool {
		v = logAttr(p.Out.String(), msg, key)
		return v != ""
	})
	return v
}

// logAttr returns key of the last line of out whose msg is msg.
func logAttr(out, msg, key string) string {
	v := ""
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != msg {
			continue
		}
		if s, ok := m[key].(string); ok {
			v = s
		}
	}
	return v
}

// WaitFor polls cond every 50 ms until it holds, failing the test after
// bound.
func WaitFor(tb testing.TB, bound time.Duration, what string, cond func() bool) {
	tb.Helper()
	poll(tb, bound, 50*time.Millisecond, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// WaitForErr is WaitFor for a condition that says why it does not hold
// yet: cond returns nil once it holds, and the failure names its last
// error. It polls every 25 ms and returns how long the wait took, for tests
// that report or bound it.
func WaitForErr(tb testing.TB, bound time.Duration, what string, cond func() error) time.Duration {
	tb.Helper()
	return poll(tb, bound, 25*time.Millisecond, what, cond)
}

// errNotYet is WaitFor's condition not holding: it has nothing to say.
var errNotYet = errors.New("not yet")

// poll calls cond every interval until it returns nil, failing the test
// after bound, and returns the time it took.
func poll(tb testing.TB, bound, interval time.Duration, what string, cond func() error) time.Duration {
	tb.Helper()
	start := time.Now()
	deadline := start.Add(bound)
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			if errors.Is(err, errNotYet) {
				tb.Fatalf("timed out after %s waiting for %s", bound, what)
			}
			tb.Fatalf("timed out after %s waiting for %s: %v", bound, what, err)
		}
		time.Sleep(interval)
	}
}
