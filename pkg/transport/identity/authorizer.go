package identity

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Authorizer decides whether a verified peer ID may talk to us. It allows a
// peer whose ID is one of IDs, or whose role is one of Roles. The zero
// Authorizer allows nobody, so a forgotten setting fails closed.
//
// Authorize on the exact ID where you can: a certificate from the same CA
// with another role must never pass a role check meant for holders or
// unsealers.
type Authorizer struct {
	// IDs are the exact SPIFFE IDs allowed.
	IDs []spiffeid.ID
	// Roles are the roles allowed, whatever the name.
	Roles []Role
}

// AllowIDs returns an Authorizer that allows exactly the given IDs.
func AllowIDs(ids ...spiffeid.ID) Authorizer {
	return Authorizer{IDs: slices.Clone(ids)}
}

// AllowRoles returns an Authorizer that allows any ID with one of the roles.
func AllowRoles(roles ...Role) Authorizer {
	return Authorizer{Roles: slices.Clone(roles)}
}

// Or returns an Authorizer that allows what a or b allows.
func (a Authorizer) Or(b Authorizer) Authorizer {
	return Authorizer{
		IDs:   append(slices.Clone(a.IDs), b.IDs...),
		Roles: append(slices.Clone(a.Roles), b.Roles...),
	}
}

// Validate reports a configuration error: an unknown role, or an ID that
// does not have the form spiffe://<trust-domain>/<role>/<name>.
func (a Authorizer) Validate() error {
	for _, r := range a.Roles {
		if !r.Valid() {
			return fmt.Errorf("authorizer: unknown role %q; use holder, unsealer or operator", r)
		}
	}
	for _, id := range a.IDs {
		if _, _, err := ParseID(id); err != nil {
			return fmt.Errorf("authorizer: %w", err)
		}
	}
	return nil
}

// Empty reports whether a allows nobody.
func (a Authorizer) Empty() bool {
	return len(a.IDs) == 0 && len(a.Roles) == 0
}

// Authorize returns nil if id is allowed, and an error naming the ID and
// what is allowed otherwise.
func (a Authorizer) Authorize(id spiffeid.ID) error {
	role, _, err := ParseID(id)
	if err != nil {
		return fmt.Errorf("peer not authorized: %w", err)
	}
	if slices.Contains(a.IDs, id) || slices.Contains(a.Roles, role) {
		return nil
	}
	return fmt.Errorf("peer %s is not authorized: allowed are %s", id, a)
}

// String lists what a allows, for error messages and logs.
func (a Authorizer) String() string {
	if a.Empty() {
		return "nobody"
	}
	var parts []string
	for _, id := range a.IDs {
		parts = append(parts, id.String())
	}
	for _, r := range a.Roles {
		parts = append(parts, "role "+string(r))
	}
	return strings.Join(parts, ", ")
}
