// Package cliexit maps command errors to the exit codes both keyshare
// commands document: 0 ok, 1 runtime error, 2 bad configuration or usage.
package cliexit

import (
	"fmt"
	"io"
	"strings"

	"github.com/keyshare/keyshare/internal/confload"
)

// Exit codes shared by holder and unsealer.
const (
	OK     = 0
	Error  = 1
	Config = 2 // bad flags or config: fix and rerun; systemd does not restart
)

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

// IsUsage reports whether err is a cobra usage error (unknown flag or
// command, wrong argument count, missing required flag).
func IsUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown flag", "unknown command", "unknown shorthand", "accepts ", "required flag", "invalid argument"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}
