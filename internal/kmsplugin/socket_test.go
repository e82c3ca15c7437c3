package kmsplugin

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kms.sock")

	t.Run("ok/mode-0600-and-removed-on-close", func(t *testing.T) {
		s, err := ListenSocket(path, "")
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket mode %v (%v), want a 0600 socket", fi.Mode(), err)
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Fatalf("socket still there after Close: %v", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("left behind: %v", entries)
		}
	})

	t.Run("ok/group-0660", func(t *testing.T) {
		s, err := ListenSocket(path, strconv.Itoa(os.Getgid()))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		fi, _ := os.Lstat(path)
		if fi.Mode().Perm() != 0o660 {
			t.Fatalf("mode %v, want 0660", fi.Mode().Perm())
		}
	})

	t.Run("ok/stale-socket-removed", func(t *testing.T) {
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close() // a crash: the file stays, nobody answers
		if _, err := os.Lstat(path); err != nil {
			t.Fatal(err)
		}
		s, err := ListenSocket(path, "")
		if err != nil {
			t.Fatalf("stale socket not replaced: %v", err)
		}
		s.Close()
	})

	t.Run("fail/live-socket", func(t *testing.T) {
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if _, err := ListenSocket(path, ""); err == nil || !strings.Contains(err.Error(), "another process") {
			t.Fatalf("err = %v, want a refusal naming another process", err)
		}
	})

	for name, make := range map[string]func() error{
		"fail/regular-file": func() error { return os.WriteFile(path, []byte("precious"), 0o600) },
		"fail/directory":    func() error { return os.Mkdir(path, 0o700) },
		"fail/symlink":      func() error { return os.Symlink("/etc/passwd", path) },
	} {
		t.Run(name, func(t *testing.T) {
			if err := make(); err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(path)
			before, _ := os.Lstat(path)
			_, err := ListenSocket(path, "")
			if err == nil || !strings.Contains(err.Error(), "not a socket") {
				t.Fatalf("err = %v, want a refusal saying it is not a socket", err)
			}
			after, err := os.Lstat(path)
			if err != nil || !os.SameFile(before, after) || after.Size() != before.Size() {
				t.Fatal("the non-socket file was touched")
			}
		})
	}
}
