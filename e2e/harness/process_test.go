package harness

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newShellProcess(t *testing.T, script string) *Process {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("no sh on PATH: %v", err)
	}
	p := &Process{
		Name:        "sh-test",
		Path:        sh,
		Args:        []string{"-c", script},
		LogPath:     filepath.Join(t.TempDir(), "sh.log"),
		StopTimeout: 300 * time.Millisecond,
	}
	t.Cleanup(func() { _ = p.Kill() })
	return p
}

func TestProcess(t *testing.T) {
	type tc struct {
		script string
		act    func(*Process) error
		took   time.Duration // at least
		ready  bool          // wait for "ready" in the log before acting
	}
	run := func(t *testing.T, tc tc) {
		p := newShellProcess(t, tc.script)
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		if tc.ready {
			waitLog(t, p, "ready")
		}
		if p.PID() == 0 || !p.Running() {
			t.Fatalf("pid %d running %t after Start", p.PID(), p.Running())
		}
		if err := p.Start(); err == nil {
			t.Fatal("second Start of a running process succeeded")
		}
		start := time.Now()
		if err := tc.act(p); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < tc.took {
			t.Fatalf("stopping took %s, want at least %s", took, tc.took)
		}
		if p.Running() {
			t.Fatal("process still running")
		}
		if err := p.Kill(); !errors.Is(err, ErrNotRunning) {
			t.Fatalf("Kill of a stopped process: %v, want ErrNotRunning", err)
		}
		if err := p.KillIfRunning(); err != nil {
			t.Fatalf("KillIfRunning of a stopped process: %v, want nil", err)
		}
	}
	tests := map[string]tc{
		"ok/stop":                 {script: "echo hello; exec sleep 60", act: (*Process).Stop},
		"ok/kill":                 {script: "exec sleep 60", act: (*Process).Kill},
		"ok/kill if running":      {script: "exec sleep 60", act: (*Process).KillIfRunning},
		"ok/stop escalates":       {script: "trap '' TERM; echo ready; sleep 60 & wait", act: (*Process).Stop, took: 300 * time.Millisecond, ready: true},
		"ok/restart then kill":    {script: "exec sleep 60", act: func(p *Process) error { return errors.Join(p.Restart(), p.Kill()) }},
		"ok/exits on its own":     {script: "sleep 1; exit 3", act: waitExit},
		"ok/exit reported as err": {script: "sleep 1; exit 3", act: func(p *Process) error { return wantExitErr(p) }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { run(t, tc) })
	}
}

func waitExit(p *Process) error {
	done, _ := p.Exited()
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("process did not exit")
	}
}

func wantExitErr(p *Process) error {
	if err := waitExit(p); err != nil {
		return err
	}
	_, exitErr := p.Exited()
	var ee *exec.ExitError
	if !errors.As(exitErr(), &ee) || ee.ExitCode() != 3 {
		return errors.New("exit status 3 not reported")
	}
	return nil
}

func TestProcessLogAcrossRestarts(t *testing.T) {
	p := newShellProcess(t, "echo line-$$; exec sleep 60")
	for i := range 2 {
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		waitLogCount(t, p, "line-", i+1)
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	tail, err := p.LogTail(100)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(tail, "line-"); got != 2 {
		t.Fatalf("log holds %d lines from the process, want 2:\n%s", got, tail)
	}
	if got := strings.Count(tail, "==== harness: start #"); got != 2 {
		t.Fatalf("log holds %d start markers, want 2:\n%s", got, tail)
	}
	if tail, _ = p.LogTail(1); strings.Count(tail, "\n") != 0 {
		t.Fatalf("LogTail(1) returned several lines: %q", tail)
	}
}

func waitLog(t *testing.T, p *Process, substr string) { waitLogCount(t, p, substr, 1) }

// waitLogCount polls p's log until substr appears n times, for 10 s at most.
func waitLogCount(t *testing.T, p *Process, substr string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var tail string
	err := PollEvery(ctx, 5*time.Millisecond, fmt.Sprintf("%q %d times in the log of %s", substr, n, p.Name), func() (bool, error) {
		var err error
		tail, err = p.LogTail(1000)
		return err == nil && strings.Count(tail, substr) >= n, err
	})
	if err != nil {
		t.Fatalf("%v:\n%s", err, tail)
	}
}
