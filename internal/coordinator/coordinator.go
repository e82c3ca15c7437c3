// Package coordinator is the unsealer's core: one watcher per Vault node
// polls its seal status, and when a node is initialized and sealed the
// coordinator collects shares from the holders, checks every one against
// the manifest that a majority of holders agree on, and submits exactly a
// threshold of verified shares, one by one, until the node reports itself
// unsealed. Collecting and submitting are internal/unseal's pipeline; this
// package decides when to run it, and what to do when Vault refuses.
//
// It never submits a share it has not verified, and never starts submitting
// without a full threshold in hand, so it never wastes an unseal attempt.
// Several coordinators at once are harmless: every share any of them submits
// is verified, and Vault ignores duplicates. Progress left by someone else
// (a person typing keys, or a coordinator that died) is left alone until it
// is older than StaleProgressAfter, then reset.
package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/internal/vaultnode"
)

// Defaults for Options. A restart is noticed by the end of the connection
// the watcher holds open to each node (ModeHeld); seal-status polls are a
// safety net then. A refused connection on a LAN costs next to nothing, so
// the coordinator polls fast while a node is down and catches it coming back.
const (
	// DefaultSafetyNetInterval between seal-status checks of a healthy node
	// whose connection is held (jittered by ±20%): it catches a restart
	// whose connection end never arrived (a proxy that keeps the client
	// side open), at this delay at most.
	DefaultSafetyNetInterval = 10 * time.Second
	// DefaultPollInterval between seal-status checks of a healthy node
	// whose connection cannot be held (ModePoll), jittered by ±20%.
	DefaultPollInterval = time.Second
	// DefaultMinHold: a held connection that ends sooner than this while
	// the node keeps running counts as closed by something in between;
	// after three in a row the node falls back to polling every
	// PollInterval, until a connection is held this long again. Vault's own
	// http_idle_timeout is 5 minutes.
	DefaultMinHold = 2 * time.Minute
	// DefaultSettleAfterLoss is how long after its held connection ended a
	// node is polled every DownInterval while the connection is not held
	// again, so that no second restart goes unseen meanwhile.
	DefaultSettleAfterLoss = 2 * time.Second
	// DefaultDownInterval between checks while the node is unreachable. A
	// refused connection on a LAN costs microseconds, and a restarted Vault
	// answers its API about 0.15 s after start, so 50 ms adds 25 ms on
	// average to a restart.
	DefaultDownInterval = 50 * time.Millisecond
	// DefaultMaxBackoff bounds the back-off after other errors.
	DefaultMaxBackoff = 10 * time.Second
	// DefaultHolderTimeout bounds one call to a holder: a holder that
	// stalls costs at most this, while the others are asked at once.
	DefaultHolderTimeout = unseal.DefaultTimeout
	// DefaultStaleProgressAfter is how long foreign unseal progress is left
	// alone before the coordinator resets it.
	DefaultStaleProgressAfter = 15 * time.Second
	// DefaultRetryAfter is the pause after a failed unseal attempt.
	DefaultRetryAfter = 500 * time.Millisecond
)

// Holders are the holders the coordinator asks: every configured holder
// at its configured address, plus any extra address gossip reported for
// one (a second ref with the same ID). Gossip never removes a holder or
// replaces its address. Total is how many holders are configured, for the
// majority rule. Commit commits a staged generation on one holder, at its
// configured address, for the fallback's settling.
type Holders interface {
	Refs() []unseal.HolderRef
	Total() int
	Commit(ctx context.Context, id string, generation uint64) error
}

// Node is a watched Vault node.
type Node struct {
	Name  string
	Vault unseal.VaultNode
}

// Options tune a Coordinator. Zero values pick the defaults.
type Options struct {
	SafetyNetInterval  time.Duration
	PollInterval       time.Duration
	MinHold            time.Duration
	SettleAfterLoss    time.Duration
	DownInterval       time.Duration
	MaxBackoff         time.Duration
	HolderTimeout      time.Duration
	StaleProgressAfter time.Duration
	RetryAfter         time.Duration
	Logger             *slog.Logger
	Metrics            *Metrics
	Notifier           Notifier
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.SafetyNetInterval, DefaultSafetyNetInterval)
	def(&o.PollInterval, DefaultPollInterval)
	def(&o.MinHold, DefaultMinHold)
	def(&o.SettleAfterLoss, DefaultSettleAfterLoss)
	def(&o.DownInterval, DefaultDownInterval)
	def(&o.MaxBackoff, DefaultMaxBackoff)
	def(&o.HolderTimeout, DefaultHolderTimeout)
	def(&o.StaleProgressAfter, DefaultStaleProgressAfter)
	def(&o.RetryAfter, DefaultRetryAfter)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Notifier == nil {
		o.Notifier = nopNotifier{}
	}
}

// Coordinator watches nodes and unseals them.
type Coordinator struct {
	nodes   []Node
	holders Holders
	o       Options

	mu    sync.Mutex
	state map[string]*NodeState
}

// NodeState is what the coordinator knows of one node, for status output.
type NodeState struct {
	Status    vaultnode.Status
	Reachable bool
	LastError string
	// Mode is how the node is watched: ModeHeld, ModePoll or ModeFast.
	Mode string
	// LastUnseal is how long the last unseal took, from the poll that saw
	// the node sealed to its confirmation of sealed: false.
	LastUnseal time.Duration
	Unseals    int
	// CannotWhy says why the last attempt could not start, if it could not.
	CannotWhy string

	ourNonce    string
	foreignSeen map[string]time.Time
}

// New makes a coordinator.
func New(nodes []Node, holders Holders, o Options) (*Coordinator, error) {
	if len(nodes) == 0 {
		return nil, errors.New("coordinator: no Vault nodes to watch")
	}
	o.defaults()
	c := &Coordinator{nodes: nodes, holders: holders, o: o, state: map[string]*NodeState{}}
	for _, n := range nodes {
		c.state[n.Name] = &NodeState{foreignSeen: map[string]time.Time{}}
	}
	return c, nil
}

// Run watches every node until ctx is done.
func (c *Coordinator) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.watch(ctx, n)
		}()
	}
	wg.Wait()
	return nil
}
