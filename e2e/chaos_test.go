//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/internal/lifecycle"
)

// Chaos against the real Vault (issue 17): `unsealer rekey` and `unsealer
// init` are SIGKILLed at every step and at random moments, and holders
// are killed mid-rekey, with a fixed seed (KEYSHARE_CHAOS_SEED). After
// every kill: `--status`, then (in some rounds) a plain `unsealer rekey`
// as an operator would try, then `--recover`; when --recover cannot settle
// it alone it must print one exact command, which is run; then Vault is
// restarted and must unseal from the holders, and --status must find
// nothing to settle. A single raft node: the rekey state that matters
// (Vault's key, its in-memory rekey, the holders' stores) is the same with
// three, and a single node is the harder case for --recover (no standby
// to test on).
//
// The rounds are chaosRounds (30 in `make test`, 200 under the soak build
// tag, `make soak`), or KEYSHARE_CHAOS_ROUNDS.

const chaosSeedDefault = 17

func chaosParams(t *testing.T, rounds int) (int, *rand.Rand, uint64) {
	t.Helper()
	if v := os.Getenv("KEYSHARE_CHAOS_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KEYSHARE_CHAOS_ROUNDS=%q: want a positive number", v)
		}
		rounds = n
	}
	seed := uint64(chaosSeedDefault)
	if v := os.Getenv("KEYSHARE_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("KEYSHARE_CHAOS_SEED=%q: %v", v, err)
		}
		seed = s
	}
	return rounds, rand.New(rand.NewPCG(seed, seed)), seed
}

// chaosStats is what the rounds did, for the log and RELIABILITY.md.
type chaosStats struct {
	rounds, secondRekeys, secondOK, commands int
	outcomes                                 map[string]int
	took                                     []time.Duration
}

func (s *chaosStats) add(outcome string, took time.Duration) {
	if s.outcomes == nil {
		s.outcomes = map[string]int{}
	}
	s.rounds++
	s.outcomes[outcome]++
	s.took = append(s.took, took)
}

func (s *chaosStats) report(t *testing.T, what string, seed uint64, total time.Duration) {
	t.Helper()
	keys := make([]string, 0, len(s.outcomes))
	for k := range s.outcomes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, s.outcomes[k]))
	}
	t.Logf("chaos %s: %d rounds (seed %d) in %s, round median %s max %s; 0 keys lost, 0 stuck; second plain rekeys %d (%d completed); extra commands run %d; recover outcomes: %s",
		what, s.rounds, seed, total.Round(time.Second), median(s.took).Round(time.Millisecond), slices.Max(s.took).Round(time.Millisecond),
		s.secondRekeys, s.secondOK, s.commands, strings.Join(parts, "; "))
}

// TestRekeyChaos kills `unsealer rekey` (SIGKILL) at each step in turn, at
// random moments, or kills a holder while it runs, then settles and
// unseals; see the top of this file.
func TestRekeyChaos(t *testing.T) {
	rounds, rng, seed := chaosParams(t, chaosRounds)
	topo := newSingleNode(t, "127.0.0.122")
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rounds)*time.Minute+5*time.Minute)
	defer cancel()
	if _, err := topo.Init(ctx); err != nil {
		t.Fatal(err)
	}
	// One whole rekey, to bound the random kill moments.
	begin := time.Now()
	if res := cli(t, ctx, topo, "rekey"); res.Code != 0 {
		t.Fatalf("a plain rekey fails:\n%s", res.Combined())
	}
	whole := time.Since(begin)
	t.Logf("a whole `unsealer rekey` takes %s; random kills land in [0, %s]", whole.Round(time.Millisecond), (whole * 5 / 4).Round(time.Millisecond))

	var st chaosStats
	start := time.Now()
	for i := range rounds {
		roundStart := time.Now()
		var what string
		switch i % 3 {
		case 0:
			step := lifecycle.RekeySteps[(i/3)%len(lifecycle.RekeySteps)]
			p := startCLI(t, topo, topo.OperatorConfig, []string{pauseAtEnv + "=" + string(step)}, "rekey", "--retry-for", "2s")
			if err := p.waitText(ctx, "paused at step "+string(step)); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			p.kill()
			what = "killed after " + string(step)
		case 1:
			d := time.Duration(rng.Int64N(int64(whole * 5 / 4)))
			p := startCLI(t, topo, topo.OperatorConfig, nil, "rekey", "--retry-for", "2s")
			sleepCtx(ctx, d)
			ended := p.exited()
			p.kill()
			what = fmt.Sprintf("killed at %s (had ended: %t)", d.Round(time.Millisecond), ended)
		default:
			h := topo.Holders[rng.IntN(len(topo.Holders))]
			d := time.Duration(rng.Int64N(int64(whole)))
			p := startCLI(t, topo, topo.OperatorConfig, nil, "rekey", "--retry-for", "2s")
			sleepCtx(ctx, d)
			if err := h.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			alsoRekey := rng.IntN(2) == 0
			if alsoRekey {
				p.kill()
			} else {
				if err := p.wait(ctx, time.Minute); err != nil {
					t.Fatalf("round %d: %v", i, err)
				}
			}
			if err := topo.StartHolders(ctx, h); err != nil {
				t.Fatal(err)
			}
			what = fmt.Sprintf("holder %s killed at %s (rekey killed too: %t)", h.Name, d.Round(time.Millisecond), alsoRekey)
		}
		outcome := settle(t, ctx, topo, rng, &st, i, what)
		unsealsFromHolders(t, ctx, topo, rng.IntN(2) == 0)
		if s := cli(t, ctx, topo, "rekey", "--status"); s.Code != 0 || !strings.Contains(s.Stdout, "nothing to settle") {
			t.Fatalf("round %d (%s): STUCK: --status after recovery and an unseal:\n%s", i, what, s.Combined())
		}
		st.add(outcome, time.Since(roundStart))
		t.Logf("round %d: %s -> %s (%s)", i, what, outcome, time.Since(roundStart).Round(time.Millisecond))
	}
	st.report(t, "rekey", seed, time.Since(start))
}

// TestInitChaos kills `unsealer init` at each of its steps and at random
// moments, on a wiped Vault and wiped holders each round.
func TestInitChaos(t *testing.T) {
	rounds, rng, seed := chaosParams(t, chaosInitRounds)
	topo := newSingleNode(t, "127.0.0.124")
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rounds)*time.Minute+5*time.Minute)
	defer cancel()
	steps := []lifecycle.Step{lifecycle.StepInitVault, lifecycle.StepInitStage, lifecycle.StepInitCheck, lifecycle.StepInitCmt}
	begin := time.Now()
	if _, err := topo.Init(ctx); err != nil {
		t.Fatal(err)
	}
	whole := time.Since(begin)
	var st chaosStats
	start := time.Now()
	for i := range rounds {
		roundStart := time.Now()
		wipe(t, ctx, topo)
		var what string
		if i%2 == 0 {
			step := steps[(i/2)%len(steps)]
			p := startCLI(t, topo, topo.UnsealerConfig, []string{pauseAtEnv + "=" + string(step)}, "init")
			if err := p.waitText(ctx, "paused at step "+string(step)); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			p.kill()
			what = "init killed after " + string(step)
		} else {
			d := time.Duration(rng.Int64N(int64(whole * 5 / 4)))
			p := startCLI(t, topo, topo.UnsealerConfig, nil, "init")
			sleepCtx(ctx, d)
			ended := p.exited()
			p.kill()
			what = fmt.Sprintf("init killed at %s (had ended: %t)", d.Round(time.Millisecond), ended)
		}
		outcome := settle(t, ctx, topo, rng, &st, i, what)
		unsealsFromHolders(t, ctx, topo, rng.IntN(2) == 0)
		st.add(outcome, time.Since(roundStart))
		t.Logf("round %d: %s -> %s (%s)", i, what, outcome, time.Since(roundStart).Round(time.Millisecond))
	}
	st.report(t, "init", seed, time.Since(start))
}

// quoted finds the commands a message names ('unsealer ...').
var quoted = regexp.MustCompile(`'(unsealer [^']+)'`)

// settle runs --status, maybe a plain rekey, and --recover; if --recover
// does not settle, it must name one command, which is run and must. It
// returns a short name for the outcome.
func settle(t *testing.T, ctx context.Context, topo *topology.Topology, rng *rand.Rand, st *chaosStats, i int, what string) string {
	t.Helper()
	s := cli(t, ctx, topo, "rekey", "--status")
	if s.Code != 0 {
		t.Fatalf("round %d (%s): --status failed:\n%s", i, what, s.Combined())
	}
	if rng.IntN(3) == 0 {
		st.secondRekeys++
		r := cli(t, ctx, topo, "rekey", "--retry-for", "2s")
		if r.Code == 0 {
			st.secondOK++
		}
		t.Logf("round %d: a plain rekey: exit %d: %s", i, r.Code, lastLine(r.Combined()))
	}
	rec := cli(t, ctx, topo, "rekey", "--recover")
	if rec.Code == 0 && strings.Contains(rec.Stdout, "run 'unsealer init'") {
		// Killed before Vault made its keys, or Vault is new: init again.
		if _, err := topo.Init(ctx); err != nil {
			t.Fatalf("round %d (%s): init after --recover said to: %v", i, what, err)
		}
		return "vault-not-initialized:init-rerun"
	}
	if rec.Code == 0 {
		return outcomeOf(rec.Stdout)
	}
	m := quoted.FindStringSubmatch(rec.Stderr)
	if m == nil {
		t.Fatalf("round %d (%s): STUCK: --recover failed and names no command:\n%s\nstatus before:\n%s", i, what, rec.Combined(), s.Combined())
	}
	st.commands++
	cmd := m[1]
	if strings.Contains(cmd, "wipe") || strings.HasPrefix(cmd, "unsealer init") {
		// An init killed before the keys were dealt: Vault holds no data
		// yet, and the message says to wipe it and rerun init.
		if !strings.Contains(rec.Stderr, "wipe its storage") {
			t.Fatalf("round %d (%s): --recover names %q without saying why:\n%s", i, what, cmd, rec.Combined())
		}
		wipe(t, ctx, topo)
		if _, err := topo.Init(ctx); err != nil {
			t.Fatalf("round %d (%s): init after the wipe: %v", i, what, err)
		}
		return "init-lost-before-deal:wiped-and-reinitialized"
	}
	args := strings.Fields(strings.TrimPrefix(cmd, "unsealer "))
	if j := slices.Index(args, "-c"); j >= 0 {
		args = slices.Delete(args, j, j+2) // cli adds the operator config
	}
	again := cli(t, ctx, topo, args...)
	if again.Code != 0 {
		t.Fatalf("round %d (%s): STUCK: --recover said to run %q, which failed:\n%s\nfirst recover:\n%s", i, what, cmd, again.Combined(), rec.Combined())
	}
	return "after " + cmd + ": " + outcomeOf(again.Stdout)
}

// outcomeOf names what --recover did from its message.
func outcomeOf(msg string) string {
	for _, o := range []string{"nothing to recover", "committed staged generation", "committed it on every holder", "dropped staged generation", "cancelled the rekey in progress", "cancelled rekey"} {
		if strings.Contains(msg, o) {
			return o
		}
	}
	return lastLine(msg)
}

// wipe stops Vault and the holders, removes Vault's data and the holders'
// stores, and starts them again: an uninitialized Vault, empty holders.
func wipe(t *testing.T, ctx context.Context, topo *topology.Topology) {
	t.Helper()
	n := topo.Vault.Node(0)
	if err := n.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := topo.StopHolders(topo.Holders...); err != nil {
		t.Fatal(err)
	}
	dirs := []string{n.DataDir}
	for _, h := range topo.Holders {
		dirs = append(dirs, h.StoreDir)
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitAPI(ctx); err != nil {
		t.Fatal(err)
	}
	if err := topo.StartHolders(ctx, topo.Holders...); err != nil {
		t.Fatal(err)
	}
}

// sleepCtx waits d (the random moment of a kill) unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
