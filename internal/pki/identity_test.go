package pki

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyshare/keyshare/internal/testkit/tlstest"
	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// The roles of keyshare's peers must be the identity package's roles.
func TestRolesMatchIdentity(t *testing.T) {
	for _, r := range Roles {
		want := r == RoleHolder || r == RoleUnsealer || r == RoleOperator
		if identity.Role(r).Valid() != want {
			t.Fatalf("identity says role %q valid=%v; want %v", r, !want, want)
		}
	}
}

// source writes a leaf made by Issue and loads it with the identity package,
// with the CA's CRL configured.
func source(t *testing.T, ca *CA, role Role, name string) (*identity.Source, *Leaf) {
	t.Helper()
	l, err := ca.Issue(LeafOptions{Role: role, Name: name, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key, err := WriteLeaf(dir, role, name, l)
	if err != nil {
		t.Fatal(err)
	}
	s, err := identity.New(identity.Options{CAFile: ca.CertPath(), CertFile: cert, KeyFile: key, CRLFile: ca.CRLPath(),
		TrustDomain: ca.TrustDomain.Name()})
	if err != nil {
		t.Fatalf("identity refuses the %s certificate made by Issue: %v", role, err)
	}
	return s, l
}

// TestIdentityAcceptsIssued: holder and unsealer certificates made by this
// package load in the identity package, authorize each other by role over a
// real handshake, and a revoked one is refused once the CRL is rewritten and
// reloaded, without a restart.
func TestIdentityAcceptsIssued(t *testing.T) {
	for _, kt := range []KeyType{KeyECDSAP256, KeyEd25519} {
		t.Run(string(kt), func(t *testing.T) {
			ca := newCA(t, kt)
			if _, err := ca.UpdateCRL(CRLOptions{}); err != nil {
				t.Fatal(err)
			}
			holder, holderLeaf := source(t, ca, RoleHolder, "a")
			unsealer, _ := source(t, ca, RoleUnsealer, "u1")
			operator, _ := source(t, ca, RoleOperator, "oncall")

			if got := holder.ID().String(); got != "spiffe://"+td+"/holder/a" || holder.Role() != identity.RoleHolder {
				t.Fatalf("holder ID %s role %s", got, holder.Role())
			}
			if err := identity.AllowRoles(identity.RoleHolder).Authorize(holder.ID()); err != nil {
				t.Fatalf("holder not authorized as a holder: %v", err)
			}
			if err := identity.AllowRoles(identity.RoleHolder).Authorize(operator.ID()); err == nil {
				t.Fatal("operator authorized as a holder")
			}
			srv := holder.ServerConfig(identity.AllowRoles(identity.RoleUnsealer))
			cli := unsealer.ClientConfig(identity.AllowRoles(identity.RoleHolder))
			if se, ce := tlstest.Handshake(t, srv, cli); se != nil || ce != nil {
				t.Fatalf("unsealer -> holder handshake: server %v, client %v", se, ce)
			}
			if se, ce := tlstest.Handshake(t, srv, operator.ClientConfig(identity.AllowRoles(identity.RoleHolder))); se == nil && ce == nil {
				t.Fatal("the holder accepted an operator where only unsealers are allowed")
			}

			if _, err := ca.Revoke(holderLeaf.Cert, CRLOptions{}); err != nil {
				t.Fatal(err)
			}
			// Before the reload the old CRL is in force: the test can fail.
			if se, ce := tlstest.Handshake(t, srv, cli); se != nil || ce != nil {
				t.Fatalf("handshake before the reload: server %v, client %v", se, ce)
			}
			if err := unsealer.Reload(); err != nil {
				t.Fatalf("unsealer reload of the new CRL: %v", err)
			}
			_, ce := tlstest.Handshake(t, srv, cli)
			if ce == nil || !strings.Contains(ce.Error(), "revoked") || !strings.Contains(ce.Error(), filepath.Base(ca.CRLPath())) {
				t.Fatalf("unsealer -> revoked holder: %v; want a refusal naming the revocation and the CRL", ce)
			}
		})
	}
}
