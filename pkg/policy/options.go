package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// Default values for an Engine. Each can be changed with an Option.
const (
	// DefaultMaxStatusAge is how old the holder's own seal-status check of
	// the target may be. A coordinator asks right after it sees the node
	// sealed, so a few seconds is plenty.
	DefaultMaxStatusAge = 5 * time.Second
	// DefaultRate and DefaultBurst bound releases per peer: a 3-node
	// cluster restarted at once needs 3 releases; flapping nodes need a few
	// more. 30 per minute with a burst of 10 leaves room for that and for
	// two coordinators, and stops a compromised coordinator from hammering.
	DefaultRate  = 30.0 // per minute
	DefaultBurst = 10
	// DefaultOperatorRate and DefaultOperatorBurst are the stricter
	// break-glass limits: 3 per hour, one at a time.
	DefaultOperatorRate  = 3.0 / 60 // per minute
	DefaultOperatorBurst = 3
)

// Option configures an Engine. Options are validated by New.
type Option func(*config) error

type grant struct {
	id    string        // exact ID, or "" for a role grant
	role  identity.Role // role, for a role grant
	cidrs []netip.Prefix
}

type config struct {
	trustDomain   spiffeid.TrustDomain
	grants        []grant
	operators     []grant
	targets       map[string]bool
	maxStatusAge  time.Duration
	rate, opRate  float64
	burst, opBurs int
	// rekeyApprovals distinct operators must ask for a rekey nonce
	// within rekeyWindow (rekeyapproval.go).
	rekeyApprovals int
	rekeyWindow    time.Duration
}

// TrustDomain sets the only trust domain whose IDs are accepted.
func TrustDomain(td string) Option {
	return func(c *config) error {
		d, err := identity.ParseTrustDomain(td)
		if err != nil {
			return err
		}
		c.trustDomain = d
		return nil
	}
}

// AllowID allows one exact identity, bound to the given source CIDRs (at
// least one: there is no "any source" grant). Operator IDs must use
// AllowOperator; holder IDs are never allowed (holders do not receive
// shares).
func AllowID(id string, cidrs ...string) Option {
	return func(c *config) error {
		parsed, err := identity.Parse(id)
		if err != nil {
			return fmt.Errorf("allowed ID %q: %w", id, err)
		}
		switch parsed.Role {
		case identity.RoleOperator:
			return fmt.Errorf("allowed ID %q: operator identities go in the operators list, with their source CIDRs", id)
		case identity.RoleHolder:
			return fmt.Errorf("allowed ID %q: %w", id, ErrHolderGrant)
		}
		if len(cidrs) == 0 {
			return fmt.Errorf("allowed ID %q: %w", id, ErrNoCIDRs)
		}
		ps, err := parseCIDRs(cidrs)
		if err != nil {
			return fmt.Errorf("allowed ID %q: %w", id, err)
		}
		c.grants = append(c.grants, grant{id: parsed.String(), cidrs: ps})
		return nil
	}
}

// AllowRole allows every identity of a role (only unsealer), bound to the
// given source CIDRs (at least one: there is no "any source" grant).
func AllowRole(role identity.Role, cidrs ...string) Option {
	return func(c *config) error {
		switch role {
		case identity.RoleUnsealer:
		case identity.RoleHolder:
			return fmt.Errorf("allowed role %q: %w", role, ErrHolderGrant)
		default:
			return fmt.Errorf("allowed role %q: want %q (operators are listed one by one)", role, identity.RoleUnsealer)
		}
		if len(cidrs) == 0 {
			return fmt.Errorf("allowed role %q: %w", role, ErrNoCIDRs)
		}
		ps, err := parseCIDRs(cidrs)
		if err != nil {
			return fmt.Errorf("allowed role %q: %w", role, err)
		}
		c.grants = append(c.grants, grant{role: role, cidrs: ps})
		return nil
	}
}

// AllowOperator allows one break-glass operator identity. Operators must be
// bound to at least one source CIDR, and they get their own, lower rate.
func AllowOperator(id string, cidrs ...string) Option {
	return func(c *config) error {
		parsed, err := identity.ParseAs(id, identity.RoleOperator)
		if err != nil {
			return fmt.Errorf("operator %q: %w", id, err)
		}
		if len(cidrs) == 0 {
			return fmt.Errorf("operator %q: bind it to the operator workstation's address (source CIDRs are required for operators)", id)
		}
		ps, err := parseCIDRs(cidrs)
		if err != nil {
			return fmt.Errorf("operator %q: %w", id, err)
		}
		c.operators = append(c.operators, grant{id: parsed.String(), cidrs: ps})
		return nil
	}
}

// KnownTargets lists the Vault nodes (by name) the holder serves.
func KnownTargets(names ...string) Option {
	return func(c *config) error {
		for _, n := range names {
			if strings.TrimSpace(n) == "" {
				return fmt.Errorf("known targets: empty Vault node name")
			}
			c.targets[n] = true
		}
		return nil
	}
}

// MaxStatusAge sets how fresh the holder's own seal-status check must be.
func MaxStatusAge(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 || d > time.Minute {
			return fmt.Errorf("max status age %s: want between 0 and 1m", d)
		}
		c.maxStatusAge = d
		return nil
	}
}

// RateLimit sets releases per minute and burst for each non-operator peer.
func RateLimit(perMinute float64, burst int) Option {
	return rateLimit("rate limit", perMinute, burst, func(c *config) { c.rate, c.burst = perMinute, burst })
}

// OperatorRateLimit sets releases per minute and burst for each operator.
func OperatorRateLimit(perMinute float64, burst int) Option {
	return rateLimit("operator rate limit", perMinute, burst, func(c *config) { c.opRate, c.opBurs = perMinute, burst })
}

// rateLimit checks a rate and burst (what names them in the error) before
// set stores them.
func rateLimit(what string, perMinute float64, burst int, set func(*config)) Option {
	return func(c *config) error {
		if perMinute <= 0 || burst < 1 {
			return fmt.Errorf("%s %g/min burst %d: both must be positive", what, perMinute, burst)
		}
		set(c)
		return nil
	}
}

func parseCIDRs(in []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range in {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(s))
			if aerr != nil {
				return nil, fmt.Errorf("source %q is not a CIDR (like 10.0.0.0/24) or an address: %w", s, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
