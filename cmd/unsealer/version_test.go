package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersionFlag builds holder and unsealer the way a release does
// (-ldflags -X, the lines of README "Versions") and checks what --version
// prints; the binaries of TestMain, built without them, print the fallback.
func TestVersionFlag(t *testing.T) {
	dir := t.TempDir()
	const pkg = "github.com/keyshare/keyshare/internal/version"
	ldflags := "-X " + pkg + ".Version=v9.8.7 -X " + pkg + ".Commit=0123abcd"
	for _, p := range []string{"../holder", "."} {
		name := filepath.Base(p)
		if name == "." {
			name = "unsealer"
		}
		bin := filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", bin, "-ldflags", ldflags, p).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", p, err, out)
		}
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --version: %v\n%s", name, err, out)
		}
		want := name + " v9.8.7 (commit 0123abcd, " + runtime.Version() + ")\n"
		if string(out) != want {
			t.Fatalf("%s --version = %q; want %q", name, out, want)
		}
	}
	out, err := exec.Command(unsealerBin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "unsealer ") || !strings.Contains(string(out), runtime.Version()) {
		t.Fatalf("unsealer --version without ldflags = %q, %v; want the fallback line", out, err)
	}
}
