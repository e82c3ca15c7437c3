package identity

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// rawClient is a TLS client config that presents leaf (if any) and does not
// check the server, the way an attacker would connect.
func rawClient(leaf *devpki.Leaf) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	if leaf != nil {
		c.Certificates = []tls.Certificate{leaf.TLSCertificate()}
	}
	return c
}

func TestHandshake(t *testing.T) {
	p := newPKI(t, "ks.test")
	other := newPKI(t, "ks.test")
	server := mustNew(t, p.writeLeaf(t, p.leaf(t, RoleHolder, "h1"), "holder"))
	unsealer := mustNew(t, p.writeLeaf(t, p.leaf(t, RoleUnsealer, "u1"), "unsealer"))
	operator := mustNew(t, p.writeLeaf(t, p.leaf(t, RoleOperator, "bob"), "operator"))
	authz := AllowRoles(RoleUnsealer).Or(AllowIDs(p.id(t, RoleOperator, "alice")))
	expectHolder := AllowIDs(p.id(t, RoleHolder, "h1"))

	issue := func(opts devpki.LeafOptions) *devpki.Leaf {
		l, err := p.ca.Issue(opts)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	uid := p.ca.ID("unsealer", "u9")
	twoSANs := issue(devpki.LeafOptions{URIs: []string{uid, p.ca.ID("unsealer", "u8")}})
	caLeaf := issue(devpki.LeafOptions{URIs: []string{uid}, IsCA: true})
	expired := issue(devpki.LeafOptions{URIs: []string{uid}, NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	foreign, err := other.ca.IssueID("unsealer", "u1", net.ParseIP(clientIP))
	if err != nil {
		t.Fatal(err)
	}
	tls12 := rawClient(p.leaf(t, RoleUnsealer, "u1"))
	tls12.MaxVersion = tls.VersionTLS12

	type tc struct {
		server *tls.Config
		client *tls.Config
		want   string // substring of the refusing side's error; "" = success
	}
	run := func(t *testing.T, c tc) {
		o := handshake(t, c.server, c.client)
		if c.want == "" {
			if !o.ok() {
				t.Fatalf("handshake failed: server: %v; client: %v", o.serverErr, o.clientErr)
			}
			id, role, err := FromConnectionState(o.server)
			if err != nil || role != RoleUnsealer || id != unsealer.ID() {
				t.Fatalf("server sees peer %s (%s, %v); want %s", id, role, err, unsealer.ID())
			}
			if id, _, err := FromConnectionState(o.client); err != nil || id != server.ID() {
				t.Fatalf("client sees peer %s (%v); want %s", id, err, server.ID())
			}
			return
		}
		if o.ok() {
			t.Fatal("handshake succeeded; want it refused")
		}
		if !errContains(o.serverErr, c.want) && !errContains(o.clientErr, c.want) {
			t.Fatalf("want an error containing %q; server: %v; client: %v", c.want, o.serverErr, o.clientErr)
		}
	}
	srv := server.ServerConfig(authz)
	for name, c := range map[string]tc{
		"ok/unsealer-by-role":      {server: srv, client: unsealer.ClientConfig(expectHolder)},
		"fail/wrong-role":          {server: srv, client: operator.ClientConfig(expectHolder), want: "not authorized"},
		"fail/two-uri-sans":        {server: srv, client: rawClient(twoSANs), want: "more than one URI SAN"},
		"fail/ca-as-leaf":          {server: srv, client: rawClient(caLeaf), want: "CA certificate"},
		"fail/expired":             {server: srv, client: rawClient(expired), want: "expired"},
		"fail/other-ca":            {server: srv, client: rawClient(foreign), want: "unknown authority"},
		"fail/no-client-cert":      {server: srv, client: rawClient(nil), want: "certificate"},
		"fail/tls12-only":          {server: srv, client: tls12, want: "protocol version"},
		"fail/server-not-expected": {server: srv, client: unsealer.ClientConfig(AllowIDs(p.id(t, RoleHolder, "h2"))), want: "not authorized"},
		"fail/server-wrong-role":   {server: operator.ServerConfig(authz), client: unsealer.ClientConfig(AllowRoles(RoleHolder)), want: "not authorized"},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}

func TestNewRefusesBadFiles(t *testing.T) {
	p := newPKI(t, "ks.test")
	good := p.writeLeaf(t, p.leaf(t, RoleHolder, "h1"), "holder")
	caLeaf, err := p.ca.Issue(devpki.LeafOptions{URIs: []string{p.ca.ID("holder", "h1")}, IsCA: true})
	if err != nil {
		t.Fatal(err)
	}
	caOpts := p.writeLeaf(t, caLeaf, "caleaf")
	garbage := p.dir + "/garbage.pem"
	writeFile(t, garbage, []byte("not PEM"))

	type tc struct {
		opts func(o Options) Options
		want string
	}
	run := func(t *testing.T, c tc) {
		_, err := New(c.opts(good))
		if c.want == "" {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		if !errContains(err, c.want) {
			t.Fatalf("New: %v; want an error containing %q", err, c.want)
		}
	}
	for name, c := range map[string]tc{
		"ok/plain":            {opts: func(o Options) Options { return o }},
		"ok/trust-domain":     {opts: func(o Options) Options { o.TrustDomain = "ks.test"; return o }},
		"fail/no-ca":          {opts: func(o Options) Options { o.CAFile = ""; return o }, want: "CA bundle file is not set"},
		"fail/missing-cert":   {opts: func(o Options) Options { o.CertFile += ".missing"; return o }, want: ".missing"},
		"fail/garbage-ca":     {opts: func(o Options) Options { o.CAFile = garbage; return o }, want: garbage},
		"fail/garbage-key":    {opts: func(o Options) Options { o.KeyFile = garbage; return o }, want: garbage},
		"fail/trust-domain":   {opts: func(o Options) Options { o.TrustDomain = "other.test"; return o }, want: "trust domain"},
		"fail/ca-as-leaf":     {opts: func(o Options) Options { return caOpts }, want: "CA certificate"},
		"fail/garbage-crl":    {opts: func(o Options) Options { o.CRLFile = garbage; return o }, want: garbage},
		"fail/missing-crl":    {opts: func(o Options) Options { o.CRLFile = garbage + ".missing"; return o }, want: "failed to read CRL"},
		"fail/cert-other-ca":  {opts: func(o Options) Options { o.CAFile = newPKI(t, "ks.test").caFile; return o }, want: "does not verify"},
		"fail/cert-wrong-key": {opts: func(o Options) Options { o.KeyFile = caOpts.KeyFile; return o }, want: "belong together"},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}
