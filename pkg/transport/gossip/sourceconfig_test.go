package gossip

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// TestConvergeWithIdentitySourceConfigs forms a cluster with the TLS
// configs the daemons use, from identity.Source: its server config hands
// out a fresh config per handshake (GetConfigForClient), which must still
// negotiate the gossip ALPN protocol. Members on 127.0.0.217-218.
func TestConvergeWithIdentitySourceConfigs(t *testing.T) {
	ca := newCA(t, testTrustDomain)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	if err := ca.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	peers := identity.AllowRoles(identity.RoleHolder, identity.RoleUnsealer)
	var cs []*Cluster
	seed := ""
	for i, name := range []string{"s1", "s2"} {
		leaf, err := ca.IssueID("holder", name, hostIP(217+i))
		if err != nil {
			t.Fatal(err)
		}
		cert, key, err := leaf.WriteFiles(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		src, err := identity.New(identity.Options{CAFile: caFile, CertFile: cert, KeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{
			Name:           ca.ID("holder", name),
			BindAddr:       net.JoinHostPort(hostIP(217+i).String(), "0"),
			ServerTLS:      src.ServerConfig(peers),
			ClientTLS:      src.ClientConfig(peers),
			Tuning:         LoopbackTuning(),
			Logger:         testLogger(t),
			RejoinInterval: time.Second,
		}
		if seed != "" {
			cfg.Seeds = []string{seed}
		}
		c := start(t, cfg)
		seed = c.AdvertiseAddr()
		cs = append(cs, c)
	}
	proctest.WaitForErr(t, 20*time.Second, fmt.Sprintf("%d members with identity.Source configs to converge", len(cs)), func() error { return converged(cs) })
}
