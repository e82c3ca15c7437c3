package shares

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Errors returned by Store.
var (
	// ErrNoGeneration is returned when the store holds no committed
	// generation yet: run `unsealer init` or `holder import`.
	ErrNoGeneration = errors.New("no committed generation")
	// ErrGenerationConflict is returned by Stage, Commit and Abort when the
	// generation asked for does not fit the store's state.
	ErrGenerationConflict = errors.New("generation conflict")
)

// State is which generations a store holds. Zero means none.
type State struct {
	Current uint64 `json:"current"`
	Staged  uint64 `json:"staged"`
}

// Store keeps one holder's sealed generations in a folder:
//
//	state.json          {"current": N, "staged": M}
//	gen-<N>.sealed      the current generation
//	gen-<M>.sealed      the staged one, during init or rekey
//
// Every write is atomic, and the folder and files must be private (0700 and
// 0600). A crash at any point leaves the committed generation usable.
type Store struct {
	dir    string
	holder string
	key    SealKey
	mu     sync.Mutex
}

// OpenStore opens (and if needed creates, with mode 0700) a store folder.
func OpenStore(dir, holderID string, key SealKey) (*Store, error) {
	if holderID == "" {
		return nil, errors.New("store needs the holder's ID")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create store folder %s: %w", dir, err)
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, holder: holderID, key: key}
	if _, err := s.State(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the store's folder.
func (s *Store) Dir() string { return s.dir }

func (s *Store) statePath() string { return filepath.Join(s.dir, "state.json") }

// GenPath returns the file that holds generation gen.
func (s *Store) GenPath(gen uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("gen-%d.sealed", gen))
}

// State reads the store's state. A store never written has the zero State.
func (s *Store) State() (State, error) {
	b, err := ReadSecretFile(s.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("store state %s is corrupt: %w: restore it from backup or re-provision the holder", s.statePath(), err)
	}
	return st, nil
}

func (s *Store) writeState(st State) error {
	b, _ := json.Marshal(st)
	return WriteFileAtomic(s.statePath(), b)
}

// Load opens generation gen, which must be the current or the staged one.
func (s *Store) Load(gen uint64) (*Bundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.State()
	if err != nil {
		return nil, err
	}
	if gen == 0 || (gen != st.Current && gen != st.Staged) {
		if st.Current == 0 {
			return nil, fmt.Errorf("store %s: %w", s.dir, ErrNoGeneration)
		}
		return nil, fmt.Errorf("store %s: %w: asked for generation %d, have current %d staged %d", s.dir, ErrGenerationConflict, gen, st.Current, st.Staged)
	}
	return s.load(gen)
}

// LoadCurrent opens the committed generation.
func (s *Store) LoadCurrent() (*Bundle, error) {
	st, err := s.State()
	if err != nil {
		return nil, err
	}
	if st.Current == 0 {
		return nil, fmt.Errorf("store %s: %w: run 'unsealer init' or 'holder import'", s.dir, ErrNoGeneration)
	}
	return s.Load(st.Current)
}

func (s *Store) load(gen uint64) (*Bundle, error) {
	path := s.GenPath(gen)
	data, err := ReadSecretFile(path)
	if err != nil {
		return nil, err
	}
	b, err := Open(s.key, data, Expect{HolderID: s.holder, Generation: gen})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// Stage writes b as the staged generation, replacing any earlier staged one.
// Its generation must be newer than the current one.
func (s *Store) Stage(b *Bundle) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.HolderID != s.holder {
		return fmt.Errorf("store %s: %w: bundle is for holder %q, this is %q", s.dir, ErrWrongHolder, b.HolderID, s.holder)
	}
	st, err := s.State()
	if err != nil {
		return err
	}
	if b.Generation <= st.Current {
		return fmt.Errorf("store %s: %w: cannot stage generation %d, current is %d", s.dir, ErrGenerationConflict, b.Generation, st.Current)
	}
	data, err := Seal(s.key, b)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(s.GenPath(b.Generation), data); err != nil {
		return err
	}
	old := st.Staged
	st.Staged = b.Generation
	if err := s.writeState(st); err != nil {
		return err
	}
	if old != 0 && old != b.Generation {
		s.remove(old)
	}
	return nil
}

// Commit makes the staged generation gen current and deletes the old one.
// Committing the generation that is already current does nothing.
func (s *Store) Commit(gen uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.State()
	if err != nil {
		return err
	}
	if gen != 0 && gen == st.Current && st.Staged == 0 {
		return nil
	}
	if gen == 0 || gen != st.Staged {
		return fmt.Errorf("store %s: %w: cannot commit generation %d, staged is %d", s.dir, ErrGenerationConflict, gen, st.Staged)
	}
	// Open it once more before it becomes the only copy.
	b, err := s.load(gen)
	if err != nil {
		return fmt.Errorf("staged generation does not open, not committing: %w", err)
	}
	b.Destroy()
	old := st.Current
	if err := s.writeState(State{Current: gen}); err != nil {
		return err
	}
	if old != 0 {
		s.remove(old)
	}
	return nil
}

// Abort drops the staged generation gen. Aborting when nothing is staged
// does nothing.
func (s *Store) Abort(gen uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.State()
	if err != nil {
		return err
	}
	if st.Staged == 0 {
		return nil
	}
	if gen != st.Staged {
		return fmt.Errorf("store %s: %w: cannot abort generation %d, staged is %d", s.dir, ErrGenerationConflict, gen, st.Staged)
	}
	if err := s.writeState(State{Current: st.Current}); err != nil {
		return err
	}
	s.remove(gen)
	return nil
}

// remove deletes a generation file that the state no longer names. A failure
// only leaves an unreferenced file behind.
func (s *Store) remove(gen uint64) {
	if err := os.Remove(s.GenPath(gen)); err == nil {
		_ = syncDir(s.dir)
	}
}
