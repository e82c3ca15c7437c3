package shares

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStoreRollbackRefused: putting back an old state.json (with the old
// generation file) must not re-open a retired generation. On the code
// before the fix the state was plain JSON and the old generation opened.
func TestStoreRollbackRefused(t *testing.T) {
	type tc struct {
		name  string
		setup func(t *testing.T, dir, backup string)
		want  error
		hint  string // a word the error must hold
	}
	run := func(t *testing.T, tc tc) {
		s, dir, backup, key := rollbackStore(t)
		stageCommit(t, s, 1)
		for _, f := range []string{"state.json", "gen-1.sealed", markName} {
			copyFile(t, filepath.Join(dir, f), filepath.Join(backup, f))
		}
		// Two rekeys, each proven: generation 1 is retired and deleted.
		stageCommit(t, s, 2)
		if err := s.Prove(2); err != nil {
			t.Fatal(err)
		}
		stageCommit(t, s, 3)
		if err := s.Prove(3); err != nil {
			t.Fatal(err)
		}
		wantHeld(t, s, 3, 2)
		tc.setup(t, dir, backup)
		_, err := OpenStore(dir, "a", key)
		if tc.want == nil {
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			return
		}
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.hint) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("err = %v, want %v naming the folder and %q", err, tc.want, tc.hint)
		}
		if s2, err := OpenStore(dir, "a", key); err == nil {
			if b, err := s2.Load(1); err == nil {
				b.Destroy()
				t.Fatal("the retired generation 1 opens again")
			}
		}
	}
	for _, c := range []tc{
		{name: "ok/untouched", setup: func(*testing.T, string, string) {}},
		{name: "fail/old-state-and-generation-file", want: ErrRollback, hint: "restore the newest backup", setup: func(t *testing.T, dir, backup string) {
			copyFile(t, filepath.Join(backup, "state.json"), filepath.Join(dir, "state.json"))
			copyFile(t, filepath.Join(backup, "gen-1.sealed"), filepath.Join(dir, "gen-1.sealed"))
		}},
		{name: "fail/old-state-mark-deleted", want: ErrRollback, hint: markName, setup: func(t *testing.T, dir, backup string) {
			copyFile(t, filepath.Join(backup, "state.json"), filepath.Join(dir, "state.json"))
			copyFile(t, filepath.Join(backup, "gen-1.sealed"), filepath.Join(dir, "gen-1.sealed"))
			_ = os.Remove(filepath.Join(dir, markName))
		}},
		{name: "fail/state-deleted", want: ErrRollback, hint: "missing", setup: func(t *testing.T, dir, _ string) {
			_ = os.Remove(filepath.Join(dir, "state.json"))
		}},
		{name: "fail/old-unauthenticated-format", want: ErrRollback, hint: "old unauthenticated format", setup: func(t *testing.T, dir, backup string) {
			copyFile(t, filepath.Join(backup, "gen-1.sealed"), filepath.Join(dir, "gen-1.sealed"))
			if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{"current":1,"staged":0}`), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "fail/state-edited", want: ErrStateTampered, hint: "edited", setup: func(t *testing.T, dir, _ string) {
			p := filepath.Join(dir, "state.json")
			b, _ := os.ReadFile(p)
			var env envelope
			if err := json.Unmarshal(b, &env); err != nil {
				t.Fatal(err)
			}
			env.Body = bytes.Replace(env.Body, []byte(`"current":3`), []byte(`"current":2`), 1)
			b, _ = json.Marshal(env)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "fail/mark-copied-over-state", want: ErrStateTampered, hint: "state", setup: func(t *testing.T, dir, _ string) {
			copyFile(t, filepath.Join(dir, markName), filepath.Join(dir, "state.json"))
		}},
		{name: "ok/mark-behind-state-after-a-crash", setup: func(t *testing.T, dir, backup string) {
			// A crash between the state write and the mark write
			// leaves the mark behind: that is not a rollback.
			copyFile(t, filepath.Join(backup, markName), filepath.Join(dir, markName))
		}},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

// TestStoreUpgradesV1: a format-1 store (plain state.json) opens, is
// upgraded in place to the authenticated format, and keeps its generations.
// A wrong seal key leaves it untouched.
func TestStoreUpgradesV1(t *testing.T) {
	key := rawKeyT(t)
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, cur := split(t)
	_, next := split(t)
	for gen, all := range map[uint64][]Share{1: cur, 2: next} {
		data, err := Seal(key, bundleFor(t, "a", gen, all, []uint8{1, 2}))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepathGen(gen)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	v1 := []byte(`{"current":1,"staged":2}`)
	if err := os.WriteFile(filepath.Join(dir, "state.json"), v1, 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := OpenStore(dir, "a", rawKeyT(t)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key on a v1 store: err = %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "state.json")); !bytes.Equal(b, v1) {
		t.Fatal("a failed upgrade rewrote state.json")
	}
	if _, err := os.Stat(filepath.Join(dir, markName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed upgrade wrote the mark: %v", err)
	}

	s, err := OpenStore(dir, "a", key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "state.json"))
	if !bytes.Contains(b, []byte(`"format":2`)) {
		t.Fatalf("state.json not upgraded: %s", b)
	}
	st, err := s.State()
	if err != nil || st.Current != 1 || st.Staged != 2 || st.Mark != 1 {
		t.Fatalf("upgraded state %+v, %v", st, err)
	}
	if err := s.Commit(2); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, s, 2, 1)
}

func filepathGen(gen uint64) string { return filepath.Base((&Store{}).GenPath(gen)) }

// TestStoreRollbackAfterRekeys is finding 6 with nothing but the store's
// oldest API (Stage, Commit, OpenStore, Load), so that it builds and fails
// on the code before the fix: after two rekeys, state.json and
// gen-1.sealed from a backup are copied back; the store must not open.
func TestStoreRollbackAfterRekeys(t *testing.T) {
	s, dir, backup, key := rollbackStore(t)
	for gen := uint64(1); gen <= 3; gen++ {
		_, all := split(t)
		if err := s.Stage(bundleFor(t, "a", gen, all, []uint8{1, 2})); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(gen); err != nil {
			t.Fatal(err)
		}
		if gen == 1 {
			for _, f := range []string{"state.json", "gen-1.sealed"} {
				copyFile(t, filepath.Join(dir, f), filepath.Join(backup, f))
			}
		}
	}
	for _, f := range []string{"state.json", "gen-1.sealed"} {
		copyFile(t, filepath.Join(backup, f), filepath.Join(dir, f))
	}
	s2, err := OpenStore(dir, "a", key)
	if err == nil {
		if b, lerr := s2.LoadCurrent(); lerr == nil {
			b.Destroy()
			t.Fatalf("the restored generation %d opens as current", b.Generation)
		}
		t.Fatal("the store with a restored state opened")
	}
	if !strings.Contains(err.Error(), "state.json") || !strings.Contains(err.Error(), "restore the newest backup") {
		t.Fatalf("err = %v: want it to name state.json and say what to do", err)
	}
}

// TestStoreReaderDuringWrites: another process reading the store (like
// `holder status` beside the running holder) while generations are staged,
// committed and proven never sees a false rollback: the mark is read before
// the state, and written after it.
func TestStoreReaderDuringWrites(t *testing.T) {
	key := rawKeyT(t)
	dir := filepath.Join(t.TempDir(), "store")
	w, err := OpenStore(dir, "a", key)
	if err != nil {
		t.Fatal(err)
	}
	stageCommit(t, w, 1)
	r, err := OpenStore(dir, "a", key) // its own lock, as another process
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := r.State(); err != nil {
				errs <- err
				return
			}
		}
	}()
	for gen := uint64(2); gen <= 25; gen++ {
		stageCommit(t, w, gen)
		if err := w.Prove(gen); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-errs; err != nil {
		t.Fatalf("a reader saw: %v", err)
	}
}

// rollbackStore opens a new store of holder "a" in a fresh folder and
// returns it, its folder, an empty folder for backups, and its key.
func rollbackStore(t *testing.T) (s *Store, dir, backup string, key SealKey) {
	t.Helper()
	key = rawKeyT(t)
	dir = filepath.Join(t.TempDir(), "store")
	backup = t.TempDir()
	s, err := OpenStore(dir, "a", key)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir, backup, key
}
