// Package fakenode starts the Vault end of the unseal path's unit tests: a
// fake Vault (internal/testkit/vaultfake, 5 key shares, threshold 3)
// serving TLS on one loopback address, with a certificate from a devpki CA,
// and a vaultnode client named "vault-1" that pins that CA.
package fakenode

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/shares"
)

// Options tune Start; the zero value is an initialized fake with its own
// CA and a client with vaultnode's default timeout.
type Options struct {
	// CA issues the fake's certificate; nil makes a new CA for
	// "vault.test". Pass the deployment's CA when holders share it.
	CA *devpki.CA
	// Timeout bounds each of the client's requests; 0 is
	// vaultnode.DefaultTimeout.
	Timeout time.Duration
	// Uninitialized starts a fake that waits for sys/init: no keys yet.
	Uninitialized bool
}

// Node is a started fake Vault and its client. The fake stops when the
// test ends.
type Node struct {
	Fake  *vaultfake.Vault
	Vault *vaultnode.Node
	CA    *devpki.CA // the CA that issued the fake's certificate
	Raw   [][]byte   // the unseal keys in order; nil when uninitialized
}

// Start serves a fake Vault on ip (a loopback address; the port is the
// kernel's) and connects a client to it.
func Start(tb testing.TB, ip string, o Options) *Node {
	tb.Helper()
	ca := o.CA
	if ca == nil {
		var err error
		if ca, err = devpki.NewCA("vault.test"); err != nil {
			tb.Fatalf("fake vault on %s: %v", ip, err)
		}
	}
	leaf, err := ca.IssueID("vault", "v1", net.ParseIP(ip))
	if err != nil {
		tb.Fatalf("fake vault on %s: %v", ip, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}
	n := &Node{CA: ca}
	if o.Uninitialized {
		n.Fake = vaultfake.NewUninitialized(ip+":0", tc)
	} else if n.Fake, n.Raw, err = vaultfake.New(ip+":0", tc, 5, 3); err != nil {
		tb.Fatalf("fake vault on %s: %v", ip, err)
	}
	if err := n.Fake.Start(); err != nil {
		tb.Fatalf("fake vault on %s: %v", ip, err)
	}
	tb.Cleanup(n.Fake.Stop)
	if n.Vault, err = vaultnode.New("vault-1", n.Fake.URL(), vaultnode.Options{CACert: ca.CertPEM, Timeout: o.Timeout}); err != nil {
		tb.Fatalf("client for the fake vault on %s: %v", ip, err)
	}
	return n
}

// Shares are the unseal keys as shares with indices 1 to 5, in order.
func (n *Node) Shares() []shares.Share {
	out := make([]shares.Share, len(n.Raw))
	for i, r := range n.Raw {
		out[i] = shares.Share{Index: uint8(i + 1), Value: r}
	}
	return out
}

// Rekey is a rekey with verification in progress on the fake: Vault holds
// the new keys but takes only the old ones until Verify.
type Rekey struct {
	Nonce  string   // the rekey's nonce, as holders see it when staging
	Keys   [][]byte // the new unseal keys, in order
	vnonce string
	n      *Node
}

// StartRekey unseals the fake, starts a rekey with verification (5 shares,
// threshold 3) as 'unsealer rekey' does, and sends it the first three old
// keys.
func (n *Node) StartRekey(tb testing.TB) *Rekey {
	tb.Helper()
	ctx := context.Background()
	n.Fake.Unseal()
	st, err := n.Vault.RekeyInit(ctx, 5, 3)
	if err != nil {
		tb.Fatalf("rekey init on the fake vault: %v", err)
	}
	r := &Rekey{Nonce: st.Nonce, n: n}
	for i, k := range n.Raw[:3] {
		up, err := n.Vault.RekeyUpdate(ctx, st.Nonce, k)
		if err != nil {
			tb.Fatalf("rekey update with old key %d: %v", i+1, err)
		}
		if up.Complete {
			r.Keys, r.vnonce = up.Keys, up.VerificationNonce
		}
	}
	if r.Keys == nil {
		tb.Fatal("rekey update: no new keys after three old ones")
	}
	return r
}

// Verify sends the first three new keys: from now on Vault takes only the
// new keys.
func (r *Rekey) Verify(tb testing.TB) {
	tb.Helper()
	for i, k := range r.Keys[:3] {
		if _, err := r.n.Vault.RekeyVerify(context.Background(), r.vnonce, k); err != nil {
			tb.Fatalf("rekey verify with new key %d: %v", i+1, err)
		}
	}
}
