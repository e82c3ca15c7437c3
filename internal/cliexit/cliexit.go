// Package cliexit maps command errors to the exit codes every keyshare
// command documents: 0 ok, 1 runtime error, 2 bad configuration or usage.
//
// The mapping is by type, never by message: a usage error is one cobra
// returned before the command's own code ran (unknown flag or command,
// wrong argument count, missing required flag), or one the command
// returned as *UsageError; a configuration error is a *confload.Error.
// Everything else is a runtime error (exit 1), so that systemd restarts it.
package cliexit

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyshare/keyshare/internal/confload"
)

// Exit codes shared by holder, unsealer and kmsplugin.
const (
	OK     = 0
	Error  = 1
	Config = 2 // bad flags or config: fix and rerun; systemd does not restart
)

// UsageError is a mistake in how the command was called: fix the command
// line and rerun.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is, or wraps, a *UsageError.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// Execute runs root and returns its exit code, printing any error on w as
// one line prefixed by name. An error returned before any command's Run
// or RunE started is cobra's own usage error and exits 2.
func Execute(w io.Writer, name string, root *cobra.Command) int {
	return Code(w, name, Run(root))
}

// Run executes root and returns its error, made a *UsageError when cobra
// returned it before any command's own code started.
func Run(root *cobra.Command) error {
	started := false
	markStarted(root, &started)
	err := root.Execute()
	if err != nil && !started {
		return &UsageError{Err: err}
	}
	return err
}

// markStarted wraps every command's Run and RunE so that *started is set
// when the command's own code begins.
func markStarted(c *cobra.Command, started *bool) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			*started = true
			return run(cmd, args)
		}
	} else if run := c.Run; run != nil {
		c.Run = func(cmd *cobra.Command, args []string) {
			*started = true
			run(cmd, args)
		}
	}
	for _, sub := range c.Commands() {
		markStarted(sub, started)
	}
}

// Code prints err (if any) on w as one line prefixed by the command name,
// and returns its exit code.
func Code(w io.Writer, name string, err error) int {
	if err == nil {
		return OK
	}
	fmt.Fprintf(w, "%s: %s\n", name, strings.ReplaceAll(err.Error(), "\n", " "))
	if confload.IsConfigError(err) || IsUsage(err) {
		return Config
	}
	return Error
}
