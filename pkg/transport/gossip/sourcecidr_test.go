package gossip

import (
	"net/netip"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

// TestGossipBoundToSourceCIDRs: members on 127.0.0.227-228 accept gossip
// only from their own two addresses. A third host with a valid certificate,
// on .229, is cut before the TLS handshake and never listed; the two
// members converge. Before, any source with a certificate was a member.
func TestGossipBoundToSourceCIDRs(t *testing.T) {
	ca := newCA(t, testTrustDomain)
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.227/32"), netip.MustParsePrefix("127.0.0.228/32")}
	c1cfg := testConfig(t, ca, node{name: "holder/c1", ip: 227})
	c1cfg.SourceCIDRs = allow
	c1 := start(t, c1cfg)
	c2cfg := testConfig(t, ca, node{name: "holder/c2", ip: 228, seeds: []string{c1.AdvertiseAddr()}})
	c2cfg.SourceCIDRs = allow
	c2 := start(t, c2cfg)
	outsider := start(t, testConfig(t, ca, node{name: "holder/c3", ip: 229, seeds: []string{c1.AdvertiseAddr(), c2.AdvertiseAddr()}}))
	cs := []*Cluster{c1, c2}
	proctest.WaitForErr(t, 20*time.Second, "the two allowed members to converge", func() error { return converged(cs) })
	holdFor(t, 2*time.Second, "the outsider stays out", neverListed(cs, outsider.Name()))
	if n, err := outsider.Join([]string{c1.AdvertiseAddr()}); err == nil || n != 0 {
		t.Fatalf("outsider joined %d members (err %v)", n, err)
	}
}
