// Package transcripts holds the golden transcripts of the keyshare
// commands (testdata/*.txtar, run by rogpeppe/go-internal's testscript as
// Go itself and age test their CLIs): help, bad flags and configs, exit
// codes and what is printed. Each transcript runs in its own fresh folder,
// with the real holder, unsealer and kmsplugin binaries on PATH, a fresh
// deployment's certificates under tls/, and an environment that holds
// nothing of the caller's (no KEYSHARE_* or VAULT_* variable leaks in).
//
// After a deliberate change of output, regenerate the golden files with
// UPDATE_TRANSCRIPTS=1 go test ./cmd/transcripts/ and review the diff.
//
// Besides testscript's own commands, a transcript may use:
//
//	exits N PROG ARGS...   run PROG and require exit code N exactly
//	oneline stdout|stderr  require the last command printed one line there
package transcripts

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

var binDir string

func TestMain(m *testing.M) {
	proctest.Main(m, false, func(bins map[string]string) {
		binDir = filepath.Dir(bins["../holder"])
	}, "../holder", "../unsealer", "../kmsplugin")
}

func TestTranscripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata",
		Setup:         setup,
		UpdateScripts: os.Getenv("UPDATE_TRANSCRIPTS") != "",
		// Every command here is a one-shot that fails fast; one that serves
		// instead is a bug of the transcript, reported within two minutes.
		Deadline: time.Now().Add(2 * time.Minute),
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":   exits,
			"oneline": oneline,
		},
	})
}

// setup puts the binaries first on PATH and writes a deployment's
// certificates: tls/ca.crt (trust domain keyshare.test), tls/vault-ca.crt,
// and <role>-<name>.crt/.key for holder a, unsealer u1 and operator oncall.
func setup(env *testscript.Env) error {
	env.Setenv("PATH", binDir+string(os.PathListSeparator)+env.Getenv("PATH"))
	dir := filepath.Join(env.WorkDir, "tls")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := devpki.NewCA("keyshare.test")
	if err != nil {
		return err
	}
	vca, err := devpki.NewCA("vault.test")
	if err != nil {
		return err
	}
	if err := ca.WriteCA(filepath.Join(dir, "ca.crt")); err != nil {
		return err
	}
	if err := vca.WriteCA(filepath.Join(dir, "vault-ca.crt")); err != nil {
		return err
	}
	for _, id := range [][2]string{{"holder", "a"}, {"unsealer", "u1"}, {"operator", "oncall"}} {
		leaf, err := ca.IssueID(id[0], id[1], net.ParseIP("127.0.0.1"))
		if err != nil {
			return err
		}
		if _, _, err := leaf.WriteFiles(dir, id[0]+"-"+id[1]); err != nil {
			return err
		}
	}
	return nil
}

func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

func oneline(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 || (args[0] != "stdout" && args[0] != "stderr") {
		ts.Fatalf("usage: oneline stdout|stderr")
	}
	text := ts.ReadFile(args[0])
	if n := strings.Count(strings.TrimSuffix(text, "\n"), "\n") + 1; text == "" || n != 1 {
		ts.Fatalf("%s has %d lines, want exactly one:\n%s", args[0], n, text)
	}
}
