package gossip

import (
	"sync"
	"time"
)

// maxProbeMarks bounds the memory spent remembering recent probes. When it
// is reached the marks are forgotten, which at worst allows extra probes.
const maxProbeMarks = 4096

// addressBook remembers, per advertised address, the SPIFFE ID that the
// certificate served at that address carried when this node last dialed it.
// It is the ground truth for the Alive and Merge delegates: a node named N at
// address A is admitted only if dialing A showed N.
type addressBook struct {
	mu       sync.Mutex
	ids      map[string]string
	probed   map[string]time.Time
	inflight map[string]bool
	now      func() time.Time
}

func newAddressBook() *addressBook {
	return &addressBook{
		ids:      make(map[string]string),
		probed:   make(map[string]time.Time),
		inflight: make(map[string]bool),
		now:      time.Now,
	}
}

// record stores the ID observed when dialing addr. A later dial overwrites
// it, so a host that is re-provisioned under another name is picked up.
func (b *addressBook) record(addr, id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ids[addr] = id
}

// lookup returns the ID last observed at addr.
func (b *addressBook) lookup(addr string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id, ok := b.ids[addr]
	return id, ok
}

// startProbe reports whether the caller should probe addr now: no probe of
// addr is in flight and the last one started at least every ago. The caller
// must call endProbe when done.
func (b *addressBook) startProbe(addr string, every time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inflight[addr] {
		return false
	}
	now := b.now()
	if last, ok := b.probed[addr]; ok && now.Sub(last) < every {
		return false
	}
	if len(b.probed) >= maxProbeMarks {
		clear(b.probed)
	}
	b.probed[addr] = now
	b.inflight[addr] = true
	return true
}

// endProbe marks the probe of addr as finished.
func (b *addressBook) endProbe(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.inflight, addr)
}
