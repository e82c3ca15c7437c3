package unsealer

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/keyshare/keyshare/internal/coordinator"
	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/pkg/transport/gossip"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Membership is what the holder set needs of gossip.
type Membership interface {
	Members() []gossip.Member
}

// HolderSet keeps share-service clients for the configured holders. Every
// configured holder is always asked at its configured address, whatever
// gossip says: gossip is a liveness hint, and any member can forge another
// member's state or address (issue 11, finding 1). An RPC address gossip
// reports for a holder, if it differs, is only an extra address to try.
// Only configured holder IDs are ever dialed, and each connection verifies
// that exact ID, so a forged address reaches that holder or nothing.
type HolderSet struct {
	src     *identity.Source
	cfgs    []HolderConfig
	local   netip.Addr
	timeout time.Duration
	members Membership

	mu      sync.Mutex
	clients map[string]*sharerpc.Client // by ID, at the configured address
	extra   map[string]extraClient      // by ID, at the address gossip reported
}

// extraClient is a client at a gossiped address. One per holder at most:
// a member that gossips a new address for it replaces the last one, so
// forged addresses cannot pile up connections.
type extraClient struct {
	addr string
	c    *sharerpc.Client
}

var _ coordinator.Holders = (*HolderSet)(nil)

// NewHolderSet prepares clients for the configured holders.
func NewHolderSet(src *identity.Source, c Config, members Membership) *HolderSet {
	hs := &HolderSet{src: src, cfgs: c.Holders, timeout: c.Watch.HolderTimeout, members: members, clients: map[string]*sharerpc.Client{}, extra: map[string]extraClient{}}
	if c.SourceAddr != "" {
		hs.local = netip.MustParseAddr(c.SourceAddr)
	}
	return hs
}

// Total is the number of configured holders.
func (hs *HolderSet) Total() int { return len(hs.cfgs) }

// Refs returns a client for every configured holder at its configured
// address, in config order, then one for each extra address gossip
// reported for a holder (never instead of the configured one, and whatever
// state gossip gives the holder).
func (hs *HolderSet) Refs() []unseal.HolderRef {
	var out, extra []unseal.HolderRef
	gossiped := map[string]string{}
	if hs.members != nil {
		for _, m := range hs.members.Members() {
			gossiped[m.Name] = m.Meta.RPCAddr
		}
	}
	for _, h := range hs.cfgs {
		if c, err := hs.client(h.ID, h.Address); err == nil {
			out = append(out, unseal.HolderRef{ID: h.ID, Holder: c})
		}
		if a := gossiped[h.ID]; a != "" && a != h.Address {
			if c, err := hs.extraClient(h.ID, a); err == nil {
				extra = append(extra, unseal.HolderRef{ID: h.ID, Holder: c})
			}
		}
	}
	return append(out, extra...)
}

// Commit commits generation on holder id, at its configured address.
func (hs *HolderSet) Commit(ctx context.Context, id string, generation uint64) error {
	c, err := hs.Client(id)
	if err != nil {
		return err
	}
	return c.Commit(ctx, generation)
}

// Client returns the share-service client of one configured holder, at its
// configured address.
func (hs *HolderSet) Client(id string) (*sharerpc.Client, error) {
	for _, h := range hs.cfgs {
		if h.ID == id {
			return hs.client(h.ID, h.Address)
		}
	}
	return nil, fmt.Errorf("holder %s is not configured", id)
}

func (hs *HolderSet) client(id, addr string) (*sharerpc.Client, error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if c, ok := hs.clients[id]; ok {
		return c, nil
	}
	c, err := hs.dial(id, addr)
	if err != nil {
		return nil, err
	}
	hs.clients[id] = c
	return c, nil
}

func (hs *HolderSet) extraClient(id, addr string) (*sharerpc.Client, error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if e, ok := hs.extra[id]; ok {
		if e.addr == addr {
			return e.c, nil
		}
		e.c.Close()
		delete(hs.extra, id)
	}
	c, err := hs.dial(id, addr)
	if err != nil {
		return nil, err
	}
	hs.extra[id] = extraClient{addr: addr, c: c}
	return c, nil
}

// dial makes a client for holder id at addr that accepts only that ID.
func (hs *HolderSet) dial(id, addr string) (*sharerpc.Client, error) {
	sid, err := spiffeid.FromString(id)
	if err != nil {
		return nil, fmt.Errorf("holder %s: %w", id, err)
	}
	c, err := sharerpc.Dial(addr, hs.src.ClientConfig(identity.AllowIDs(sid)), sid, sharerpc.ClientOptions{CallTimeout: hs.timeout, LocalAddr: hs.local})
	if err != nil {
		return nil, fmt.Errorf("holder %s at %s: %w", id, addr, err)
	}
	return c, nil
}

// Close closes every client.
func (hs *HolderSet) Close() {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for id, c := range hs.clients {
		c.Close()
		delete(hs.clients, id)
	}
	for id, e := range hs.extra {
		e.c.Close()
		delete(hs.extra, id)
	}
}
