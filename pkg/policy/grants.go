package policy

import (
	"errors"

	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// ErrNoCIDRs is returned by AllowID and AllowRole when a grant names no
// source CIDR. A grant used to mean "from any source" without one; a leaked
// credential could then be used from anywhere, so the grant is refused
// instead and the operator writes the sources down.
var ErrNoCIDRs = errors.New(`no source CIDRs: bind the grant to the addresses it is used from, e.g. cidrs: ["10.0.0.20/32"] (a grant without cidrs is refused; write 0.0.0.0/0 and ::/0 to allow any source on purpose)`)

// ErrHolderGrant is returned by AllowID and AllowRole for a holder identity.
// Holders never receive shares from each other: a holder's credential that
// could would let one leaked holder collect a threshold.
var ErrHolderGrant = errors.New("holders are never allowed to receive shares; grant the unsealer role or an unsealer ID instead")

// IsHolderID reports whether id is a keyshare holder identity,
// spiffe://<td>/holder/<name>. The share service refuses such peers before
// any handler runs.
func IsHolderID(id string) bool {
	return identity.HasRole(id, identity.RoleHolder)
}
