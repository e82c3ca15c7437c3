package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// TargetStatus is the holder's own view of a Vault node, from its own TLS
// connection to that node. The engine does no I/O; the holder fills this in.
type TargetStatus struct {
	// CheckedAt is when the holder got the answer. Zero means not checked.
	CheckedAt   time.Time
	Initialized bool
	Sealed      bool
	// RekeyStarted and RekeyNonce are the node's rekey state; the holder
	// fills them in only for a rekey release.
	RekeyStarted bool
	RekeyNonce   string
	// Err is why the check failed, if it did.
	Err error
}

// Request is one release request as the holder sees it.
type Request struct {
	PeerID     string // verified SPIFFE ID from the client certificate
	Source     netip.Addr
	Target     string // Vault node name
	Generation uint64
	Now        time.Time
	Status     TargetStatus
	// Held are the generations the holder can release: the current one,
	// the staged one while a rekey is in flight, and the older ones it
	// keeps until a newer one has unsealed a node.
	Held []uint64
	// RekeyNonce, when set, asks for shares to feed the target's rekey with
	// this nonce instead of an unseal. Only operators may ask.
	RekeyNonce string
}

// Grant says which rule allowed a request, for the audit log.
type Grant struct {
	Rule     string // "id:<id>", "role:<role>" or "operator:<id>"
	Operator bool
}

// Engine decides release requests. It is safe for concurrent use. Its only
// state is the per-peer rate limiter, the maintenance hold and the rekey
// approvals.
type Engine struct {
	cfg   config
	mu    sync.Mutex
	hold  string
	rates map[string]*bucket
	// approvals are the operators who asked for each rekey nonce, and
	// when (rekeyapproval.go).
	approvals map[string]map[string]time.Time
}

// New builds an engine from validated options. With no grant option nothing
// is ever allowed; New refuses such a configuration.
func New(opts ...Option) (*Engine, error) {
	c := config{
		targets:      map[string]bool{},
		maxStatusAge: DefaultMaxStatusAge,
		rate:         DefaultRate, burst: DefaultBurst,
		opRate: DefaultOperatorRate, opBurs: DefaultOperatorBurst,
		rekeyApprovals: DefaultRekeyApprovals, rekeyWindow: DefaultRekeyApprovalWindow,
	}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if c.trustDomain.IsZero() {
		return nil, errors.New("policy: no trust domain set")
	}
	for _, g := range slices.Concat(c.grants, c.operators) {
		if g.id == "" {
			continue
		}
		if id, err := identity.Parse(g.id); err != nil || !id.SPIFFE.MemberOf(c.trustDomain) {
			return nil, fmt.Errorf("policy: allowed ID %q is not in trust domain %q: no peer could ever use it; fix the ID", g.id, c.trustDomain.Name())
		}
	}
	if len(c.grants) == 0 && len(c.operators) == 0 {
		return nil, errors.New("policy: no identity is allowed; list allowed IDs or roles")
	}
	if len(c.targets) == 0 {
		return nil, errors.New("policy: no Vault nodes are known; list the nodes this holder serves")
	}
	return &Engine{cfg: c, rates: map[string]*bucket{}, approvals: map[string]map[string]time.Time{}}, nil
}

// SetHold puts the holder on maintenance hold: every release is denied with
// the reason given until ClearHold.
func (e *Engine) SetHold(reason string) {
	if reason == "" {
		reason = "maintenance"
	}
	e.mu.Lock()
	e.hold = reason
	e.mu.Unlock()
}

// ClearHold ends a maintenance hold.
func (e *Engine) ClearHold() {
	e.mu.Lock()
	e.hold = ""
	e.mu.Unlock()
}

// Hold returns the current hold reason, or "".
func (e *Engine) Hold() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hold
}

// Decide returns the grant that allows req, or a *Denial. The checks run
// from the cheapest and least revealing to the most: identity, source,
// hold, target, generation, target status, and rate last, so that a denied
// request does not spend a peer's rate.
func (e *Engine) Decide(req Request) (Grant, error) {
	g, err := e.Authorize(req.PeerID, req.Source)
	if err != nil {
		return Grant{}, err
	}
	if req.RekeyNonce != "" && !g.Operator {
		return Grant{}, Deny(ReasonOperatorRule, "rekey releases are for operator identities: run 'unsealer rekey' with an operator certificate")
	}
	if hold := e.Hold(); hold != "" {
		return Grant{}, Deny(ReasonMaintenanceHold, "holder is on hold: %s", hold)
	}
	if !e.cfg.targets[req.Target] {
		return Grant{}, Deny(ReasonUnknownTarget, "Vault node %q is not one this holder serves", req.Target)
	}
	if !slices.Contains(req.Held, req.Generation) || req.Generation == 0 {
		return Grant{}, Deny(ReasonGenerationMismatch, "generation %d asked, holder has %v", req.Generation, req.Held)
	}
	check := e.checkStatus
	if req.RekeyNonce != "" {
		check = e.checkRekey
	}
	if err := check(req); err != nil {
		return Grant{}, err
	}
	if req.RekeyNonce != "" {
		if err := e.approve(req.RekeyNonce, req.PeerID, req.Now); err != nil {
			return Grant{}, err
		}
	}
	rate, burst := e.cfg.rate, e.cfg.burst
	if g.Operator {
		rate, burst = e.cfg.opRate, e.cfg.opBurs
	}
	if !e.take(g.Rule, req.PeerID, rate, burst, req.Now) {
		return Grant{}, Deny(ReasonRateLimited, "peer %s is over %g releases per minute", req.PeerID, rate)
	}
	return g, nil
}

func (e *Engine) match(id string, role identity.Role, src netip.Addr) (Grant, error) {
	if role == identity.RoleOperator {
		for _, o := range e.cfg.operators {
			if o.id == id {
				if !inCIDRs(o.cidrs, src) {
					return Grant{}, Deny(ReasonOperatorRule, "operator %s may not connect from %s", id, src)
				}
				return Grant{Rule: "operator:" + id, Operator: true}, nil
			}
		}
		return Grant{}, Deny(ReasonPeerNotAllowed, "operator %s is not listed", id)
	}
	var badSource bool
	for _, g := range e.cfg.grants {
		if g.id != id && (g.id != "" || g.role != role) {
			continue
		}
		if !inCIDRs(g.cidrs, src) {
			badSource = true
			continue
		}
		if g.id != "" {
			return Grant{Rule: "id:" + id}, nil
		}
		return Grant{Rule: "role:" + string(role)}, nil
	}
	if badSource {
		return Grant{}, Deny(ReasonSourceNotAllowed, "%s may not connect from %s", id, src)
	}
	return Grant{}, Deny(ReasonPeerNotAllowed, "%s (role %s) is not allowed to receive shares", id, role)
}

// checkFresh denies when the holder's own look at the target failed or is
// too old to go by.
func (e *Engine) checkFresh(req Request) error {
	s := req.Status
	switch {
	case s.Err != nil:
		return Deny(ReasonTargetUnchecked, "holder could not check Vault node %q: %v", req.Target, s.Err)
	case s.CheckedAt.IsZero():
		return Deny(ReasonTargetUnchecked, "holder has not checked Vault node %q", req.Target)
	case req.Now.Sub(s.CheckedAt) > e.cfg.maxStatusAge:
		return Deny(ReasonTargetUnchecked, "holder's check of %q is %s old, limit %s", req.Target, req.Now.Sub(s.CheckedAt).Round(time.Millisecond), e.cfg.maxStatusAge)
	}
	return nil
}

// checkRekey allows a rekey release only while the target, unsealed,
// reports a rekey in progress with exactly the nonce asked for.
func (e *Engine) checkRekey(req Request) error {
	if err := e.checkFresh(req); err != nil {
		return err
	}
	s := req.Status
	switch {
	case !s.Initialized || s.Sealed:
		return Deny(ReasonTargetNotRekeying, "Vault node %q is sealed or not initialized: a rekey needs it unsealed", req.Target)
	case !s.RekeyStarted:
		return Deny(ReasonTargetNotRekeying, "Vault node %q has no rekey in progress", req.Target)
	case s.RekeyNonce != req.RekeyNonce:
		return Deny(ReasonTargetNotRekeying, "Vault node %q is rekeying with another nonce", req.Target)
	}
	return nil
}

func (e *Engine) checkStatus(req Request) error {
	if err := e.checkFresh(req); err != nil {
		return err
	}
	s := req.Status
	switch {
	case !s.Initialized:
		return Deny(ReasonTargetNotSealed, "Vault node %q is not initialized", req.Target)
	case !s.Sealed:
		return Deny(ReasonTargetNotSealed, "Vault node %q is not sealed", req.Target)
	}
	return nil
}

// inCIDRs reports whether a is in one of ps. No prefix means no source:
// New refuses grants without CIDRs, and this fails closed all the same.
func inCIDRs(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Summary describes the policy for `holder status`.
func (e *Engine) Summary() string {
	return fmt.Sprintf("trust domain %s, %d grants, %d operators, %d Vault nodes, rate %g/min burst %d, hold %q",
		e.cfg.trustDomain.Name(), len(e.cfg.grants), len(e.cfg.operators), len(e.cfg.targets), e.cfg.rate, e.cfg.burst, e.Hold())
}

// Authorize checks only who is asking and from where: the grants, the
// operator rules and the source CIDRs. The holder uses it for Stage, Commit
// and Abort, which carry no Vault target.
func (e *Engine) Authorize(peerID string, src netip.Addr) (Grant, error) {
	if peerID == "" {
		return Grant{}, Deny(ReasonUnauthenticated, "no verified client identity")
	}
	id, err := identity.Parse(peerID)
	if err != nil || !id.SPIFFE.MemberOf(e.cfg.trustDomain) {
		return Grant{}, Deny(ReasonPeerNotAllowed, "identity %q is not a keyshare ID of trust domain %q", peerID, e.cfg.trustDomain.Name())
	}
	return e.match(id.String(), id.Role, src)
}
