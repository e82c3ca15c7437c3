package rig

import (
	"path/filepath"
	"testing"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// PKI is a deployment's CA, its certificate written in a temporary
// directory, and the identities it issues to holders and the unsealer,
// loaded from files as the daemons load them.
type PKI struct {
	CA  *devpki.CA
	Dir string // holds ca.crt and each identity's certificate and key
	tb  testing.TB
}

// NewPKI makes a CA for trustDomain and writes its certificate; the files
// go when the test ends.
func NewPKI(tb testing.TB, trustDomain string) *PKI {
	tb.Helper()
	ca, err := devpki.NewCA(trustDomain)
	if err != nil {
		tb.Fatalf("ca for %s: %v", trustDomain, err)
	}
	p := &PKI{CA: ca, Dir: tb.TempDir(), tb: tb}
	if err := ca.WriteCA(p.caFile()); err != nil {
		tb.Fatalf("ca for %s: %v", trustDomain, err)
	}
	return p
}

func (p *PKI) caFile() string { return filepath.Join(p.Dir, "ca.crt") }

// Source issues the SPIFFE identity role/name, writes its certificate and
// key, and loads them with the CA as an identity source.
func (p *PKI) Source(role, name string) *identity.Source {
	p.tb.Helper()
	leaf, err := p.CA.IssueID(role, name)
	if err != nil {
		p.tb.Fatalf("identity %s/%s: %v", role, name, err)
	}
	c, k, err := leaf.WriteFiles(p.Dir, role+"-"+name)
	if err != nil {
		p.tb.Fatalf("identity %s/%s: %v", role, name, err)
	}
	src, err := identity.New(identity.Options{CAFile: p.caFile(), CertFile: c, KeyFile: k})
	if err != nil {
		p.tb.Fatalf("identity %s/%s: %v", role, name, err)
	}
	return src
}
