package cliexit

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"

	"github.com/keyshare/keyshare/internal/confload"
)

// tree is a root with one subcommand "run" that takes no arguments, has a
// required flag --need, and returns runErr from its own code.
func tree(runErr error) *cobra.Command {
	root := &cobra.Command{Use: "x", SilenceUsage: true, SilenceErrors: true}
	run := &cobra.Command{
		Use:  "run",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return runErr },
	}
	run.Flags().String("need", "", "a required flag")
	_ = run.MarkFlagRequired("need")
	root.AddCommand(run)
	return root
}

func TestExitCodesByType(t *testing.T) {
	einval := fmt.Errorf("mlock /var/lib/keyshare: %w", syscall.EINVAL) // says "invalid argument"
	cases := []struct {
		name   string
		args   []string
		runErr error
		want   int
	}{
		{"ok", []string{"run", "--need", "v"}, nil, OK},
		{"help", []string{"--help"}, nil, OK},
		{"unknown-flag", []string{"run", "--need", "v", "--nope"}, nil, Config},
		{"unknown-command", []string{"nope"}, nil, Config},
		{"extra-argument", []string{"run", "--need", "v", "extra"}, nil, Config},
		{"missing-required-flag", []string{"run"}, nil, Config},
		{"usage-from-command", []string{"run", "--need", "v"}, Usagef("give --a or --b, not both"), Config},
		{"config-from-command", []string{"run", "--need", "v"}, &confload.Error{Err: errors.New("holder.yaml: bad key")}, Config},
		// A runtime error whose text looks like cobra's stays a runtime
		// error, so that systemd restarts the daemon.
		{"runtime-einval", []string{"run", "--need", "v"}, einval, Error},
		{"runtime-says-unknown-flag", []string{"run", "--need", "v"}, errors.New("peer sent unknown flag 7"), Error},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := tree(c.runErr)
			root.SetArgs(c.args)
			root.SetOut(&bytes.Buffer{})
			var stderr bytes.Buffer
			got := Execute(&stderr, "x", root)
			if got != c.want {
				t.Fatalf("exit code %d, want %d (stderr %q)", got, c.want, stderr.String())
			}
			if c.want != OK && !strings.HasPrefix(stderr.String(), "x: ") {
				t.Fatalf("stderr %q: want one line prefixed by the command name", stderr.String())
			}
		})
	}
}
