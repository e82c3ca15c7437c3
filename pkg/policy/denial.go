// Package policy is the holder's pure release-policy engine: a request goes
// in, a decision or a typed *Denial comes out. It knows nothing of gRPC,
// TLS or files; pkg/transport maps a Denial's Reason to a gRPC status code at
// the boundary.
package policy

import (
	"errors"
	"fmt"
)

// Reason says why a request was denied. Its string form is stable and is
// what the audit log records.
type Reason string

// The reasons a release can be denied.
const (
	// ReasonUnauthenticated: the request carried no verified identity.
	ReasonUnauthenticated Reason = "unauthenticated"
	// ReasonPeerNotAllowed: the peer's ID or role is not allowed.
	ReasonPeerNotAllowed Reason = "peer_not_allowed"
	// ReasonSourceNotAllowed: the source address is outside the CIDRs
	// bound to the peer's identity.
	ReasonSourceNotAllowed Reason = "source_not_allowed"
	// ReasonUnknownTarget: the Vault node named is not one the holder knows.
	ReasonUnknownTarget Reason = "unknown_target"
	// ReasonTargetNotSealed: the holder's own check did not see the target
	// report initialized and sealed.
	ReasonTargetNotSealed Reason = "target_not_sealed"
	// ReasonTargetNotRekeying: a rekey release was asked, but the holder's
	// own check did not see the target report a rekey with that nonce.
	ReasonTargetNotRekeying Reason = "target_not_rekeying"
	// ReasonTargetUnchecked: the holder could not check the target at all.
	ReasonTargetUnchecked Reason = "target_unchecked"
	// ReasonGenerationMismatch: the request's generation is not the one held.
	ReasonGenerationMismatch Reason = "generation_mismatch"
	// ReasonRateLimited: the peer exceeded its release rate.
	ReasonRateLimited Reason = "rate_limited"
	// ReasonMaintenanceHold: an operator put the holder on hold.
	ReasonMaintenanceHold Reason = "maintenance_hold"
	// ReasonOperatorRule: an operator identity failed its stricter rules.
	ReasonOperatorRule Reason = "operator_rule"
	// ReasonApprovalPending: a rekey release waits for more distinct
	// operator identities to ask for the same nonce (rekeyapproval.go). The
	// request counted as an approval.
	ReasonApprovalPending Reason = "approval_pending"
)

// Denial is the typed error for a refused request.
type Denial struct {
	Reason Reason
	// Detail is a human explanation, safe to send to the peer and to log.
	// It never contains share material.
	Detail string
}

func (d *Denial) Error() string {
	if d.Detail == "" {
		return "denied: " + string(d.Reason)
	}
	return fmt.Sprintf("denied: %s: %s", d.Reason, d.Detail)
}

// Deny returns a *Denial with a formatted detail.
func Deny(r Reason, format string, args ...any) *Denial {
	return &Denial{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// AsDenial reports whether err is or wraps a *Denial, and returns it.
func AsDenial(err error) (*Denial, bool) {
	var d *Denial
	ok := errors.As(err, &d)
	return d, ok
}
