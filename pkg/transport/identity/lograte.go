package identity

import (
	"net"
	"time"

	"github.com/keyshare/keyshare/pkg/transport/lograte"
)

// Refused handshakes are logged at most refusalBurst times per source
// address per refusalWindow: anyone who can reach a holder's port can make
// it refuse a handshake, so one warning each would let any host fill the
// holder's log (and disk) at the rate it can connect. The next line logged
// for a source says how many were left out before it.
const (
	refusalWindow = time.Minute
	refusalBurst  = 5
	// maxRefusalSources bounds the sources tracked; beyond it they are
	// forgotten, which at worst logs a few lines more.
	maxRefusalSources = 4096
)

// refusalLimiter decides which refused handshakes are logged, by host.
type refusalLimiter struct{ *lograte.Limiter[string] }

func newRefusalLimiter() *refusalLimiter {
	return &refusalLimiter{lograte.New[string](refusalWindow, refusalBurst, maxRefusalSources)}
}

// allow reports whether a refusal of remote (host:port) is logged, and how
// many refusals of its host were left out since the last logged one.
func (l *refusalLimiter) allow(remote string) (bool, int) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	return l.Allow(host)
}
