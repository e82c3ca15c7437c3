package unseal

import "github.com/keyshare/keyshare/pkg/shares"

// Tally counts the holders' manifests: the one held by more than half of
// all configured holders (total/2+1, whether they answered or not) is the
// one shares are checked against. It is the only place that rule lives.
// A Tally is not safe for concurrent use.
type Tally struct {
	total    int
	seen     map[string]bool
	byHash   map[shares.Digest][]string
	manifest map[shares.Digest]shares.Manifest
	winner   *shares.Digest
}

// NewTally starts a count over total configured holders.
func NewTally(total int) *Tally {
	return &Tally{total: total, seen: map[string]bool{}, byHash: map[shares.Digest][]string{}, manifest: map[shares.Digest]shares.Manifest{}}
}

// Need is how many holders must hold the same manifest.
func (t *Tally) Need() int { return t.total/2 + 1 }

// Add counts holder id's manifest m, once per holder: a second answer of
// the same holder (another address of it) is ignored. A zero generation
// (the holder holds none) or a malformed manifest does not count, and Add
// says so with counted false.
func (t *Tally) Add(id string, m shares.Manifest) (counted bool) {
	if t.seen[id] || m.Generation == 0 || m.Validate() != nil {
		return false
	}
	t.seen[id] = true
	h := m.Hash()
	t.byHash[h] = append(t.byHash[h], id)
	t.manifest[h] = m
	if t.winner == nil && len(t.byHash[h]) >= t.Need() {
		t.winner = &h
	}
	return true
}

// Majority returns the manifest a majority holds and the IDs of the
// holders that hold it, in the order they were counted; ok is false while
// there is none.
func (t *Tally) Majority() (m shares.Manifest, holders []string, ok bool) {
	if t.winner == nil {
		return shares.Manifest{}, nil, false
	}
	return t.manifest[*t.winner], t.byHash[*t.winner], true
}

// Leading returns the manifest most holders hold (the majority one when
// there is one) and how many hold it; for reports that must say what an
// unconfirmed generation would need. Ties go to the lower generation, then
// to the lower hash, so the answer does not depend on answer order.
func (t *Tally) Leading() (shares.Manifest, []string) {
	if m, ids, ok := t.Majority(); ok {
		return m, ids
	}
	var best *shares.Digest
	for h, ids := range t.byHash {
		switch {
		case best == nil, len(ids) > len(t.byHash[*best]):
		case len(ids) < len(t.byHash[*best]):
			continue
		case t.manifest[h].Generation < t.manifest[*best].Generation:
		case t.manifest[h].Generation == t.manifest[*best].Generation && string(h[:]) < string(best[:]):
		default:
			continue
		}
		h := h
		best = &h
	}
	if best == nil {
		return shares.Manifest{}, nil
	}
	return t.manifest[*best], t.byHash[*best]
}
