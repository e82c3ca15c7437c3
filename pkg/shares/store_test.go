package shares

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreLifecycle(t *testing.T) {
	_, all := split(t)
	_, next := split(t)
	dir := filepath.Join(t.TempDir(), "store")
	key := rawKeyT(t)
	s, err := OpenStore(dir, "a", key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadCurrent(); !errors.Is(err, ErrNoGeneration) {
		t.Fatalf("empty store: err = %v, want ErrNoGeneration", err)
	}

	// Two-phase: stage, commit.
	if err := s.Stage(bundleFor(t, "a", 1, all, []uint8{1, 2})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadCurrent(); !errors.Is(err, ErrNoGeneration) {
		t.Fatalf("staged only: err = %v", err)
	}
	if err := s.Commit(1); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(1); err != nil {
		t.Fatalf("second commit of the current generation: %v", err)
	}

	// Rekey: generation 2 staged; both open; abort drops it.
	if err := s.Stage(bundleFor(t, "a", 2, next, []uint8{1, 2})); err != nil {
		t.Fatal(err)
	}
	for _, gen := range []uint64{1, 2} {
		b, err := s.Load(gen)
		if err != nil {
			t.Fatalf("generation %d during rekey: %v", gen, err)
		}
		b.Destroy()
	}
	if err := s.Abort(2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.GenPath(2)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("aborted generation file still there: %v", err)
	}

	// Stage again and commit: the old generation is kept as the previous
	// one, since generation 2 has not unsealed anything yet.
	if err := s.Stage(bundleFor(t, "a", 2, next, []uint8{1, 2})); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(3); !errors.Is(err, ErrGenerationConflict) {
		t.Fatalf("commit of a generation not staged: err = %v", err)
	}
	if err := s.Commit(2); err != nil {
		t.Fatal(err)
	}
	b, err := s.LoadCurrent()
	if err != nil {
		t.Fatal(err)
	}
	if b.Generation != 2 || !bytes.Equal(b.Shares[0].Value, next[0].Value) {
		t.Fatalf("current is generation %d", b.Generation)
	}
	if b, err := s.Load(1); err != nil {
		t.Fatalf("previous generation: err = %v", err)
	} else {
		b.Destroy()
	}
	if _, err := s.Load(5); !errors.Is(err, ErrGenerationConflict) {
		t.Fatalf("generation never held: err = %v", err)
	}
	if err := s.Stage(bundleFor(t, "a", 2, next, []uint8{1, 2})); !errors.Is(err, ErrGenerationConflict) {
		t.Fatalf("restaging the current generation: err = %v", err)
	}
	if err := s.Stage(bundleFor(t, "b", 3, next, []uint8{3, 4})); !errors.Is(err, ErrWrongHolder) {
		t.Fatalf("staging another holder's bundle: err = %v", err)
	}

	// No temp files are left behind.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Fatalf("temp file left: %s", e.Name())
		}
	}

	// A reopened store with the wrong key refuses to open, naming the
	// authenticated state file.
	if _, err := OpenStore(dir, "a", rawKeyT(t)); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), filepath.Join(dir, "state.json")) {
		t.Fatalf("wrong key: err = %v, want ErrWrongKey naming the file", err)
	}
}

func TestStorePermissions(t *testing.T) {
	_, all := split(t)
	type tc struct {
		name  string
		setup func(t *testing.T, dir string, s *Store)
		open  bool // the failure shows at OpenStore rather than at load
		hint  string
	}
	run := func(t *testing.T, tc tc) {
		dir := filepath.Join(t.TempDir(), "store")
		s, err := OpenStore(dir, "a", rawKeyT(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Stage(bundleFor(t, "a", 1, all, []uint8{1, 2})); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(1); err != nil {
			t.Fatal(err)
		}
		tc.setup(t, dir, s)
		if tc.open {
			_, err = OpenStore(dir, "a", rawKeyT(t))
		} else {
			_, err = s.LoadCurrent()
		}
		if !errors.Is(err, ErrLoosePermissions) || !strings.Contains(err.Error(), tc.hint) {
			t.Fatalf("err = %v, want ErrLoosePermissions with hint %q", err, tc.hint)
		}
	}
	for _, c := range []tc{
		{name: "fail/folder-world-readable", open: true, hint: "chmod 700", setup: func(t *testing.T, dir string, _ *Store) {
			_ = os.Chmod(dir, 0o755)
		}},
		{name: "fail/file-group-readable", hint: "chmod 600", setup: func(t *testing.T, _ string, s *Store) {
			_ = os.Chmod(s.GenPath(1), 0o640)
		}},
		{name: "fail/state-world-writable", open: true, hint: "chmod 600", setup: func(t *testing.T, dir string, _ *Store) {
			_ = os.Chmod(filepath.Join(dir, "state.json"), 0o602)
		}},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(p, mode)
		return p
	}
	type tc struct {
		name string
		path string
		err  string
	}
	run := func(t *testing.T, tc tc) {
		k, err := LoadKeyFile(tc.path)
		if tc.err == "" {
			if err != nil {
				t.Fatal(err)
			}
			k.Destroy()
			return
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Fatalf("err = %v, want it to contain %q", err, tc.err)
		}
	}
	for _, c := range []tc{
		{name: "ok/hex-from-keygen", path: write("hex.key", NewKeyFileBytes(), 0o600)},
		{name: "ok/raw-32", path: write("raw.key", bytes.Repeat([]byte{7}, 32), 0o400)},
		{name: "fail/loose", path: write("loose.key", NewKeyFileBytes(), 0o644), err: "chmod 600"},
		{name: "fail/short", path: write("short.key", []byte("abc"), 0o600), err: "holder keygen"},
		{name: "fail/missing", path: filepath.Join(dir, "nope.key"), err: "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}

	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	if _, err := LoadCredential("hex.key"); err != nil {
		t.Fatalf("systemd credential: %v", err)
	}
	if _, err := LoadCredential("../etc/passwd"); err == nil {
		t.Fatal("credential name with a slash accepted")
	}
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	if _, err := LoadCredential("hex.key"); err == nil || !strings.Contains(err.Error(), "LoadCredential=") {
		t.Fatalf("no credentials dir: err = %v", err)
	}
}

func TestWriteFileAtomicFailureLeavesNoTrace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFileAtomic(p, []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Fatalf("file = %q", b)
	}
	// The rename fails when the target is a non-empty folder: the folder
	// must be untouched and no temp file left.
	target := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(target, "keep"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(target, []byte("x")); err == nil {
		t.Fatal("rename over a non-empty folder succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("folder holds %d entries after a failed write, want 2", len(ents))
	}
}
