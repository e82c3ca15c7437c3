package topology

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyshare/keyshare/pkg/shares"
)

// TestScan plants a share and a named secret in a tree of logs (one of them
// reached through a symlink) and checks that both scans find exactly what
// was planted, where it was planted.
func TestScan(t *testing.T) {
	share := shares.Share{Index: 4, Value: []byte("0123456789abcdef-share")}
	secret := []byte("vault-token-s.abcdefgh")
	root, elsewhere := t.TempDir(), t.TempDir()
	write := func(dir, name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write(root, "clean.log", "nothing to see")
	hexed := write(root, "sub/holder.log", "value="+share.Hex())
	linked := write(elsewhere, "vault.log", "token "+string(secret)+" and "+base64.RawURLEncoding.EncodeToString(secret))
	link := filepath.Join(root, "vault.log")
	if err := os.Symlink(linked, link); err != nil {
		t.Fatal(err)
	}

	var known KnownShares
	known.Add(7, share)
	leaks, files, err := known.Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	if files != 3 || len(leaks) != 1 || leaks[0] != (Leak{File: hexed, Generation: 7, Index: 4, Encoding: "hex"}) {
		t.Fatalf("Scan: %d files, leaks %v; want 3 files and share 4 of generation 7 in hex in %s", files, leaks, hexed)
	}

	sleaks, files, err := ScanSecrets(map[string][]byte{"token": secret}, root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range sleaks {
		got = append(got, l.String())
	}
	slices.Sort(got)
	// Without + or /, base64 and base64url agree: both are found.
	want := []string{link + " holds token (base64 unpadded)", link + " holds token (base64url unpadded)", link + " holds token (raw)"}
	if files != 3 || !slices.Equal(got, want) {
		t.Fatalf("ScanSecrets: %d files, leaks %q; want 3 files and %q", files, got, want)
	}

	if _, _, err := ScanSecrets(map[string][]byte{"short": []byte("abc")}, root); err == nil || !strings.Contains(err.Error(), "short") {
		t.Fatalf("ScanSecrets of a 3-byte secret: %v, want an error naming it", err)
	}
}
