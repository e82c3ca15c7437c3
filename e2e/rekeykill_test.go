//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

// pauseAtEnv makes `unsealer init` and `unsealer rekey` stop after the
// named step and wait to be killed (cmd/unsealer, pauseEnv).
const pauseAtEnv = "KEYSHARE_TEST_PAUSE_AT"

// newSingleNode starts one raft Vault node on ip and the three holders;
// the operator may release as often as the chaos rounds need. Nothing is
// initialized and no coordinator runs: the rounds unseal through the CLI.
func newSingleNode(t *testing.T, ip string) *topology.Topology {
	t.Helper()
	return startTopology(t, topology.Options{
		VaultIPs: []string{ip}, LogLevel: "info",
		OperatorRatePerMinute: 6000, OperatorBurst: 1000,
	})
}

// cli runs one unsealer command as the operator (operator config,
// VAULT_TOKEN set) and returns what it printed; a non-zero exit is not an
// error.
func cli(t *testing.T, ctx context.Context, topo *topology.Topology, args ...string) topology.Result {
	t.Helper()
	res, err := topo.Run(ctx, topology.CLI{AllowFail: true, Env: []string{"VAULT_TOKEN=" + topo.RootToken()}},
		topo.Bins.Unsealer, append(args, "-c", topo.OperatorConfig)...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// bgCmd is an unsealer command running in the background, to be killed.
type bgCmd struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	out  proctest.Buffer
	path string
}

// startCLI starts `unsealer args... -c <cfg>` with env added. Its output is
// saved in the topology's log folder when it is reaped.
func startCLI(t *testing.T, topo *topology.Topology, cfg string, env []string, args ...string) *bgCmd {
	t.Helper()
	b := &bgCmd{done: make(chan struct{})}
	b.cmd = exec.Command(topo.Bins.Unsealer, append(args, "-c", cfg)...)
	b.cmd.Env = append(os.Environ(), append([]string{"VAULT_TOKEN=" + topo.RootToken()}, env...)...)
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b.path = filepath.Join(topo.LogDir, fmt.Sprintf("bg-%d-%s.txt", b.cmd.Process.Pid, strings.Join(args, "_")))
	go func() {
		b.err = b.cmd.Wait()
		_ = os.WriteFile(b.path, []byte(fmt.Sprintf("$ unsealer %s %v\n(%v)\n%s", strings.Join(args, " "), env, b.err, b.out.String())), 0o600)
		close(b.done)
	}()
	t.Cleanup(func() { b.kill() })
	return b
}

// kill sends SIGKILL (if it still runs) and waits until it is reaped.
func (b *bgCmd) kill() {
	select {
	case <-b.done:
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
}

// wait waits up to bound for the command to end on its own.
func (b *bgCmd) wait(ctx context.Context, bound time.Duration) error {
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(bound):
		return fmt.Errorf("unsealer did not end within %s; output:\n%s", bound, b.out.String())
	}
}

// exited reports whether the command has ended on its own.
func (b *bgCmd) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// waitText polls the output for s until ctx ends or the command exits.
func (b *bgCmd) waitText(ctx context.Context, s string) error {
	err := harness.PollEvery(ctx, 20*time.Millisecond, fmt.Sprintf("%q in the output of unsealer", s), func() (bool, error) {
		exited := b.exited() // before reading: the output is complete then
		if strings.Contains(b.out.String(), s) {
			return true, nil
		}
		if exited {
			return false, harness.Stop(fmt.Errorf("unsealer exited (%v) before printing %q", b.err, s))
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%w; output:\n%s", err, b.out.String())
	}
	return nil
}

// unsealsFromHolders restarts the node (kill -9 or stop) and unseals it
// from the holders with the coordinator's identity, as the coordinator
// would. It fails the test if the node stays sealed.
func unsealsFromHolders(t *testing.T, ctx context.Context, topo *topology.Topology, kill bool) {
	t.Helper()
	n := topo.Vault.Node(0)
	restartNode(t, n, kill)
	if err := n.WaitAPI(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := topo.Run(ctx, topology.CLI{AllowFail: true}, topo.Bins.Unsealer, "unseal", "--from-holders", "-c", topo.UnsealerConfig)
	if err != nil {
		t.Fatal(err)
	}
	if st := sealStatus(t, ctx, n); res.Code != 0 || st.Sealed {
		t.Fatalf("KEY LOST? unseal from the holders after a restart: exit %d, sealed %t:\n%s", res.Code, st.Sealed, res.Combined())
	}
	if _, err := topo.Vault.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRekeyKilledAfterVerifyThenRekeyAgain is finding 1 of issue 17 on the
// real Vault: `unsealer rekey` killed after Vault's verify step and before
// the holders commit, then a plain `unsealer rekey` again, then a Vault
// restart and an unseal from the holders. Before the fix the second rekey
// aborted the staged generation 2 that Vault was using, every gen-2.sealed
// was deleted and Vault stayed sealed for good.
func TestRekeyKilledAfterVerifyThenRekeyAgain(t *testing.T) {
	topo := newSingleNode(t, "127.0.0.123")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := topo.Init(ctx); err != nil {
		t.Fatal(err)
	}
	p := startCLI(t, topo, topo.OperatorConfig, []string{pauseAtEnv + "=verify"}, "rekey")
	if err := p.waitText(ctx, "paused at step verify"); err != nil {
		t.Fatal(err)
	}
	p.kill()
	for _, h := range topo.Holders {
		if _, err := os.Stat(h.SealedPath(2)); err != nil {
			t.Fatalf("holder %s has no staged generation 2 after the kill: %v", h.Name, err)
		}
	}

	st := cli(t, ctx, topo, "rekey", "--status")
	t.Logf("status after the kill:\n%s", st.Combined())
	again := cli(t, ctx, topo, "rekey")
	t.Logf("second rekey: exit %d\n%s", again.Code, again.Combined())
	for _, h := range topo.Holders {
		if _, err := os.Stat(h.SealedPath(2)); err != nil {
			t.Fatalf("KEY LOST: holder %s lost generation 2, the key vault uses: %v", h.Name, err)
		}
	}
	if again.Code == 0 || strings.Contains(again.Combined(), "stays in force") || !strings.Contains(again.Stderr, "'unsealer rekey --recover'") {
		t.Fatalf("the second rekey ran over a staged generation, or did not say how to settle it:\n%s", again.Combined())
	}
	if !strings.Contains(st.Stdout, "(staged: 2)") || !strings.Contains(st.Stdout, "'unsealer rekey --recover'") {
		t.Fatalf("--status does not show the staged generation and the command:\n%s", st.Combined())
	}

	n := topo.Vault.Node(0)
	restartNode(t, n, false)
	if err := n.WaitAPI(ctx); err != nil {
		t.Fatal(err)
	}
	un, err := topo.Run(ctx, topology.CLI{AllowFail: true}, topo.Bins.Unsealer, "unseal", "--from-holders", "-c", topo.UnsealerConfig)
	if err != nil {
		t.Fatal(err)
	}
	if un.Code == 0 || !strings.Contains(un.Stderr, "unsealer rekey --recover") {
		t.Fatalf("unseal with generation 1 after the switch: exit %d, want a failure pointing to --recover:\n%s", un.Code, un.Combined())
	}
	rec := cli(t, ctx, topo, "rekey", "--recover")
	t.Logf("recover: exit %d\n%s", rec.Code, rec.Combined())
	if rec.Code != 0 || !strings.Contains(rec.Stdout, "committed staged generation 2") {
		t.Fatalf("recover did not commit generation 2:\n%s", rec.Combined())
	}
	unsealsFromHolders(t, ctx, topo, true)
	if st := cli(t, ctx, topo, "rekey", "--status"); !strings.Contains(st.Stdout, "nothing to settle") {
		t.Fatalf("status after recovery:\n%s", st.Combined())
	}
	// And a rekey works again.
	if res := cli(t, ctx, topo, "rekey"); res.Code != 0 || !strings.Contains(res.Stdout, "generation 3 replaced 2") {
		t.Fatalf("rekey after recovery:\n%s", res.Combined())
	}
	unsealsFromHolders(t, ctx, topo, false)
}

// restartNode kills (kill -9) or stops n, then starts it: it comes back
// sealed, with any rekey in progress forgotten.
func restartNode(t *testing.T, n *harness.VaultNode, kill bool) {
	t.Helper()
	stop := n.Stop
	if kill {
		stop = n.Kill
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
}
