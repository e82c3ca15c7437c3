package shares

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPassphraseFileOpensSameFiles: LoadPassphraseFile (bytes only, no
// string copy) reads a passphrase file with a trailing newline as the
// passphrase without it, and refuses a loose mode.
func TestPassphraseFileOpensSameFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pass")
	if err := os.WriteFile(p, []byte("correct horse battery\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fast := Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}
	k1, err := LoadPassphraseFile(p, fast)
	if err != nil {
		t.Fatal(err)
	}
	defer k1.Destroy()
	k2, err := KeyFromPassphrase([]byte("correct horse battery"), fast)
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Destroy()
	_, all := split(t)
	b := bundleFor(t, "spiffe://ks.test/holder/a", 1, all, []uint8{1})
	data, err := Seal(k2, b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(k1, data, Expect{HolderID: b.HolderID, Generation: 1})
	if err != nil {
		t.Fatalf("the file key from the passphrase file differs: %v", err)
	}
	got.Destroy()
	s1, _ := Subkey(k1, "audit-chain")
	s2, _ := Subkey(k2, "audit-chain")
	s3, _ := Subkey(k2, "other")
	if string(s1) != string(s2) || string(s1) == string(s3) || len(s1) != 32 {
		t.Fatal("subkeys: same passphrase must give the same key, another purpose another key")
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPassphraseFile(p, fast); err == nil {
		t.Fatal("a 0644 passphrase file was read")
	}
}
