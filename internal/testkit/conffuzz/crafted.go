package conffuzz

import (
	"strings"
	"testing"

	"github.com/keyshare/keyshare/pkg/transport/identity/identitytest"
)

// IDField is a place in an example config that holds a SPIFFE ID: Old is
// the example's text there (its trust domain already identitytest's), New
// the same text with id instead, Accepts whether a config with that crafted
// ID there must load, and Want says so in words for the failure message.
type IDField struct {
	Key     string
	Old     string
	New     func(id string) string
	Accepts func(identitytest.Case) bool
	Want    string
}

// CheckCraftedIDs loads the example config at path, its trust domain made
// identitytest.TrustDomain, with each of identitytest.Crafted in each
// field (one field changed at a time), and fails unless it loads exactly
// when the field Accepts that case.
func CheckCraftedIDs(t *testing.T, path string, load func(path string) (any, error), fields ...IDField) {
	var olds []string
	for _, f := range fields {
		olds = append(olds, f.Old)
	}
	base := Example(t, path, identitytest.TrustDomain, olds...)
	for _, tc := range identitytest.Crafted {
		t.Run(tc.Name, func(t *testing.T) {
			for _, f := range fields {
				_, err := LoadText(t, strings.Replace(base, f.Old, f.New(tc.ID), 1), load)
				if (err == nil) != f.Accepts(tc) {
					t.Fatalf("%s %q: %v; want %s", f.Key, tc.ID, err, f.Want)
				}
			}
		})
	}
}
