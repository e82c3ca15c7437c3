package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

var holderBin string

func TestMain(m *testing.M) {
	proctest.Main(m, true, func(bins map[string]string) { holderBin = bins["."] }, ".")
}

// anyPort is ip:0: the child binds a port the kernel picks, and the test
// reads it back from the child's log (boundAddrs).
func anyPort(ip string) string { return proctest.AnyPort(ip) }

// startHolder runs `holder ARGS...` until the test ends.
func startHolder(t *testing.T, args ...string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, nil, holderBin, args...)
}

// runCLI runs a one-shot holder command and returns its output (stdout
// then stderr) and exit code.
func runCLI(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	o, e, code := proctest.Run(t, stdin, nil, holderBin, args...)
	return o + e, code
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
	for _, id := range [][2]string{{"holder", "a"}, {"holder", "b"}, {"unsealer", "u1"}, {"operator", "oncall"}, {"operator", "backup"}, {"operator", "mallory"}} {
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
