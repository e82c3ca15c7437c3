package shares

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

// State is which generations a store holds and what it has seen of them.
// Zero means none.
type State struct {
	// Current is the committed generation: the one released first and
	// described by the Manifest call.
	Current uint64 `json:"current"`
	// Staged is the generation staged by init or rekey, not yet committed.
	Staged uint64 `json:"staged"`
	// StagedNonce is the Vault rekey nonce Staged was staged under; empty
	// for a first init.
	StagedNonce string `json:"staged_nonce,omitempty"`
	// Kept are the older committed generations still held, newest first.
	// Kept[0] is the previous generation: it is kept until a newer one
	// has unsealed a Vault node, and the last two are always kept.
	Kept []uint64 `json:"kept,omitempty"`
	// Proven is the newest generation this holder has seen unseal a Vault
	// node (or that an operator confirmed).
	Proven uint64 `json:"proven,omitempty"`
	// LastProof is the generation seen to unseal a node since the last
	// stage or commit; 0 if none.
	LastProof uint64 `json:"last_proof,omitempty"`
	// Mark is the generation high-water mark: the newest generation ever
	// committed here. Stage refuses generations at or below it.
	Mark uint64 `json:"mark"`
	// Audit is the audit log's high-water mark: the sequence number of
	// its newest entry known durable (see SetAuditMark).
	Audit uint64 `json:"audit,omitempty"`
}

// Store keeps one holder's sealed generations in a folder:
//
//	state.json          the State, authenticated (see storefile.go)
//	generation.mark     the high-water mark and floor, authenticated
//	gen-<N>.sealed      one file per generation held
//
// Every write is atomic, and the folder and files must be private (0700 and
// 0600). A crash at any point leaves the committed generation usable, and a
// generation is deleted only once a newer one has unsealed a Vault node
// (Prove) and it is not among the last two committed.
type Store struct {
	dir    string
	holder string
	key    SealKey
	mu     sync.Mutex
	mp     macParams // KDF fields of the state files, once known
}

// OpenStore opens (and if needed creates, with mode 0700) a store folder.
// A format-1 state is upgraded in place; a state older than the store's
// generation mark is refused with ErrRollback.
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

func (s *Store) markPath() string { return filepath.Join(s.dir, markName) }

// GenPath returns the file that holds generation gen.
func (s *Store) GenPath(gen uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("gen-%d.sealed", gen))
}

// State reads and authenticates the store's state. A store never written
// has the zero State.
func (s *Store) State() (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state()
}

func (s *Store) state() (State, error) {
	st, upgrade, err := s.readState()
	if err != nil {
		return State{}, err
	}
	if upgrade {
		if err := s.upgradeV1(st); err != nil {
			return State{}, err
		}
	}
	return st, nil
}

// Load opens generation gen, which must be one the store holds.
func (s *Store) Load(gen uint64) (*Bundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state()
	if err != nil {
		return nil, err
	}
	if gen == 0 || !slices.Contains(st.held(), gen) {
		if st.Current == 0 && st.Staged == 0 {
			return nil, fmt.Errorf("store %s: %w", s.dir, ErrNoGeneration)
		}
		return nil, fmt.Errorf("store %s: %w: asked for generation %d, have current %d staged %d kept %v", s.dir, ErrGenerationConflict, gen, st.Current, st.Staged, st.Kept)
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

// Stage writes b as the staged generation, replacing any earlier staged one,
// with no rekey nonce (a first init or an import). See StageFor.
func (s *Store) Stage(b *Bundle) error { return s.StageFor(b, "") }

// StageFor writes b as the staged generation, replacing any earlier staged
// one, and records the Vault rekey nonce it was staged under. Its generation
// must be newer than every generation ever committed here (the mark).
func (s *Store) StageFor(b *Bundle, nonce string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.HolderID != s.holder {
		return fmt.Errorf("store %s: %w: bundle is for holder %q, this is %q", s.dir, ErrWrongHolder, b.HolderID, s.holder)
	}
	st, err := s.state()
	if err != nil {
		return err
	}
	if b.Generation <= st.Current || b.Generation <= st.Mark {
		return fmt.Errorf("store %s: %w: cannot stage generation %d, current is %d and generations up to %d were committed here", s.dir, ErrGenerationConflict, b.Generation, st.Current, st.Mark)
	}
	data, err := Seal(s.key, b)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(s.GenPath(b.Generation), data); err != nil {
		return err
	}
	old := st.Staged
	st.Staged, st.StagedNonce, st.LastProof = b.Generation, nonce, 0
	if err := s.writeState(st); err != nil {
		return err
	}
	if old != 0 && old != b.Generation {
		s.remove(old)
	}
	return nil
}

// Commit makes the staged generation gen current. The generation it
// replaces is kept (see Prove for when older ones go). Committing the
// generation that is already current does nothing.
func (s *Store) Commit(gen uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state()
	if err != nil {
		return err
	}
	if gen != 0 && gen == st.Current && st.Staged == 0 {
		return nil
	}
	if gen == 0 || gen != st.Staged {
		return fmt.Errorf("store %s: %w: cannot commit generation %d, staged is %d", s.dir, ErrGenerationConflict, gen, st.Staged)
	}
	// Open it once more before it becomes the current copy.
	b, err := s.load(gen)
	if err != nil {
		return fmt.Errorf("staged generation does not open, not committing: %w", err)
	}
	b.Destroy()
	if st.Current != 0 {
		st.Kept = append([]uint64{st.Current}, st.Kept...)
	}
	st.Current, st.Staged, st.StagedNonce = gen, 0, ""
	if st.LastProof != gen {
		st.LastProof = 0
	}
	return s.writeAndPrune(st)
}

// Abort drops the staged generation gen. Aborting when nothing is staged
// does nothing.
func (s *Store) Abort(gen uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state()
	if err != nil {
		return err
	}
	if st.Staged == 0 {
		return nil
	}
	if gen != st.Staged {
		return fmt.Errorf("store %s: %w: cannot abort generation %d, staged is %d", s.dir, ErrGenerationConflict, gen, st.Staged)
	}
	st.Staged, st.StagedNonce = 0, ""
	if err := s.writeState(st); err != nil {
		return err
	}
	s.remove(gen)
	return nil
}

// Prove records that generation gen unsealed a Vault node: the holder saw
// it happen, or an operator says so. Then every kept generation older than
// the newest proven one goes, except the previous generation (the last two
// committed generations are always kept).
func (s *Store) Prove(gen uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state()
	if err != nil {
		return err
	}
	if gen == 0 || !slices.Contains(st.held(), gen) {
		return fmt.Errorf("store %s: %w: generation %d is not held (current %d, staged %d, kept %v)", s.dir, ErrGenerationConflict, gen, st.Current, st.Staged, st.Kept)
	}
	if st.LastProof == gen && st.Proven >= gen {
		return nil
	}
	st.Proven, st.LastProof = max(st.Proven, gen), gen
	return s.writeAndPrune(st)
}

// writeAndPrune writes st without the kept generations it may drop, then
// deletes their files.
func (s *Store) writeAndPrune(st State) error {
	var drop []uint64
	if len(st.Kept) > 1 {
		keep := st.Kept[:1:1]
		for _, g := range st.Kept[1:] {
			if g < st.Proven {
				drop = append(drop, g)
				continue
			}
			keep = append(keep, g)
		}
		st.Kept = keep
	}
	if err := s.writeState(st); err != nil {
		return err
	}
	for _, g := range drop {
		s.remove(g)
	}
	return nil
}

// remove deletes a generation file that the state no longer names. A failure
// only leaves an unreferenced file behind.
func (s *Store) remove(gen uint64) {
	if err := os.Remove(s.GenPath(gen)); err == nil {
		_ = syncDir(s.dir)
	}
}
