//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/internal/lifecycle"
	"github.com/keyshare/keyshare/pkg/shares"
)

// TestAdoptExistingVault is issue 15's first path: an operator already runs
// Vault with paper shares. Vault is initialized by hand with `vault operator
// init` (5 shares, threshold 3), the shares are kept in files the way
// operators keep them, and the holders start empty. `unsealer status`
// suggests adopting; `unsealer rekey --old-shares-file ...` rekeys Vault
// with verification to the configured plan and deals generation 1 to the
// holders. Then a restart heals by itself, and the paper shares no longer
// open Vault.
func TestAdoptExistingVault(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	topo := startTopology(t, topology.Options{VaultIPs: []string{"127.0.0.122"}})
	node := topo.Vault.Node(0)

	paper, files := operatorInit(t, ctx, topo)
	paperShares, err := shares.ParseShares(paper.Keys)
	if err != nil {
		t.Fatal(err)
	}
	known := &topology.KnownShares{}
	known.Add(0, paperShares...)

	if !t.Run("01-status-suggests-adopting", func(t *testing.T) {
		res, err := topo.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res.Stdout, "unsealer rekey") || !strings.Contains(res.Stdout, "--old-shares-file") {
			t.Fatalf("status does not suggest adopting with 'unsealer rekey --old-shares-file':\n%s", res.Combined())
		}
		if strings.Contains(res.Stdout, "unsealer init") {
			t.Fatalf("status suggests 'unsealer init' for an initialized Vault:\n%s", res.Combined())
		}
	}) {
		return
	}

	if !t.Run("02-adopt", func(t *testing.T) {
		args := []string{"rekey", "-c", topo.OperatorConfig}
		for _, f := range files {
			args = append(args, "--old-shares-file", f)
		}
		res, err := topo.Run(ctx, topology.CLI{AllowFail: true, Env: []string{"VAULT_TOKEN=" + paper.RootToken}}, topo.Bins.Unsealer, args...)
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != 0 {
			t.Fatalf("unsealer rekey (adopt): exit %d\n%s", res.Code, res.Combined())
		}
		for _, h := range topo.Holders {
			st, err := h.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Current != 1 || st.Staged != 0 {
				t.Fatalf("%s: generation %d staged %d after adopting; want 1 and none", h, st.Current, st.Staged)
			}
		}
	}) {
		return
	}

	if !t.Run("03-restart-heals", func(t *testing.T) {
		if err := topo.StartCoordinator(); err != nil {
			t.Fatal(err)
		}
		if err := node.Restart(); err != nil {
			t.Fatal(err)
		}
		wait, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := node.WaitUnsealed(wait); err != nil {
			t.Fatalf("the coordinator did not unseal %s after adopting: %v", node, err)
		}
	}) {
		return
	}

	if !t.Run("04-paper-shares-retired", func(t *testing.T) {
		if err := topo.Coordinator.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := node.Restart(); err != nil {
			t.Fatal(err)
		}
		if err := node.Unseal(ctx, paper.Keys[:3]); err == nil {
			t.Fatal("the paper shares still unseal Vault after adopting")
		}
		st, err := node.SealStatus(ctx)
		if err != nil || !st.Sealed {
			t.Fatalf("after the paper shares: sealed %v, err %v; want still sealed", st != nil && st.Sealed, err)
		}
	}) {
		return
	}

	t.Run("05-no-share-in-any-file", func(t *testing.T) {
		for _, h := range topo.Holders {
			gen, ss, err := h.Export(ctx)
			if err != nil {
				t.Fatal(err)
			}
			known.Add(gen, ss...)
		}
		checkNoLeaks(t, topo, known)
	})
}

// paperKeys is what `vault operator init -format=json` prints.
type paperKeys struct {
	Keys      []string `json:"unseal_keys_hex"`
	RootToken string   `json:"root_token"`
}

// operatorInit is the operator's own init of the topology's first node with
// the real vault CLI (5 shares, threshold 3), an unseal with the first
// three, and shares 2-4 kept in a file each, the way operators keep them.
func operatorInit(t *testing.T, ctx context.Context, topo *topology.Topology) (paperKeys, []string) {
	t.Helper()
	node := topo.Vault.Node(0)
	initCmd := exec.CommandContext(ctx, harness.RequireVaultBinary(t), "operator", "init",
		"-key-shares=5", "-key-threshold=3", "-format=json")
	initCmd.Env = []string{"VAULT_ADDR=" + node.APIAddr(), "VAULT_CACERT=" + topo.Vault.CAPath, "HOME=" + t.TempDir()}
	out, err := initCmd.Output()
	if err != nil {
		t.Fatalf("vault operator init: %v", err)
	}
	var paper paperKeys
	if err := json.Unmarshal(out, &paper); err != nil || len(paper.Keys) != 5 || paper.RootToken == "" {
		t.Fatalf("vault operator init printed no 5 keys and root token (%v)", err)
	}
	if err := node.Unseal(ctx, paper.Keys[:3]); err != nil {
		t.Fatal(err)
	}
	// Three operators, one share each, in files.
	dir := t.TempDir()
	var files []string
	for i, k := range paper.Keys[1:4] {
		f := filepath.Join(dir, "share-"+string(rune('1'+i)))
		if err := os.WriteFile(f, []byte("# operator "+string(rune('1'+i))+"'s share\n"+k+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return paper, files
}

// TestAdoptKilledAfterVerify: the adoption killed (kill -9) after Vault's
// verify step, before the holders commit: Vault uses generation 1, which
// the holders hold staged with nothing committed. `unsealer rekey
// --recover` with the paper shares tests them in a rekey it cancels; Vault
// rejects them, so it commits generation 1, and a restart heals.
func TestAdoptKilledAfterVerify(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	topo := startTopology(t, topology.Options{VaultIPs: []string{"127.0.0.125"}})
	node := topo.Vault.Node(0)
	paper, files := operatorInit(t, ctx, topo)
	oldShares := func(args ...string) []string {
		for _, f := range files {
			args = append(args, "--old-shares-file", f)
		}
		return args
	}
	token := "VAULT_TOKEN=" + paper.RootToken
	p := startCLI(t, topo, topo.OperatorConfig, []string{pauseAtEnv + "=" + string(lifecycle.StepVerify), token}, oldShares("rekey")...)
	if err := p.waitText(ctx, "paused at step "+string(lifecycle.StepVerify)); err != nil {
		t.Fatal(err)
	}
	p.kill()
	for _, h := range topo.Holders {
		st, err := h.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Current != 0 || st.Staged != 1 {
			t.Fatalf("%s: generation %d staged %d after the kill; want none and 1", h, st.Current, st.Staged)
		}
	}
	res, err := topo.Run(ctx, topology.CLI{AllowFail: true, Env: []string{token}}, topo.Bins.Unsealer, oldShares("rekey", "--recover", "-c", topo.OperatorConfig)...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != 0 || !strings.Contains(res.Stdout, "committed staged generation 1") {
		t.Fatalf("unsealer rekey --recover after the adoption was killed: exit %d\n%s", res.Code, res.Combined())
	}
	for _, h := range topo.Holders {
		st, err := h.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Current != 1 || st.Staged != 0 {
			t.Fatalf("%s: generation %d staged %d after --recover; want 1 and none", h, st.Current, st.Staged)
		}
	}
	if err := topo.StartCoordinator(); err != nil {
		t.Fatal(err)
	}
	if err := node.Restart(); err != nil {
		t.Fatal(err)
	}
	wait, cancelWait := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelWait()
	if err := node.WaitUnsealed(wait); err != nil {
		t.Fatalf("the coordinator did not unseal %s after the recovered adoption: %v", node, err)
	}
}
