package transit

import (
	"os"
	"testing"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

func testCA(t *testing.T) []byte {
	t.Helper()
	ca, err := devpki.NewCA("keyshare.test")
	if err != nil {
		t.Fatal(err)
	}
	p := t.TempDir() + "/ca.pem"
	if err := ca.WriteCA(p); err != nil {
		t.Fatal(err)
	}
	return readFile(t, p)
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
