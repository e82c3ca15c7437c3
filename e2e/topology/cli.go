package topology

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// CLI tunes one command run by Run.
type CLI struct {
	// Stdin is the command's input; none if nil.
	Stdin io.Reader
	// Env is added to the inherited environment.
	Env []string
	// AllowFail returns a non-zero exit as a Result instead of an error.
	AllowFail bool
	// SecretStdout keeps stdout out of the saved transcript (the `holder
	// export` paper backup).
	SecretStdout bool
	// RedactRootToken blanks a "Root token: ..." line in the transcript.
	RedactRootToken bool
}

// Result is what a command printed and its exit code.
type Result struct {
	Stdout, Stderr string
	Code           int
	// Transcript is the file the run was saved to.
	Transcript string
}

// Combined is stdout and stderr together.
func (r Result) Combined() string { return r.Stdout + r.Stderr }

// Run runs a one-shot command (for example `unsealer status`), bounded by
// ctx, and saves its transcript in LogDir. A non-zero exit is an error
// unless c.AllowFail.
func (t *Topology) Run(ctx context.Context, c CLI, bin string, args ...string) (Result, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = c.Stdin
	cmd.Env = append(os.Environ(), c.Env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	case err != nil:
		return res, fmt.Errorf("failed to run %s %s: %w", filepath.Base(bin), strings.Join(args, " "), err)
	}
	res.Transcript = t.saveTranscript(c, bin, args, res, time.Since(start))
	if res.Code != 0 && !c.AllowFail {
		return res, fmt.Errorf("%s %s: exit %d: %s", filepath.Base(bin), strings.Join(args, " "), res.Code,
			strings.TrimSpace(res.Stderr))
	}
	return res, nil
}

// saveTranscript writes cli-NNN-<command>.txt in LogDir and returns its
// path ("" if it could not be written).
func (t *Topology) saveTranscript(c CLI, bin string, args []string, res Result, took time.Duration) string {
	t.mu.Lock()
	t.cliSeq++
	seq := t.cliSeq
	t.mu.Unlock()
	name := filepath.Base(bin)
	if len(args) > 0 {
		name += "-" + args[0]
	}
	path := filepath.Join(t.LogDir, fmt.Sprintf("cli-%03d-%s.txt", seq, name))
	stdout := res.Stdout
	switch {
	case c.SecretStdout:
		stdout = "(secret output not saved)\n"
	case c.RedactRootToken:
		stdout = redactRootToken(stdout)
	}
	text := fmt.Sprintf("$ %s %s\n(exit %d after %s)\n---- stdout ----\n%s---- stderr ----\n%s",
		name, strings.Join(args, " "), res.Code, took.Round(time.Millisecond), stdout, res.Stderr)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.logf("topology: failed to save transcript %s: %v", path, err)
		return ""
	}
	return path
}

const rootTokenPrefix = "Root token: "

func parseRootToken(stdout string) string {
	for _, l := range strings.Split(stdout, "\n") {
		if tok, ok := strings.CutPrefix(strings.TrimSpace(l), rootTokenPrefix); ok {
			return strings.TrimSpace(tok)
		}
	}
	return ""
}

func redactRootToken(stdout string) string {
	lines := strings.Split(stdout, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), rootTokenPrefix) {
			lines[i] = rootTokenPrefix + "(redacted by e2e/topology)"
		}
	}
	return strings.Join(lines, "\n")
}

func mkdirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("failed to create folder %s: %w", d, err)
		}
	}
	return nil
}
