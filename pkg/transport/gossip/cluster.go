package gossip

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// Cluster is this node's membership in the gossip cluster.
type Cluster struct {
	name      string
	role      identity.Role
	ml        *memberlist.Memberlist
	transport *Transport
	view      *view
	meta      *metaDelegate
	seeds     []string
	tuning    Tuning
	log       *slog.Logger
	hints     *hinter

	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
}

// New starts the transport and memberlist, joins the seeds (a failure is
// logged, not returned: the re-join loop keeps trying) and returns the
// running cluster.
func New(cfg Config) (*Cluster, error) {
	id, role, metaBytes, err := checkConfig(&cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = discardLogger()
	}
	log = log.With("node", cfg.Name)
	tuning := cfg.Tuning.withDefaults()
	if cfg.RejoinInterval == 0 {
		cfg.RejoinInterval = DefaultRejoinInterval
	}
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = DefaultEventBuffer
	}

	v := newView(cfg.EventBuffer, tuning.GossipToTheDeadTime, log)
	hints := newHinter(log)
	t, err := NewTransport(TransportConfig{
		Name:          cfg.Name,
		OnHint:        hints.hint,
		SourceCIDRs:   cfg.SourceCIDRs,
		BindAddr:      cfg.BindAddr,
		AdvertiseAddr: cfg.AdvertiseAddr,
		ServerTLS:     cfg.ServerTLS,
		ClientTLS:     cfg.ClientTLS,
		TrustDomain:   id.TrustDomain(),
		Roles:         cfg.Roles,
		Logger:        log,
		MaxPacketSize: cfg.MaxPacketSize,
		DialTimeout:   tuning.TCPTimeout,
		OnLeave:       v.noteLeaving,
	})
	if err != nil {
		return nil, err
	}
	if err := t.policy.check(id); err != nil {
		_ = t.Shutdown()
		return nil, fmt.Errorf("gossip: this node may not join: %w", err)
	}
	c := &Cluster{
		name:      cfg.Name,
		role:      role,
		transport: t,
		view:      v,
		meta:      &metaDelegate{meta: metaBytes},
		tuning:    tuning,
		log:       log,
		stop:      make(chan struct{}),
	}
	for _, s := range cfg.Seeds {
		if s != t.AdvertiseAddr() {
			c.seeds = append(c.seeds, s)
		}
	}

	if err := c.start(cfg, t, hints); err != nil {
		return nil, err
	}
	return c, nil
}

// checkConfig checks the node name (a keyshare ID), that the node's own
// certificates carry it, and the metadata, whose role it fills in.
func checkConfig(cfg *Config) (spiffeid.ID, identity.Role, []byte, error) {
	id, role, err := parseMemberID(cfg.Name)
	if err != nil {
		return spiffeid.ID{}, "", nil, fmt.Errorf("gossip: bad node name: %w", err)
	}
	for _, tc := range []*tls.Config{cfg.ServerTLS, cfg.ClientTLS} {
		if err := checkOwnCert(tc, cfg.Name); err != nil {
			return spiffeid.ID{}, "", nil, err
		}
	}
	if cfg.Meta.Role == "" {
		cfg.Meta.Role = role
	} else if cfg.Meta.Role != role {
		return spiffeid.ID{}, "", nil, fmt.Errorf("gossip: Meta.Role %q differs from the role %q in node name %s", cfg.Meta.Role, role, cfg.Name)
	}
	metaBytes, err := EncodeMeta(cfg.Meta)
	if err != nil {
		return spiffeid.ID{}, "", nil, fmt.Errorf("gossip node %s: %w", cfg.Name, err)
	}
	return id, role, metaBytes, nil
}

// start creates the memberlist node over transport t, joins the seeds (a
// failure is logged: the re-join loop keeps trying) and starts the re-join
// loop. On error it shuts t down.
func (c *Cluster) start(cfg Config, t *Transport, hints *hinter) error {
	tuning, log := c.tuning, c.log
	mc := memberlist.DefaultLANConfig()
	tuning.apply(mc)
	mc.Name = cfg.Name
	mc.Transport = t
	mc.AdvertiseAddr = ""
	mc.EnableCompression = false // checkPacket refuses compressed packets
	mc.Delegate = c.meta
	mc.Events = c.view
	adm := &admission{t: t, self: cfg.Name, selfAddr: t.AdvertiseAddr()}
	mc.Alive, mc.Merge = adm, adm
	mc.Logger = memberlistLogger(log)
	var err error
	if c.ml, err = memberlist.Create(mc); err != nil {
		_ = t.Shutdown()
		return fmt.Errorf("failed to start gossip node %s on %s: %w", cfg.Name, t.Addr(), err)
	}
	c.hints = hints
	hints.start(c)
	if len(c.seeds) > 0 {
		if _, err := c.Join(c.seeds); err != nil {
			log.Warn("initial gossip join failed; will retry", "seeds", c.seeds, "err", err)
		}
	}
	if cfg.RejoinInterval > 0 && len(c.seeds) > 0 {
		c.done.Add(1)
		go c.rejoinLoop(cfg.RejoinInterval)
	}
	return nil
}

// checkOwnCert fails if tc statically presents a certificate whose ID is not
// name. Configs that pick certificates dynamically are checked by peers.
func checkOwnCert(tc *tls.Config, name string) error {
	if tc == nil || len(tc.Certificates) == 0 || len(tc.Certificates[0].Certificate) == 0 {
		return nil
	}
	leaf := tc.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(tc.Certificates[0].Certificate[0]); err != nil {
			return fmt.Errorf("gossip node %s: failed to parse own certificate: %w", name, err)
		}
	}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return fmt.Errorf("gossip node %s: own certificate has no usable SPIFFE ID: %w", name, err)
	}
	if id.String() != name {
		return fmt.Errorf("gossip node name %s differs from the ID %s in its own certificate", name, id)
	}
	return nil
}

// rejoinLoop joins the seeds every interval (hashicorp/memberlist#222).
func (c *Cluster) rejoinLoop(every time.Duration) {
	defer c.done.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
			if n, err := c.Join(c.seeds); err != nil {
				c.log.Debug("gossip re-join failed", "seeds", c.seeds, "joined", n, "err", err)
			}
		}
	}
}

// Join contacts addrs (host:port) and merges state with each one that
// answers. It returns how many answered; the error lists the others.
func (c *Cluster) Join(addrs []string) (int, error) {
	n, err := c.ml.Join(addrs)
	if err != nil {
		return n, fmt.Errorf("gossip node %s failed to join %v: %w", c.name, addrs, err)
	}
	return n, nil
}

// Name returns this node's SPIFFE ID.
func (c *Cluster) Name() string { return c.name }

// AdvertiseAddr returns the host:port other members dial to reach this node.
func (c *Cluster) AdvertiseAddr() string { return c.transport.AdvertiseAddr() }

// Members returns the cluster as this node sees it, sorted by name, itself
// included. Dead and left members stay listed for GossipToTheDeadTime.
func (c *Cluster) Members() []Member { return c.view.list() }

// Events returns the membership events. The channel is closed by Shutdown.
// Events are dropped (and a warning logged) if it is not drained.
func (c *Cluster) Events() <-chan Event { return c.view.events }

// UpdateMeta replaces this node's metadata and gossips it. It returns an
// error wrapping ErrMetaTooLarge, leaving the old metadata in place, if the
// new one does not fit.
func (c *Cluster) UpdateMeta(m Meta) error {
	if m.Role == "" {
		m.Role = c.role
	} else if m.Role != c.role {
		return fmt.Errorf("gossip node %s: Meta.Role %q differs from the node's role %q", c.name, m.Role, c.role)
	}
	b, err := EncodeMeta(Meta{Role: m.Role, RPCAddr: m.RPCAddr, Generation: m.Generation,
		Shares: slices.Clone(m.Shares), ManifestHash: slices.Clone(m.ManifestHash), Version: m.Version})
	if err != nil {
		return fmt.Errorf("gossip node %s: %w", c.name, err)
	}
	c.meta.set(b)
	if err := c.ml.UpdateNode(c.tuning.TCPTimeout); err != nil {
		return fmt.Errorf("gossip node %s updated its metadata but could not confirm the broadcast: %w", c.name, err)
	}
	return nil
}

// Leave announces a graceful departure and waits up to timeout for it to
// spread. Call Shutdown afterwards.
func (c *Cluster) Leave(timeout time.Duration) error {
	c.stopRejoin()
	c.view.noteLeaving(c.name)
	if err := c.ml.Leave(timeout); err != nil {
		return fmt.Errorf("gossip node %s failed to leave: %w", c.name, err)
	}
	return nil
}

// Shutdown stops gossip at once, without telling the others (they will
// declare this node failed), and closes the Events channel.
func (c *Cluster) Shutdown() error {
	c.stopRejoin()
	err := c.ml.Shutdown()
	c.view.close()
	if err != nil {
		return fmt.Errorf("failed to shut down gossip node %s: %w", c.name, err)
	}
	return nil
}

func (c *Cluster) stopRejoin() {
	c.stopOnce.Do(func() { close(c.stop) })
	c.done.Wait()
	if c.hints != nil {
		c.hints.stop()
	}
}

// hintEvery is the shortest time between two direct joins of one address
// asked for by hints; maxHintJoins bounds those running at once.
const (
	hintEvery    = 2 * time.Second
	maxHintJoins = 4
)

// hinter turns "a member relayed news about X at addr" into a direct
// push/pull with addr, so that this node learns of X from X itself (see
// speakfor.go). It never blocks the transport: a hint that cannot run now
// is dropped, and gossip repeats itself.
type hinter struct {
	log    *slog.Logger
	mu     sync.Mutex
	c      *Cluster
	closed bool
	last   map[string]time.Time
	sem    chan struct{}
	wg     sync.WaitGroup
}

// stop waits for the joins in flight; later hints are ignored.
func (h *hinter) stop() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.wg.Wait()
}

func newHinter(log *slog.Logger) *hinter {
	return &hinter{log: log, last: map[string]time.Time{}, sem: make(chan struct{}, maxHintJoins)}
}

func (h *hinter) start(c *Cluster) {
	h.mu.Lock()
	h.c = c
	h.mu.Unlock()
}

func (h *hinter) hint(node, addr string, newer bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.c
	if c == nil || h.closed || time.Since(h.last[addr]) < hintEvery {
		return
	}
	if !newer && c.view.state(node) == StateAlive {
		return // nothing this node does not know already
	}
	select {
	case h.sem <- struct{}{}:
	default:
		return
	}
	if len(h.last) >= maxProbeMarks {
		clear(h.last)
	}
	h.last[addr] = time.Now()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer func() { <-h.sem }()
		if _, err := c.ml.Join([]string{addr}); err != nil {
			h.log.Debug("gossip: could not ask a member directly", "member", node, "addr", addr, "err", err)
		}
	}()
}
