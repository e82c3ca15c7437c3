package pki

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// handshake runs one TLS handshake over loopback TCP (buffered, unlike a
// pipe, so that an alert never blocks) and returns both sides' errors.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan error, 1)
	go func() {
		c, err := lis.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		s := tls.Server(c, server)
		err = s.Handshake()
		if err == nil {
			// Read once so that the client's verdict on the server, sent
			// after the server's Finished in TLS 1.3, is seen.
			_, err = s.Read(make([]byte, 1))
		}
		done <- err
	}()
	cc, err := net.DialTimeout("tcp", lis.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = cc.SetDeadline(deadline)
	c := tls.Client(cc, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		_, clientErr = c.Write([]byte{1})
	}
	if clientErr == nil {
		// The server's verdict on the client arrives after the client's
		// Finished; a read surfaces it (or EOF once the server is done).
		_, rerr := c.Read(make([]byte, 1))
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			clientErr = rerr
		}
	}
	cc.Close()
	serverErr = <-done
	return serverErr, clientErr
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
			if se, ce := handshake(t, srv, cli); se != nil || ce != nil {
				t.Fatalf("unsealer -> holder handshake: server %v, client %v", se, ce)
			}
			if se, ce := handshake(t, srv, operator.ClientConfig(identity.AllowRoles(identity.RoleHolder))); se == nil && ce == nil {
				t.Fatal("the holder accepted an operator where only unsealers are allowed")
			}

			if _, err := ca.Revoke(holderLeaf.Cert, CRLOptions{}); err != nil {
				t.Fatal(err)
			}
			// Before the reload the old CRL is in force: the test can fail.
			if se, ce := handshake(t, srv, cli); se != nil || ce != nil {
				t.Fatalf("handshake before the reload: server %v, client %v", se, ce)
			}
			if err := unsealer.Reload(); err != nil {
				t.Fatalf("unsealer reload of the new CRL: %v", err)
			}
			_, ce := handshake(t, srv, cli)
			if ce == nil || !strings.Contains(ce.Error(), "revoked") || !strings.Contains(ce.Error(), filepath.Base(ca.CRLPath())) {
				t.Fatalf("unsealer -> revoked holder: %v; want a refusal naming the revocation and the CRL", ce)
			}
		})
	}
}
