package sharerpc

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc/sharepb"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// attacker is a client config that presents leaf (if any) and trusts any
// server, the way a hostile client would connect.
func attacker(leaf *devpki.Leaf) *tls.Config {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true,
		VerifyConnection:   func(tls.ConnectionState) error { return nil },
	}
	if leaf != nil {
		c.Certificates = []tls.Certificate{leaf.TLSCertificate()}
	}
	return c
}

func TestRefusedBeforeHandler(t *testing.T) {
	type tc struct {
		// client returns the client TLS config; nil means plaintext.
		client func(t *testing.T, f *fixture) *tls.Config
		ok     bool
		// wantID is the peer ID the handler must see when ok.
		wantID func(f *fixture) string
		// wantLog is the reason the holder logs for a refusal made after
		// the TLS version is agreed.
		wantLog string
	}
	issue := func(t *testing.T, ca *devpki.CA, opts devpki.LeafOptions) *devpki.Leaf {
		l, err := ca.Issue(opts)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	expectHolder := identity.AllowRoles(identity.RoleHolder)
	run := func(t *testing.T, c tc) {
		f := newFixture(t)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		var err error
		if c.client == nil {
			conn, cerr := grpc.NewClient("passthrough:///"+f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if cerr != nil {
				t.Fatal(cerr)
			}
			defer conn.Close()
			_, err = sharepb.NewShareServiceClient(conn).Release(ctx, &sharepb.ReleaseRequest{VaultNode: "vault-1", Generation: 1})
		} else {
			_, err = f.dial(t, c.client(t, f), ClientOptions{}).Release(ctx, "vault-1", 1)
		}
		calls := f.h.calls.Load()
		if !c.ok {
			if err == nil || calls != 0 {
				t.Fatalf("Release: err=%v, handler calls=%d; want an error and no handler call", err, calls)
			}
			if log := f.log.String(); !strings.Contains(log, c.wantLog) {
				t.Fatalf("holder log does not give the reason %q:\n%s", c.wantLog, log)
			}
			return
		}
		if err != nil || calls != 1 {
			t.Fatalf("Release: err=%v, handler calls=%d; want success and one call", err, calls)
		}
		if got, want := f.h.lastPeer().ID.String(), c.wantID(f); got != want {
			t.Fatalf("handler saw peer %s, want %s", got, want)
		}
	}
	cases := map[string]tc{
		"ok/unsealer-by-role": {
			client: func(t *testing.T, f *fixture) *tls.Config { return f.unsealer.ClientConfig(expectHolder) },
			ok:     true, wantID: func(f *fixture) string { return f.unsealer.ID().String() },
		},
		"ok/operator-by-exact-id": {
			client: func(t *testing.T, f *fixture) *tls.Config {
				return f.source(t, "operator", "alice").ClientConfig(expectHolder)
			},
			ok: true, wantID: func(f *fixture) string { return f.id("operator", "alice").String() },
		},
		"fail/same-ca-wrong-role": {wantLog: "not authorized", client: func(t *testing.T, f *fixture) *tls.Config {
			return f.source(t, "operator", "mallory").ClientConfig(expectHolder)
		}},
		"fail/same-ca-holder-role": {wantLog: "not authorized", client: func(t *testing.T, f *fixture) *tls.Config {
			return f.source(t, "holder", "h2").ClientConfig(expectHolder)
		}},
		"fail/two-uri-sans": {wantLog: "more than one URI SAN", client: func(t *testing.T, f *fixture) *tls.Config {
			return attacker(issue(t, f.ca, devpki.LeafOptions{URIs: []string{f.ca.ID("unsealer", "u1"), f.ca.ID("unsealer", "u2")}}))
		}},
		"fail/ca-cert-as-leaf": {wantLog: "cannot be used as a leaf", client: func(t *testing.T, f *fixture) *tls.Config {
			return attacker(issue(t, f.ca, devpki.LeafOptions{URIs: []string{f.ca.ID("unsealer", "u1")}, IsCA: true}))
		}},
		"fail/no-client-cert": {client: func(t *testing.T, f *fixture) *tls.Config { return attacker(nil) }},
		"fail/tls12-only": {client: func(t *testing.T, f *fixture) *tls.Config {
			c := f.unsealer.ClientConfig(expectHolder)
			c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			return c
		}},
		"fail/plaintext": {},
		"fail/expired": {wantLog: "expired", client: func(t *testing.T, f *fixture) *tls.Config {
			return attacker(issue(t, f.ca, devpki.LeafOptions{
				URIs:      []string{f.ca.ID("unsealer", "u1")},
				NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour),
			}))
		}},
		"fail/other-ca": {wantLog: "unknown authority", client: func(t *testing.T, f *fixture) *tls.Config {
			other, err := devpki.NewCA("ks.test")
			if err != nil {
				t.Fatal(err)
			}
			l, err := other.IssueID("unsealer", "u1", net.ParseIP(clientIP))
			if err != nil {
				t.Fatal(err)
			}
			return attacker(l)
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}

// TestClientChecksHolderID: a client expecting holder h2 refuses h1, so no
// call reaches h1's handler.
func TestClientChecksHolderID(t *testing.T) {
	f := newFixture(t)
	c, err := Dial(f.addr, f.unsealer.ClientConfig(identity.AllowRoles(identity.RoleHolder)), f.id("holder", "h2"), ClientOptions{CallTimeout: callTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Release(context.Background(), "vault-1", 1); !errContains(err, "want spiffe://ks.test/holder/h2") {
		t.Fatalf("Release: %v; want a holder ID mismatch", err)
	}
	if n := f.h.calls.Load(); n != 0 {
		t.Fatalf("handler called %d times", n)
	}
	if _, err := Dial(f.addr, attacker(nil), spiffeid.ID{}, ClientOptions{}); err == nil {
		t.Fatal("Dial accepted a zero holder ID")
	}
	insecureCfg := &tls.Config{InsecureSkipVerify: true}
	if _, err := Dial(f.addr, insecureCfg, f.id("holder", "h1"), ClientOptions{}); err == nil {
		t.Fatal("Dial accepted a config that verifies nothing")
	}
}
