package shares

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
)

// The store's two small files, format 2. Both are JSON envelopes whose body
// is authenticated with HMAC-SHA256 under a key derived from the seal key:
//
//	state.json       {"format":2,"kind":"state",...,"body":State,"mac":...}
//	generation.mark  {"format":2,"kind":"mark",...,"body":mark,"mac":...}
//
// The envelope records the KDF, its parameters and a salt, so that a
// passphrase store derives the MAC key once (cached like a file key), and a
// key check, so that a wrong seal key is told apart from a tampered file.
// The MAC binds the kind and the holder ID, so the two files cannot be
// swapped, nor moved to another holder.
//
// The mark holds the generation high-water mark (the newest generation ever
// committed) and the floor (the oldest generation still held). State is
// written first and the mark second, so a crash leaves the mark behind the
// state, never ahead of it. A state that names a current generation below
// the mark, or holds a generation below the floor, is an older state put
// back (a restored backup or a rollback), and the store refuses to open.
//
// Format 1 (keyshare before the mark) was a bare {"current":N,"staged":M}.
// OpenStore upgrades it in place: it opens every generation the old state
// names with the seal key first, then writes the mark, then the state.
const (
	storeFormat = 2
	markName    = "generation.mark"
	kindState   = "state"
	kindMark    = "mark"
	macDomain   = "keyshare/store-mac/v2\x00"
)

// Errors returned when the store's state does not open.
var (
	// ErrStateTampered is returned when state.json or generation.mark
	// fails authentication: it was edited, or comes from another holder.
	ErrStateTampered = errors.New("store state failed authentication")
	// ErrRollback is returned when state.json is older than the
	// generation mark: an old copy of the store (or of its state) was put
	// back, which would re-open a retired generation.
	ErrRollback = errors.New("store state is older than its generation mark")
)

// mark is the body of generation.mark.
type mark struct {
	High  uint64 `json:"high"`  // newest generation ever committed
	Floor uint64 `json:"floor"` // oldest generation still held
}

type envelope struct {
	Format   int             `json:"format"`
	Kind     string          `json:"kind"`
	Holder   string          `json:"holder"`
	KDF      byte            `json:"kdf"`
	Argon2   Argon2Params    `json:"argon2"`
	Salt     []byte          `json:"salt"`
	KeyCheck []byte          `json:"key_check"`
	Body     json.RawMessage `json:"body"`
	MAC      []byte          `json:"mac"`
}

// v1State is the unauthenticated state.json of format 1.
type v1State struct {
	Current uint64 `json:"current"`
	Staged  uint64 `json:"staged"`
}

// macParams are the KDF fields the store's MAC key comes from.
type macParams struct {
	kdf    byte
	params Argon2Params
	salt   []byte
}

// macKey derives the store's MAC key for p; the result is new and the
// caller zeroes it.
func (s *Store) macKey(p macParams) ([]byte, []byte, error) {
	fk, err := s.key.derive(p.kdf, p.params, p.salt)
	if err != nil {
		return nil, nil, err
	}
	m := hmac.New(sha256.New, fk)
	m.Write([]byte(macDomain))
	return m.Sum(nil), keyCheck(fk, p.salt), nil
}

func (s *Store) mac(key []byte, kind string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(macDomain))
	m.Write([]byte(kind + "\x00" + s.holder + "\x00"))
	m.Write(body)
	return m.Sum(nil)
}

// params returns the KDF fields for new envelopes: the ones already in use
// by this store, or fresh ones.
func (s *Store) params() macParams {
	if s.mp.salt != nil {
		return s.mp
	}
	kdf, p := s.key.kdf()
	salt := make([]byte, saltLen)
	_, _ = rand.Read(salt)
	s.mp = macParams{kdf: kdf, params: p, salt: salt}
	return s.mp
}

// seal wraps body in an authenticated envelope.
func (s *Store) seal(kind string, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("failed to encode store %s: %w", kind, err)
	}
	p := s.params()
	key, check, err := s.macKey(p)
	if err != nil {
		return nil, err
	}
	defer Zero(key)
	env := envelope{Format: storeFormat, Kind: kind, Holder: s.holder, KDF: p.kdf, Argon2: p.params, Salt: p.salt,
		KeyCheck: check, Body: body, MAC: s.mac(key, kind, body)}
	return json.Marshal(env)
}

// open authenticates an envelope read from path and decodes its body into v.
func (s *Store) open(path, kind string, data []byte, v any) error {
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || env.Format != storeFormat || env.Kind != kind {
		return fmt.Errorf("%s: %w: not a format-%d %s file: restore it from the newest backup of the whole store folder, or re-provision the holder", path, ErrStateTampered, storeFormat, kind)
	}
	if env.Holder != s.holder {
		return fmt.Errorf("%s: %w: it belongs to holder %q, this is %q", path, ErrStateTampered, env.Holder, s.holder)
	}
	switch env.KDF {
	case kdfRaw:
	case kdfArgon2id:
		if err := env.Argon2.validate(); err != nil {
			return fmt.Errorf("%s: %w: %w", path, ErrStateTampered, err)
		}
	default:
		return fmt.Errorf("%s: %w: unknown key derivation %d", path, ErrStateTampered, env.KDF)
	}
	if len(env.Salt) != saltLen {
		return fmt.Errorf("%s: %w: salt of %d bytes", path, ErrStateTampered, len(env.Salt))
	}
	p := macParams{kdf: env.KDF, params: env.Argon2, salt: env.Salt}
	key, check, err := s.macKey(p)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer Zero(key)
	if !hmac.Equal(check, env.KeyCheck) {
		return fmt.Errorf("%s: %w: the seal key does not open this store; check the key file or passphrase", path, ErrWrongKey)
	}
	if !hmac.Equal(s.mac(key, kind, env.Body), env.MAC) {
		return fmt.Errorf("%s: %w: it was edited or damaged: restore the newest backup of the whole store folder, or re-provision the holder", path, ErrStateTampered)
	}
	if err := json.Unmarshal(env.Body, v); err != nil {
		return fmt.Errorf("%s: %w: body: %w", path, ErrStateTampered, err)
	}
	if s.mp.salt == nil {
		s.mp = p
	}
	return nil
}

// readState reads and checks state.json and generation.mark. upgrade is set
// when state.json is of format 1 and must be rewritten.
func (s *Store) readState() (st State, upgrade bool, err error) {
	// The mark is read before the state: writers write the state first,
	// so a reader that sees a new mark then sees a state at least as new.
	markData, haveMark, err := readOptional(s.markPath())
	if err != nil {
		return State{}, false, err
	}
	data, err := ReadSecretFile(s.statePath())
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return State{}, false, err
	}
	if !missing {
		var probe struct {
			Format int `json:"format"`
		}
		if err := json.Unmarshal(data, &probe); err == nil && probe.Format == 0 {
			var v1 v1State
			if err := json.Unmarshal(data, &v1); err != nil {
				return State{}, false, fmt.Errorf("store state %s is corrupt: %w: restore it from backup or re-provision the holder", s.statePath(), err)
			}
			st, upgrade = State{Current: v1.Current, Staged: v1.Staged, Mark: v1.Current}, true
		} else if err := s.open(s.statePath(), kindState, data, &st); err != nil {
			return State{}, false, err
		}
	}
	var m mark
	if haveMark {
		if err := s.open(s.markPath(), kindMark, markData, &m); err != nil {
			return State{}, false, err
		}
	}
	switch {
	case missing && !haveMark:
		return State{}, false, nil // a new store
	case missing:
		return State{}, false, fmt.Errorf("%s is missing but %s records generation %d: %w: restore the newest backup of the whole store folder, or re-provision the holder",
			s.statePath(), s.markPath(), m.High, ErrRollback)
	}
	if !haveMark {
		if !upgrade && (st.Current != 0 || st.Mark != 0) {
			return State{}, false, fmt.Errorf("%s is missing while %s names generation %d: %w: restore the newest backup of the whole store folder, or re-provision the holder",
				s.markPath(), s.statePath(), st.Current, ErrRollback)
		}
		return st, upgrade, nil
	}
	if upgrade && (m.High != st.Current || m.Floor != st.Current) {
		// Only an upgrade cut short leaves a format-1 state beside a mark,
		// and then the two agree exactly.
		return State{}, false, fmt.Errorf("%s is in the old unauthenticated format beside %s (generation %d): %w: restore the newest backup of the whole store folder, or re-provision the holder",
			s.statePath(), s.markPath(), m.High, ErrRollback)
	}
	if err := checkMark(st, m); err != nil {
		return State{}, false, fmt.Errorf("%s against %s: %w", s.statePath(), s.markPath(), err)
	}
	return st, upgrade, nil
}

// checkMark refuses a state older than the mark.
func checkMark(st State, m mark) error {
	if st.Current < m.High {
		return fmt.Errorf("%w: the state names generation %d as current, but generation %d was committed here: "+
			"an older copy of the store was put back, which would re-open a retired generation; "+
			"restore the newest backup of the whole store folder, or re-provision the holder with 'holder import'", ErrRollback, st.Current, m.High)
	}
	for _, g := range st.held() {
		if g < m.Floor {
			return fmt.Errorf("%w: the state holds generation %d, but generations below %d were retired here: "+
				"an older copy of the store was put back; restore the newest backup of the whole store folder, or re-provision the holder with 'holder import'", ErrRollback, g, m.Floor)
		}
	}
	return nil
}

// readOptional reads a secret file that may not exist yet.
func readOptional(path string) ([]byte, bool, error) {
	data, err := ReadSecretFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// writeState writes the state, then raises the mark to match it.
func (s *Store) writeState(st State) error {
	st.Mark = max(st.Mark, st.Current)
	b, err := s.seal(kindState, st)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(s.statePath(), b); err != nil {
		return err
	}
	return s.writeMark(st)
}

func (s *Store) writeMark(st State) error {
	m := mark{High: st.Mark, Floor: st.floor()}
	b, err := s.seal(kindMark, m)
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.markPath(), b)
}

// upgradeV1 rewrites a format-1 state after proving the seal key opens
// every generation it names. The mark goes first: a crash in between leaves
// a format-1 state that agrees with the mark, and the next open finishes.
func (s *Store) upgradeV1(st State) error {
	for _, g := range st.held() {
		b, err := s.load(g)
		if err != nil {
			return fmt.Errorf("upgrading store %s to format %d: %w", s.dir, storeFormat, err)
		}
		b.Destroy()
	}
	if err := s.writeMark(st); err != nil {
		return err
	}
	b, err := s.seal(kindState, st)
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.statePath(), b)
}

// held lists every generation the state names, newest first.
func (st State) held() []uint64 {
	var out []uint64
	if st.Staged != 0 {
		out = append(out, st.Staged)
	}
	if st.Current != 0 {
		out = append(out, st.Current)
	}
	return append(out, st.Kept...)
}

// floor is the oldest committed generation still held (0 if none).
func (st State) floor() uint64 {
	f := st.Current
	for _, g := range st.Kept {
		f = min(f, g)
	}
	return f
}

// Held lists every generation the store can open: staged, current and the
// kept older ones, newest first.
func (st State) Held() []uint64 { return st.held() }

// Previous is the newest kept generation older than the current one, or 0.
func (st State) Previous() uint64 {
	if len(st.Kept) == 0 {
		return 0
	}
	return slices.Max(st.Kept)
}
