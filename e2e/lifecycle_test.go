//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/pkg/shares"
)

// paperBackup returns the five shares of generation gen that init
// printed (the operator's paper backup), and fails t if they are not known:
// the scenario that made them failed.
func (s *story) paperBackup(t *testing.T, gen uint64) []shares.Share {
	t.Helper()
	paper := s.known.Generation(gen)
	if len(paper) != 5 {
		t.Fatalf("no paper backup of generation %d (%d shares)", gen, len(paper))
	}
	return paper
}

// 8. Every holder is down (a data-centre outage) and a node restarts. The
// coordinator cannot help, so the on-call operator types three shares from
// the paper backup into `unsealer unseal` on a terminal, without echo. The
// node unseals.
func (s *story) breakGlass(t *testing.T) {
	ctx := scenarioCtx(t, 2*time.Minute)
	s.requireHealthy(t, ctx)
	paper := s.paperBackup(t, 1)
	if err := s.topo.StopHolders(s.topo.Holders...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.topo.StartHolders(context.Background(), s.topo.Holders...) })
	n := s.standby(t, ctx)
	offset := topology.LogOffset(s.topo.Coordinator)
	restart(t, n)
	if _, err := topology.WaitLog(ctx, s.topo.Coordinator, offset, map[string]string{"msg": "cannot unseal: nothing submitted", "node": n.Name}); err != nil {
		t.Fatal(err)
	}

	term := startPTY(t, ctx, s.topo, s.topo.Bins.Unsealer, "unseal", "-c", s.topo.OperatorConfig)
	start := time.Now()
	term.typeAt(t, ctx, "share 1 of 3", paper[4].Hex())
	term.typeAt(t, ctx, "share 2 of 3", paper[0].Base64())
	term.typeAt(t, ctx, "share 3 of 3", paper[2].Hex())
	if err := term.wait(ctx); err != nil {
		t.Fatalf("unsealer unseal: %v\n%s", err, term.text())
	}
	if err := harness.Poll(ctx, "the final output", func() (bool, error) {
		return strings.Contains(term.text(), "unsealed 1 node(s)"), nil
	}); err != nil {
		t.Fatalf("%v; terminal:\n%s", err, term.text())
	}
	out := term.text()
	t.Logf("break-glass terminal:\n%s", out)
	if !strings.Contains(out, n.Name) {
		t.Fatalf("terminal does not name %s", n.Name)
	}
	if err := n.WaitUnsealed(ctx); err != nil {
		t.Fatal(err)
	}
	s.timing(t, "break glass: first share typed to "+n.Name+" unsealed", time.Since(start))
	if _, err := s.topo.Vault.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.topo.StartHolders(ctx, s.topo.Holders...); err != nil {
		t.Fatal(err)
	}
}

// 9. The operator rotates the shares: `unsealer rekey` with three shares of
// the paper backup and the root token. The holders then hold generation 2.
// A restarted node unseals from generation 2, and generation 1's paper
// shares fail: `unsealer unseal` names them before anything is submitted,
// and Vault itself rejects them.
func (s *story) rekey(t *testing.T) {
	ctx := scenarioCtx(t, 3*time.Minute)
	s.requireHealthy(t, ctx)
	old := s.paperBackup(t, 1)
	oldFile := s.writeShareFile(t, "generation-1-paper.txt", []shares.Share{old[0], old[2], old[4]})
	leader, err := s.topo.Vault.WaitActive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := s.topo.Run(ctx, topology.CLI{Env: []string{"VAULT_TOKEN=" + s.topo.RootToken()}},
		s.topo.Bins.Unsealer, "rekey", "-c", s.topo.UnsealerConfig, "--node", leader.Name, "--old-shares-file", oldFile)
	if err != nil {
		t.Fatal(err)
	}
	s.timing(t, "unsealer rekey 1 -> 2", time.Since(start))
	if !strings.Contains(res.Stdout, "rekey done: generation 2 replaced 1") {
		t.Fatalf("rekey output:\n%s", res.Combined())
	}
	for _, h := range s.topo.Holders {
		st, err := h.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Current != 2 || st.Staged != 0 || len(st.Indices) != h.Shares {
			t.Fatalf("holder %s after rekey: generation %d, staged %d, indices %v", h.Name, st.Current, st.Staged, st.Indices)
		}
	}
	s.exportAll(t, ctx, 2)

	// A restart unseals from generation 2.
	n := s.standby(t, ctx)
	offset := topology.LogOffset(s.topo.Coordinator)
	started := restart(t, n)
	took, e := s.waitUnsealedBy(t, ctx, n, started, offset)
	if g := e.Get("generation"); g != "2" {
		t.Fatalf("%s was unsealed with generation %s, want 2", n.Name, g)
	}
	s.timing(t, "after rekey, restart "+n.Name+": start to unsealed (generation 2)", took)

	// Generation 1's paper shares fail. The coordinator is stopped so that
	// nothing else touches the node meanwhile.
	if err := s.topo.Coordinator.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.topo.StartCoordinator() })
	n = s.standby(t, ctx)
	restart(t, n)
	if err := n.WaitAPI(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = s.topo.Run(ctx, topology.CLI{AllowFail: true}, s.topo.Bins.Unsealer, "unseal", "-c", s.topo.OperatorConfig, "--file", oldFile)
	if err != nil {
		t.Fatal(err)
	}
	if res.Code == 0 || !strings.Contains(res.Stderr, "matches no share of the current generation 2") {
		t.Fatalf("unseal with generation 1's shares: exit %d, want a failure naming generation 2:\n%s", res.Code, res.Combined())
	}
	if st := sealStatus(t, ctx, n); !st.Sealed || st.Progress != 0 {
		t.Fatalf("%s after the refused unseal: sealed=%t progress=%d, want sealed with nothing submitted", n.Name, st.Sealed, st.Progress)
	}
	t.Logf("unsealer unseal refused the old shares: %s", lastLine(res.Stderr))
	if err := submitDirectly(ctx, s, n.Name, old[:3]); err == nil {
		t.Fatalf("vault accepted generation 1's shares after the rekey")
	} else {
		t.Logf("vault rejected generation 1's shares: %v", err)
	}
	if st := sealStatus(t, ctx, n); !st.Sealed {
		t.Fatalf("%s unsealed with generation 1's shares", n.Name)
	}

	// The coordinator comes back and unseals it from generation 2.
	offset = topology.LogOffset(s.topo.Coordinator)
	started = time.Now()
	if err := s.topo.StartCoordinator(); err != nil {
		t.Fatal(err)
	}
	_, e = s.waitUnsealedBy(t, ctx, n, started, offset)
	if g := e.Get("generation"); g != "2" {
		t.Fatalf("%s was unsealed with generation %s, want 2", n.Name, g)
	}
	if _, err := s.topo.Vault.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
}

// submitDirectly gives ss to node through Vault's API, as `vault operator
// unseal` would, and returns Vault's error, or an error if it stays sealed.
func submitDirectly(ctx context.Context, s *story, node string, ss []shares.Share) error {
	for _, n := range s.topo.Vault.Nodes() {
		if n.Name != node {
			continue
		}
		cl, err := n.Client()
		if err != nil {
			return err
		}
		for i, sh := range ss {
			st, err := cl.Sys().UnsealWithContext(ctx, sh.Hex())
			if err != nil {
				return fmt.Errorf("share %d of %d: %w", i+1, len(ss), err)
			}
			if !st.Sealed {
				return nil
			}
		}
		return fmt.Errorf("%s still sealed after %d shares", node, len(ss))
	}
	return fmt.Errorf("no node %s", node)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

// ptyRun is a command on a pseudo-terminal, as a person at a keyboard.
type ptyRun struct {
	tty     *os.File
	done    chan error
	prompts int

	mu   sync.Mutex
	seen strings.Builder
}

// startPTY starts bin on a new pseudo-terminal. The terminal's text is
// saved in the topology's log folder when the test ends.
func startPTY(t *testing.T, ctx context.Context, topo *topology.Topology, bin string, args ...string) *ptyRun {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	p := &ptyRun{tty: tty, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := tty.Read(buf)
			p.mu.Lock()
			p.seen.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return // EOF or EIO once the process is gone
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		tty.Close()
		text := fmt.Sprintf("$ %s %s (on a terminal)\n%s", filepath.Base(bin), strings.Join(args, " "), p.text())
		_ = os.WriteFile(filepath.Join(topo.LogDir, "pty-"+filepath.Base(bin)+"-"+args[0]+".txt"), []byte(text), 0o600)
	})
	return p
}

func (p *ptyRun) text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen.String()
}

// typeAt waits for the next hidden-input prompt, checks it shows prompt,
// and types line.
func (p *ptyRun) typeAt(t *testing.T, ctx context.Context, prompt, line string) {
	t.Helper()
	p.prompts++
	if err := harness.Poll(ctx, "prompt "+prompt, func() (bool, error) {
		return strings.Count(p.text(), "(input is hidden)") >= p.prompts, nil
	}); err != nil {
		t.Fatalf("%v; terminal so far:\n%s", err, p.text())
	}
	text := p.text()
	if last := text[strings.LastIndex(text, "\n")+1:]; !strings.Contains(last, prompt) {
		t.Fatalf("prompt %q not shown; terminal so far:\n%s", prompt, text)
	}
	if _, err := p.tty.Write([]byte(line + "\r")); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the command to exit.
func (p *ptyRun) wait(ctx context.Context) error {
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
