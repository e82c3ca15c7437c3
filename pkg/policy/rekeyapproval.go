package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// An operator identity can obtain shares while Vault is unsealed: Vault
// 1.21 lets anyone start a rekey through its unauthenticated sys/rekey
// endpoints, and the operator then names that rekey's nonce. (OpenBao's
// listener option disable_unauthed_rekey_endpoints closes those endpoints;
// Vault 1.21.0 has no such option and ignores it, as e2e
// TestVaultRekeyEndpointsStayOpen shows.) So one leaked operator
// credential must not be enough: a rekey release needs that many distinct
// operator identities to have asked for the same nonce, each while the
// holder itself saw the target rekeying with it, within the window. Every
// such request counts as an approval, the denied ones included; the
// request that brings the count to the rule gets the shares, and so does
// any approver asking again within the window.

// Defaults for the rekey approval rule.
const (
	// DefaultRekeyApprovals is how many distinct operator identities must
	// ask for the same rekey nonce before any of them gets shares.
	DefaultRekeyApprovals = 2
	// DefaultRekeyApprovalWindow is how long an approval counts. A Vault
	// rekey is open until it completes or is cancelled; two operators
	// starting their commands within a quarter of an hour is enough.
	DefaultRekeyApprovalWindow = 15 * time.Minute
)

// RekeyApprovals sets how many distinct operator identities (1 to 5) must
// ask for the same rekey nonce within window before any rekey release. 1
// turns the rule off: one operator credential then suffices.
func RekeyApprovals(n int, window time.Duration) Option {
	return func(c *config) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("rekey approvals %d: want 1 to 5 distinct operators (2 is the default; 1 lets one operator credential rekey alone)", n)
		}
		if window <= 0 || window > 24*time.Hour {
			return fmt.Errorf("rekey approval window %s: want between 0 and 24h", window)
		}
		c.rekeyApprovals, c.rekeyWindow = n, window
		return nil
	}
}

// approve records that operator asked for the rekey with nonce at now, and
// returns a denial until enough distinct operators have within the window.
func (e *Engine) approve(nonce, operator string, now time.Time) error {
	need := e.cfg.rekeyApprovals
	if need <= 1 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for n, byOp := range e.approvals {
		for op, at := range byOp {
			if now.Sub(at) > e.cfg.rekeyWindow {
				delete(byOp, op)
			}
		}
		if len(byOp) == 0 {
			delete(e.approvals, n)
		}
	}
	if e.approvals[nonce] == nil {
		e.approvals[nonce] = map[string]time.Time{}
	}
	e.approvals[nonce][operator] = now
	if got := len(e.approvals[nonce]); got < need {
		who := make([]string, 0, got)
		for op := range e.approvals[nonce] {
			who = append(who, op)
		}
		slices.Sort(who)
		return Deny(ReasonApprovalPending, "rekey %s needs %d distinct operator identities within %s, has %d (%s): "+
			"another operator must run 'unsealer rekey --approve %s'", nonce, need, e.cfg.rekeyWindow, got, strings.Join(who, ", "), nonce)
	}
	return nil
}
