package unsealer

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/keyshare/keyshare/internal/coordinator"
	"github.com/keyshare/keyshare/pkg/transport/gossip"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Membership is what the holder set needs of gossip.
type Membership interface {
	Members() []gossip.Member
}

// HolderSet keeps one share-service client per configured holder. Gossip,
// when present, says who is alive and where its share service listens; the
// configured address is the fallback. Only configured holder IDs are ever
// dialed, and each connection verifies that exact ID.
type HolderSet struct {
	src     *identity.Source
	cfgs    []HolderConfig
	local   netip.Addr
	timeout time.Duration
	members Membership

	mu      sync.Mutex
	clients map[string]*holderClient
}

type holderClient struct {
	addr string
	c    *sharerpc.Client
}

var _ coordinator.Holders = (*HolderSet)(nil)

// NewHolderSet prepares clients for the configured holders.
func NewHolderSet(src *identity.Source, c Config, members Membership) *HolderSet {
	hs := &HolderSet{src: src, cfgs: c.Holders, timeout: c.Watch.HolderTimeout, members: members, clients: map[string]*holderClient{}}
	if c.SourceAddr != "" {
		hs.local = netip.MustParseAddr(c.SourceAddr)
	}
	return hs
}

// Total is the number of configured holders.
func (hs *HolderSet) Total() int { return len(hs.cfgs) }

// Live returns the holders not known to be down, with their clients.
func (hs *HolderSet) Live() []coordinator.HolderRef {
	states := map[string]gossip.Member{}
	if hs.members != nil {
		for _, m := range hs.members.Members() {
			states[m.Name] = m
		}
	}
	var out []coordinator.HolderRef
	for _, h := range hs.cfgs {
		addr := h.Address
		if m, ok := states[h.ID]; ok {
			if m.State == gossip.StateDead || m.State == gossip.StateLeft {
				continue
			}
			if m.Meta.RPCAddr != "" {
				addr = m.Meta.RPCAddr
			}
		}
		c, err := hs.client(h.ID, addr)
		if err != nil {
			continue
		}
		out = append(out, coordinator.HolderRef{ID: h.ID, Holder: c})
	}
	return out
}

// All returns a client for every configured holder, alive or not, for
// status, init and rekey.
func (hs *HolderSet) All() ([]coordinator.HolderRef, error) {
	var out []coordinator.HolderRef
	for _, h := range hs.cfgs {
		c, err := hs.client(h.ID, h.Address)
		if err != nil {
			return nil, err
		}
		out = append(out, coordinator.HolderRef{ID: h.ID, Holder: c})
	}
	return out, nil
}

// Client returns the share-service client of one configured holder.
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
	if hc, ok := hs.clients[id]; ok && hc.addr == addr {
		return hc.c, nil
	}
	sid, err := spiffeid.FromString(id)
	if err != nil {
		return nil, fmt.Errorf("holder %s: %w", id, err)
	}
	c, err := sharerpc.Dial(addr, hs.src.ClientConfig(identity.AllowIDs(sid)), sid, sharerpc.ClientOptions{CallTimeout: hs.timeout, LocalAddr: hs.local})
	if err != nil {
		return nil, fmt.Errorf("holder %s at %s: %w", id, addr, err)
	}
	if old, ok := hs.clients[id]; ok {
		old.c.Close()
	}
	hs.clients[id] = &holderClient{addr: addr, c: c}
	return c, nil
}

// Close closes every client.
func (hs *HolderSet) Close() {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for id, hc := range hs.clients {
		hc.c.Close()
		delete(hs.clients, id)
	}
}

// Ping checks every configured holder's health service, in parallel.
func (hs *HolderSet) Ping(ctx context.Context) map[string]error {
	out := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range hs.cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := hs.client(h.ID, h.Address)
			if err == nil {
				err = c.Health(ctx)
			}
			mu.Lock()
			out[h.ID] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
