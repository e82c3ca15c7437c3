package shares

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// stageCommit stages and commits generation gen of fresh shares.
func stageCommit(t *testing.T, s *Store, gen uint64) {
	t.Helper()
	_, all := split(t)
	if err := s.StageFor(bundleFor(t, "a", gen, all, []uint8{1, 2}), "nonce"); err != nil {
		t.Fatalf("stage %d: %v", gen, err)
	}
	if err := s.Commit(gen); err != nil {
		t.Fatalf("commit %d: %v", gen, err)
	}
}

func wantHeld(t *testing.T, s *Store, want ...uint64) {
	t.Helper()
	st, err := s.State()
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Held(); !slices.Equal(got, want) {
		t.Fatalf("held %v, want %v (state %+v)", got, want, st)
	}
	for _, g := range want {
		if _, err := os.Stat(s.GenPath(g)); err != nil {
			t.Fatalf("generation %d is held but its file is gone: %v", g, err)
		}
	}
	ents, _ := os.ReadDir(s.Dir())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "gen-") {
			var g uint64
			for _, w := range want {
				if e.Name() == filepath.Base(s.GenPath(w)) {
					g = w
				}
			}
			if g == 0 {
				t.Fatalf("file %s left behind, held %v", e.Name(), want)
			}
		}
	}
}

// TestStoreKeepsGenerationUntilNewerUnsealed: a commit never deletes the
// generation it replaces. A kept generation goes only once a newer one has
// unsealed a node (Prove), and the last two committed generations stay.
// On the code before the fix, Commit deleted the previous generation at once.
func TestStoreKeepsGenerationUntilNewerUnsealed(t *testing.T) {
	s, err := OpenStore(filepath.Join(t.TempDir(), "store"), "a", rawKeyT(t))
	if err != nil {
		t.Fatal(err)
	}
	stageCommit(t, s, 1)
	if err := s.Prove(1); err != nil {
		t.Fatal(err)
	}
	stageCommit(t, s, 2)
	wantHeld(t, s, 2, 1)
	// Two junk generations committed without ever unsealing anything:
	// generation 1, the last one proven, stays.
	stageCommit(t, s, 3)
	stageCommit(t, s, 4)
	wantHeld(t, s, 4, 3, 2, 1)
	if st, _ := s.State(); st.Previous() != 3 || st.Proven != 1 || st.Mark != 4 {
		t.Fatalf("state %+v: want previous 3, proven 1, mark 4", st)
	}
	// Generation 4 unseals: 1 and 2 go, 3 stays as the previous one.
	if err := s.Prove(4); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, s, 4, 3)
	// A stage does not disturb the kept ones; an abort drops only the staged.
	_, all := split(t)
	if err := s.StageFor(bundleFor(t, "a", 5, all, []uint8{1, 2}), "n5"); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, s, 5, 4, 3)
	if st, _ := s.State(); st.StagedNonce != "n5" || st.LastProof != 0 {
		t.Fatalf("after stage: %+v", st)
	}
	if err := s.Abort(5); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, s, 4, 3)
	// A proof of an old generation does not bring back anything, and
	// proving a generation not held is refused.
	if err := s.Prove(3); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.State(); st.Proven != 4 || st.LastProof != 3 {
		t.Fatalf("after proving 3: %+v", st)
	}
	if err := s.Prove(1); !errors.Is(err, ErrGenerationConflict) {
		t.Fatalf("prove of a retired generation: err = %v", err)
	}
	// The mark forbids staging a generation at or below one once
	// committed, even one no longer held.
	if err := s.Stage(bundleFor(t, "a", 2, all, []uint8{1, 2})); !errors.Is(err, ErrGenerationConflict) {
		t.Fatalf("restage of generation 2: err = %v", err)
	}
	// A proof while staged survives the commit: the new generation is
	// the proven one at once.
	if err := s.StageFor(bundleFor(t, "a", 6, all, []uint8{1, 2}), "n6"); err != nil {
		t.Fatal(err)
	}
	if err := s.Prove(6); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(6); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.State(); st.LastProof != 6 || st.Proven != 6 {
		t.Fatalf("after commit of a proven staged generation: %+v", st)
	}
	wantHeld(t, s, 6, 4)
}
