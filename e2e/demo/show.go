package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/kubeharness"
	"github.com/keyshare/keyshare/e2e/topology"
)

// demo is one run of the show.
type demo struct {
	topo *topology.Topology
	dir  string
	bins topology.Binaries
	// kbins, plugin and cp are the Kubernetes part (nil cp without -kube).
	kbins  kubeharness.Binaries
	plugin string
	cp     *kubeharness.ControlPlane
}

// step prints a step heading.
func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

// indent prints text with every line indented.
func indent(text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Println("    " + l)
	}
}

// initAndUnseal runs `unsealer init`, shows what the holders hold, and
// waits for the coordinator to unseal the followers. It returns the active
// node.
func (d *demo) initAndUnseal(ctx context.Context) (*harness.VaultNode, error) {
	topo := d.topo
	step("unsealer init: Vault makes 5 shares, threshold 3; they are dealt 2/2/1 to the holders")
	start := time.Now()
	res, err := topo.Init(ctx)
	if err != nil {
		return nil, err
	}
	indent(res.Stderr)
	tokenFile := filepath.Join(d.dir, "root-token")
	if err := os.WriteFile(tokenFile, []byte(topo.RootToken()+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("failed to save the root token to %s: %w", tokenFile, err)
	}
	fmt.Printf("    (the root token init printed is saved in %s, mode 0600, not shown here)\n", tokenFile)
	for _, h := range topo.Holders {
		st, err := h.Status(ctx)
		if err != nil {
			return nil, err
		}
		fmt.Printf("    holder status, %s: generation %d, shares %v of %d, store sealed on disk\n", h.Name, st.Current, st.Indices, st.TotalShares)
	}

	step("The followers join the raft cluster; the coordinator unseals them")
	uctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, n := range topo.Vault.Nodes() {
		if err := n.WaitUnsealed(uctx); err != nil {
			return nil, err
		}
	}
	leader, err := topo.Vault.WaitActive(uctx)
	if err != nil {
		return nil, err
	}
	fmt.Printf("    all 3 nodes unsealed %s after init began; active node: %s\n", since(start), leader.Name)
	return leader, nil
}

// show runs the whole demo once: start, init, status, restart a node.
func (d *demo) show(ctx context.Context) error {
	topo := d.topo
	fmt.Println("keyshare demo: unseal a Shamir-sealed Vault cluster after a restart, with no person")
	fmt.Println("and no single machine holding enough of the key. Every host has its own loopback address:")
	fmt.Println("    Vault v" + harness.VaultVersion + "   vault-1 127.0.0.101, vault-2 127.0.0.102, vault-3 127.0.0.103 (raft, TLS)")
	fmt.Println("    holders        a 127.0.0.11 (2 shares), b 127.0.0.12 (2), c 127.0.0.13 (1); mutual TLS")
	fmt.Println("    coordinator    127.0.0.20, the only address the holders release shares to")
	fmt.Println("    files, logs    " + d.dir)

	step("Starting the Vault cluster (sealed, not initialized) and the three holders")
	start := time.Now()
	if err := topo.Start(ctx); err != nil {
		return err
	}
	fmt.Printf("    3 Vault nodes and 3 holders up in %s\n", since(start))

	step("Starting the coordinator: unsealer run")
	if err := topo.StartCoordinator(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := topology.WaitLog(wctx, topo.Coordinator, 0, map[string]string{"msg": "vault node is not initialized; keyshare never initializes by itself: run 'unsealer init'"}); err != nil {
		return err
	}
	fmt.Println("    coordinator: \"vault node is not initialized; keyshare never initializes by itself: run 'unsealer init'\"")

	leader, err := d.initAndUnseal(ctx)
	if err != nil {
		return err
	}

	step("unsealer status")
	if err := d.status(ctx); err != nil {
		return err
	}

	var standby *harness.VaultNode
	for _, n := range topo.Vault.Nodes() {
		if n != leader {
			standby = n
			break
		}
	}
	step("Restarting %s, as a reboot or an upgrade would; it comes back sealed", standby.Name)
	took, idx, err := d.restart(ctx, standby)
	if err != nil {
		return err
	}
	fmt.Printf("    %s unsealed by the coordinator %s after its process started\n", standby.Name, took.Round(time.Millisecond))
	fmt.Printf("    (shares %v, verified against the holders' manifest; nobody typed anything)\n", idx)
	return nil
}

// status prints `unsealer status`.
func (d *demo) status(ctx context.Context) error {
	res, err := d.topo.Status(ctx)
	if err != nil {
		return err
	}
	indent(res.Stdout)
	if res.Code != 0 {
		return fmt.Errorf("unsealer status exited %d: %s", res.Code, strings.TrimSpace(res.Stderr))
	}
	return nil
}

// restart stops n (if it runs), starts it, and waits for the coordinator
// to unseal it. It returns the time from process start to unsealed and the
// share indices the coordinator used.
func (d *demo) restart(ctx context.Context, n *harness.VaultNode) (time.Duration, []int, error) {
	if err := n.Stop(); err != nil && !errors.Is(err, harness.ErrNotRunning) {
		return 0, nil, err
	}
	offset := topology.LogOffset(d.topo.Coordinator)
	if err := n.Start(); err != nil {
		return 0, nil, err
	}
	started := n.Process.StartedAt()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := n.WaitAPI(ctx); err != nil {
		return 0, nil, err
	}
	if st, err := n.SealStatus(ctx); err == nil && st.Sealed {
		fmt.Printf("    %s (pid %d) answers %s after its process started: sealed\n", n.Name, n.Process.PID(), time.Since(started).Round(time.Millisecond))
	}
	if err := n.WaitUnsealed(ctx); err != nil {
		return 0, nil, err
	}
	took := time.Since(started)
	e, err := topology.WaitLog(ctx, d.topo.Coordinator, offset, map[string]string{"msg": "unsealed", "node": n.Name})
	if err != nil {
		return took, nil, err
	}
	idx, err := e.Indices("indices")
	return took, idx, err
}

// supervise keeps the cluster running until ctx ends, and starts again any
// Vault node whose process exits, as systemd would.
func (d *demo) supervise(ctx context.Context) error {
	victim := d.topo.Vault.Node(2)
	fmt.Println()
	fmt.Println("The cluster keeps running. In another terminal, try:")
	fmt.Printf("    %s status -c %s\n", d.bins.Unsealer, d.topo.UnsealerConfig)
	fmt.Printf("    kill %d    # %s: the demo starts it again, the coordinator unseals it\n", victim.Process.PID(), victim.Name)
	fmt.Printf("    tail -f %s\n", filepath.Join(d.topo.LogDir, "unsealer.log"))
	d.kubeHints()
	fmt.Println("Press Ctrl-C to stop.")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
		for _, n := range d.topo.Vault.Nodes() {
			if n.Process.Running() {
				continue
			}
			fmt.Printf("\n%s: %s exited; starting it again\n", time.Now().Format("15:04:05"), n.Name)
			took, idx, err := d.restart(ctx, n)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			fmt.Printf("    %s unsealed by the coordinator %s after its process started (shares %v)\n",
				n.Name, took.Round(time.Millisecond), idx)
		}
	}
}
