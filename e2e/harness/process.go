package harness

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultStopTimeout is how long Stop waits after SIGTERM before it sends
// SIGKILL. Vault seals and exits within a second or two on loopback.
const DefaultStopTimeout = 10 * time.Second

// killWait bounds the wait for a process to be reaped after SIGKILL.
const killWait = 10 * time.Second

// ErrNotRunning is returned by Stop and Kill when the process was never
// started or has already exited.
var ErrNotRunning = errors.New("process is not running")

// Process is one long-running child process with its output appended to a
// log file. It can be started again after it exits, so a test can kill and
// restart a daemon with the same configuration. A Process is safe for use by
// several goroutines.
type Process struct {
	// Name identifies the process in errors and log dumps, e.g. "vault-2".
	Name string
	// Path and Args are the program and its arguments (without argv[0]).
	Path string
	Args []string
	// Env is the complete environment of the process; nil inherits the
	// harness's own.
	Env []string
	// Dir is the working directory; empty means the current one.
	Dir string
	// LogPath receives stdout and stderr, appended across restarts.
	LogPath string
	// StopTimeout overrides DefaultStopTimeout when positive.
	StopTimeout time.Duration

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has been reaped
	waitErr error
	started time.Time
	starts  int
}

// Start launches the process. It fails if the process is already running.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running() {
		return fmt.Errorf("failed to start %s: already running as pid %d", p.Name, p.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("failed to open log file of %s: %w", p.Name, err)
	}
	p.starts++
	fmt.Fprintf(logf, "==== harness: start #%d of %s at %s ====\n", p.starts, p.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Dir = p.Dir
	cmd.Env = p.Env
	cmd.Stdin = nil
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("failed to start %s (%s): %w", p.Name, p.Path, err)
	}
	p.cmd = cmd
	p.started = time.Now()
	done := make(chan struct{})
	p.done = done
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// running reports whether the last started process has not exited yet.
// The caller holds p.mu.
func (p *Process) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Running reports whether the process is alive (started and not reaped).
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running()
}

// PID returns the process id of the last start, or 0 if never started.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// StartedAt returns the time of the last successful Start.
func (p *Process) StartedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

// Exited returns a channel closed when the current process exits, and the
// exit error once it has. It returns a closed channel if never started.
func (p *Process) Exited() (<-chan struct{}, func() error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	done := p.done
	if done == nil {
		c := make(chan struct{})
		close(c)
		return c, func() error { return ErrNotRunning }
	}
	return done, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.waitErr
	}
}

// Stop sends SIGTERM, waits up to StopTimeout for the process to exit, then
// sends SIGKILL. It returns ErrNotRunning if there is nothing to stop.
func (p *Process) Stop() error {
	timeout := p.StopTimeout
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	return p.signal(syscall.SIGTERM, timeout)
}

// Kill sends SIGKILL (kill -9) and waits for the process to be reaped.
func (p *Process) Kill() error {
	return p.signal(syscall.SIGKILL, 0)
}

// KillIfRunning is Kill for cleanups: a process that is not running (never
// started, exited, or killed already) is no error.
func (p *Process) KillIfRunning() error {
	if err := p.Kill(); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	return nil
}

// Restart stops the process (if running) and starts it again.
func (p *Process) Restart() error {
	if err := p.Stop(); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	return p.Start()
}

func (p *Process) signal(sig syscall.Signal, grace time.Duration) error {
	p.mu.Lock()
	if !p.running() {
		p.mu.Unlock()
		return fmt.Errorf("failed to signal %s: %w", p.Name, ErrNotRunning)
	}
	proc, done := p.cmd.Process, p.done
	p.mu.Unlock()

	if err := proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("failed to send %s to %s (pid %d): %w", sig, p.Name, proc.Pid, err)
	}
	if sig != syscall.SIGKILL {
		select {
		case <-done:
			return nil
		case <-time.After(grace):
		}
		if err := proc.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("failed to kill %s (pid %d) after %s: %w", p.Name, proc.Pid, grace, err)
		}
	}
	select {
	case <-done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("%s (pid %d) was not reaped %s after SIGKILL", p.Name, proc.Pid, killWait)
	}
}

// LogTail returns at most the last n lines of the process's log file.
func (p *Process) LogTail(n int) (string, error) {
	const maxRead = 64 << 10
	f, err := os.Open(p.LogPath)
	if err != nil {
		return "", fmt.Errorf("failed to open log file of %s: %w", p.Name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("failed to stat log file of %s: %w", p.Name, err)
	}
	off := max(st.Size()-maxRead, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return "", fmt.Errorf("failed to read log file of %s: %w", p.Name, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // first line is probably cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n"), nil
}
