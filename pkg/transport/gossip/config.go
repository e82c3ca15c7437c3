package gossip

import (
	"crypto/tls"
	"log/slog"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// Cluster defaults. Each applies when the matching Config field is zero.
const (
	// DefaultRejoinInterval is how often the seeds are joined again, so a
	// node partitioned past GossipToTheDeadTime finds its way back.
	DefaultRejoinInterval = 30 * time.Second
	// DefaultEventBuffer is the capacity of the Events channel.
	DefaultEventBuffer = 256
)

// Config configures a Cluster.
type Config struct {
	// Name is this node's SPIFFE ID, spiffe://<td>/<role>/<name>. It must
	// equal the ID in the certificate the TLS configs present.
	Name string
	// BindAddr is the host:port to listen on; port 0 picks a free port.
	BindAddr string
	// AdvertiseAddr is the host:port others dial (default: the bound
	// address). It is required when BindAddr is 0.0.0.0.
	AdvertiseAddr string
	// Seeds are host:port addresses joined at start and every
	// RejoinInterval. This node's own address is skipped.
	Seeds []string
	// ServerTLS and ClientTLS are this node's mutual TLS configs, for
	// example from pkg/transport/identity. They are cloned and pinned to
	// TLS 1.3.
	ServerTLS, ClientTLS *tls.Config
	// Meta is gossiped to the other members. Its Role defaults to the role
	// in Name.
	Meta Meta
	// Tuning sets memberlist's timers. Zero fields take DefaultTuning's.
	Tuning Tuning
	// Roles admitted to the cluster (DefaultRoles if empty).
	Roles []identity.Role
	// Logger receives diagnostics (discarded if nil).
	Logger *slog.Logger
	// RejoinInterval is the time between seed re-joins
	// (DefaultRejoinInterval if zero; negative disables re-joins).
	RejoinInterval time.Duration
	// EventBuffer is the capacity of the Events channel.
	EventBuffer int
	// MaxPacketSize bounds incoming packet frames (DefaultMaxPacketSize).
	MaxPacketSize int
	// SourceCIDRs, if not empty, are the only source addresses gossip
	// accepts connections from (the members' hosts), as grants bind the
	// share service's callers to theirs.
	SourceCIDRs []netip.Prefix
}

// Tuning holds the memberlist timers a deployment may want to change. The
// meaning of each field is that of the memberlist.Config field of the same
// name.
type Tuning struct {
	ProbeInterval           time.Duration
	ProbeTimeout            time.Duration
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	IndirectChecks          int
	GossipInterval          time.Duration
	GossipNodes             int
	RetransmitMult          int
	PushPullInterval        time.Duration
	GossipToTheDeadTime     time.Duration
	TCPTimeout              time.Duration
}

// DefaultTuning returns memberlist's LAN defaults.
func DefaultTuning() Tuning {
	c := memberlist.DefaultLANConfig()
	return Tuning{
		ProbeInterval:           c.ProbeInterval,
		ProbeTimeout:            c.ProbeTimeout,
		SuspicionMult:           c.SuspicionMult,
		SuspicionMaxTimeoutMult: c.SuspicionMaxTimeoutMult,
		IndirectChecks:          c.IndirectChecks,
		GossipInterval:          c.GossipInterval,
		GossipNodes:             c.GossipNodes,
		RetransmitMult:          c.RetransmitMult,
		PushPullInterval:        c.PushPullInterval,
		GossipToTheDeadTime:     c.GossipToTheDeadTime,
		TCPTimeout:              c.TCPTimeout,
	}
}

// LoopbackTuning returns fast timers for several nodes on one machine: the
// tests and the local demo. It still tolerates a loaded two-core machine
// (ProbeTimeout well above loopback round trips under the race detector).
func LoopbackTuning() Tuning {
	return Tuning{
		ProbeInterval:           400 * time.Millisecond,
		ProbeTimeout:            300 * time.Millisecond,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 3,
		IndirectChecks:          3,
		GossipInterval:          100 * time.Millisecond,
		GossipNodes:             3,
		RetransmitMult:          4,
		PushPullInterval:        2 * time.Second,
		GossipToTheDeadTime:     3 * time.Second,
		TCPTimeout:              2 * time.Second,
	}
}

// withDefaults fills zero fields from DefaultTuning.
func (t Tuning) withDefaults() Tuning {
	d := DefaultTuning()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur(&t.ProbeInterval, d.ProbeInterval)
	setDur(&t.ProbeTimeout, d.ProbeTimeout)
	setInt(&t.SuspicionMult, d.SuspicionMult)
	setInt(&t.SuspicionMaxTimeoutMult, d.SuspicionMaxTimeoutMult)
	setInt(&t.IndirectChecks, d.IndirectChecks)
	setDur(&t.GossipInterval, d.GossipInterval)
	setInt(&t.GossipNodes, d.GossipNodes)
	setInt(&t.RetransmitMult, d.RetransmitMult)
	setDur(&t.PushPullInterval, d.PushPullInterval)
	setDur(&t.GossipToTheDeadTime, d.GossipToTheDeadTime)
	setDur(&t.TCPTimeout, d.TCPTimeout)
	return t
}

// apply copies the timers into a memberlist config.
func (t Tuning) apply(c *memberlist.Config) {
	c.ProbeInterval = t.ProbeInterval
	c.ProbeTimeout = t.ProbeTimeout
	c.SuspicionMult = t.SuspicionMult
	c.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	c.IndirectChecks = t.IndirectChecks
	c.GossipInterval = t.GossipInterval
	c.GossipNodes = t.GossipNodes
	c.RetransmitMult = t.RetransmitMult
	c.PushPullInterval = t.PushPullInterval
	c.GossipToTheDeadTime = t.GossipToTheDeadTime
	c.TCPTimeout = t.TCPTimeout
}
