//go:build e2e

// Package e2e holds keyshare's end-to-end tests against a real Vault
// cluster. Run them with `make e2e`.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
)

// TestVaultCluster checks the harness itself against the real Vault: a fresh
// three-node raft cluster with TLS is initialized 5/3 and unsealed through
// the API, then one node is killed with SIGKILL, comes back sealed, is
// unsealed and rejoins.
func TestVaultCluster(t *testing.T) {
	c := harness.NewTestVaultCluster(t, harness.VaultClusterOptions{
		Binary: harness.RequireVaultBinary(t),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	start := time.Now()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("failed to start vault cluster: %v", err)
	}
	t.Logf("timing: 3 nodes started to all APIs answering: %s", time.Since(start).Round(time.Millisecond))
	for _, n := range c.Nodes() {
		st, err := n.SealStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Initialized || !st.Sealed {
			t.Fatalf("%s: fresh node says initialized=%t sealed=%t, want false, true", n, st.Initialized, st.Sealed)
		}
	}

	res, err := c.Init(ctx, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	keys := res.KeysB64[:3]

	// The first node alone: unseal, then active.
	first := c.Node(0)
	start = time.Now()
	if err := first.Unseal(ctx, keys); err != nil {
		t.Fatal(err)
	}
	unsealed := time.Since(start)
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if leader != first {
		t.Fatalf("active node is %s, want %s", leader, first)
	}
	t.Logf("timing: %s first key to unsealed %s, to active %s",
		first.Name, unsealed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// The others join through retry_join and unseal with the same keys.
	start = time.Now()
	if err := c.UnsealAll(ctx, keys); err != nil {
		t.Fatal(err)
	}
	if leader, err = c.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: followers joined and unsealed in %s; active node %s", time.Since(start).Round(time.Millisecond), leader.Name)
	start = time.Now()
	if _, err := c.WaitRaftHealthy(ctx, res.RootToken); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: all three healthy raft voters after another %s", time.Since(start).Round(time.Millisecond))

	t.Run("kill standby", func(t *testing.T) { killRestartUnseal(t, c, res, standbyOf(t, c, leader)) })
	t.Run("kill leader", func(t *testing.T) {
		leader, err := c.WaitActive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		killRestartUnseal(t, c, res, leader)
	})
	t.Run("no secret in any log", func(t *testing.T) { assertNoSecretInLogs(t, c, res) })
}

// assertNoSecretInLogs reads every node's log and fails if it holds an
// unseal key (in either encoding) or the root token. It names only which
// secret leaked, never the secret.
func assertNoSecretInLogs(t *testing.T, c *harness.VaultCluster, res *harness.InitResult) {
	secrets := map[string]string{"root token": res.RootToken}
	for i := range res.KeysHex {
		secrets[fmt.Sprintf("unseal key %d (hex)", i+1)] = res.KeysHex[i]
		secrets[fmt.Sprintf("unseal key %d (base64)", i+1)] = res.KeysB64[i]
	}
	for _, n := range c.Nodes() {
		b, err := os.ReadFile(n.Process.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		for what, secret := range secrets {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("log of %s (%s) contains the %s", n.Name, n.Process.LogPath, what)
			}
		}
	}
}

// killRestartUnseal kills n with SIGKILL, restarts it, checks that it comes
// back sealed, unseals it and waits until it is a healthy raft voter again.
func killRestartUnseal(t *testing.T, c *harness.VaultCluster, res *harness.InitResult, n *harness.VaultNode) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := n.Kill(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: %s killed; %s active %s later", n.Name, leader.Name, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitAPI(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: %s process start to API answering: %s", n.Name, time.Since(start).Round(time.Millisecond))
	st, err := n.SealStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Initialized || !st.Sealed || st.Progress != 0 {
		t.Fatalf("%s after restart: initialized=%t sealed=%t progress=%d, want true, true, 0",
			n, st.Initialized, st.Sealed, st.Progress)
	}

	start = time.Now()
	if err := n.Unseal(ctx, res.KeysHex[2:5]); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: %s first key to unsealed: %s", n.Name, time.Since(start).Round(time.Millisecond))
	if _, err := c.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: %s first key to standby of an active cluster: %s", n.Name, time.Since(start).Round(time.Millisecond))
	if err := c.WaitReplicated(ctx, res.RootToken); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: %s first key to applying a fresh raft write: %s", n.Name, time.Since(start).Round(time.Millisecond))
	if _, err := c.WaitRaftHealthy(ctx, res.RootToken); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: %s first key to healthy raft voter: %s", n.Name, time.Since(start).Round(time.Millisecond))
}

// standbyOf returns a node other than leader.
func standbyOf(t *testing.T, c *harness.VaultCluster, leader *harness.VaultNode) *harness.VaultNode {
	for _, n := range c.Nodes() {
		if n != leader {
			return n
		}
	}
	t.Fatal("cluster has no standby")
	return nil
}
