//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
)

// BenchmarkRestartToActive measures issue 8's "restart to active" against
// the floor, on the real Vault server: kill -9 the Vault node(s), start
// them again, and time process start to sys/health 200 (polled every 5 ms).
//
//   - single: one raft node, 3 holders, mTLS, the real `unsealer run`
//     (built without -race), KEYSHARE_BENCH_ROUNDS rounds (default 10),
//     each followed by a round of the floor on the same node: the
//     coordinator stopped, a loop in this process that already holds 3
//     keys polls seal-status every 20 ms and submits them as soon as the
//     node reports sealed. Alternating keeps a shared machine's load
//     changes out of the ratio.
//   - cluster3: three raft nodes all killed and started at once, timed
//     until every node is unsealed and one is active,
//     KEYSHARE_BENCH_ROUNDS3 rounds (default 3), keyshare and floor
//     alternating.
//
// It ignores b.N (one op is the whole series); run it with -benchtime 1x.
// `make bench-vault` does, and prints the table.
func BenchmarkRestartToActive(b *testing.B) {
	vault := harness.RequireVaultBinary(b)
	bins := benchBinaries(b)
	rounds := envInt(b, "KEYSHARE_BENCH_ROUNDS", 10)
	rounds3 := envInt(b, "KEYSHARE_BENCH_ROUNDS3", 3)
	var rows []string
	b.Run("single", func(b *testing.B) {
		ks, fl, parts := benchSeries(b, vault, bins, []string{"127.0.0.101"}, rounds)
		rows = append(rows, benchRows("1 node", ks, fl)...)
		rows = append(rows, parts...)
		b.ReportMetric(ms(median(ks)), "keyshare-p50-ms")
		b.ReportMetric(ms(median(fl)), "floor-p50-ms")
		b.ReportMetric(float64(median(ks))/float64(median(fl)), "ratio-p50")
	})
	b.Run("cluster3", func(b *testing.B) {
		ks, fl, _ := benchSeries(b, vault, bins, nil, rounds3)
		rows = append(rows, benchRows("3 nodes, all restarted", ks, fl)...)
		b.ReportMetric(ms(median(ks)), "keyshare-p50-ms")
		b.ReportMetric(ms(median(fl)), "floor-p50-ms")
	})
	fmt.Printf("\n| setup | unsealer | rounds | median | p90 | min | max | keyshare/floor (median) |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Println(r)
	}
}

// benchSeries runs one topology with Vault on ips (nil: three nodes):
// keyshare and floor rounds, alternating. parts breaks the
// keyshare rounds down from the coordinator's log (single node only).
func benchSeries(b *testing.B, vault string, bins topology.Binaries, ips []string, rounds int) (ks, fl []time.Duration, parts []string) {
	topo, err := topology.New(topology.Options{
		Dir: b.TempDir(), VaultBinary: vault, Binaries: bins, VaultIPs: ips,
		RaftPerformanceMultiplier: 1, Logf: b.Logf,
		// The coordinator's own default (DefaultDownInterval), not the
		// e2e suite's 100 ms.
		DownInterval: 50 * time.Millisecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if b.Failed() {
			topo.DumpLogs(b.Logf, 40)
		}
		if err := topo.Close(); err != nil {
			b.Errorf("failed to stop the topology: %v", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := topo.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if err := topo.StartCoordinator(); err != nil {
		b.Fatal(err)
	}
	if _, err := topo.Init(ctx); err != nil {
		b.Fatal(err)
	}
	nodes := topo.Vault.Nodes()
	probe := newProbe(topo)
	if _, err := probe.untilReady(ctx, nodes, time.Now()); err != nil {
		b.Fatal(err)
	}
	keys := exportKeys(b, ctx, topo)

	// Keyshare and floor rounds alternate, so that both see the same load
	// on a shared machine: a keyshare round with the coordinator running
	// and holding its connections, then a floor round with it stopped.
	for i := range rounds {
		if err := waitHeld(ctx, topo, nodes); err != nil {
			b.Fatalf("keyshare round %d: %v", i+1, err)
		}
		off := topology.LogOffset(topo.Coordinator)
		start, d, err := probe.restartRound(ctx, nodes)
		if err != nil {
			b.Fatalf("keyshare round %d: %v", i+1, err)
		}
		ks = append(ks, d)
		if len(nodes) == 1 {
			p, err := breakdown(ctx, topo, nodes[0].Name, off, start, d)
			if err != nil {
				b.Fatalf("keyshare round %d: %v", i+1, err)
			}
			b.Logf("keyshare round %d: %s", i+1, p)
			parts = append(parts, p)
		} else {
			b.Logf("keyshare round %d: %s", i+1, d.Round(time.Millisecond))
		}

		if err := topo.Coordinator.Stop(); err != nil {
			b.Fatal(err)
		}
		fctx, stopFloor := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() { probe.floor(fctx, n, keys) })
		}
		_, d, err = probe.restartRound(ctx, nodes)
		stopFloor()
		wg.Wait()
		if err != nil {
			b.Fatalf("floor round %d: %v", i+1, err)
		}
		fl = append(fl, d)
		b.Logf("floor round %d: %s", i+1, d.Round(time.Millisecond))
		if err := topo.StartCoordinator(); err != nil {
			b.Fatal(err)
		}
	}
	return ks, fl, summarizeParts(parts)
}

// waitHeld waits until the coordinator holds its connection to every node
// (keyshare_unsealer_watch_mode{mode="held"}), its steady state, in which
// each keyshare round starts.
func waitHeld(ctx context.Context, topo *topology.Topology, nodes []*harness.VaultNode) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return harness.PollEvery(ctx, 20*time.Millisecond, "the coordinator to hold every node connection", func() (bool, error) {
		held := 0
		for _, n := range nodes {
			v, err := topo.CoordinatorMetric(ctx, fmt.Sprintf(`keyshare_unsealer_watch_mode{mode="held",node=%q}`, n.Name))
			if err == nil && v == 1 {
				held++
			}
		}
		return held == len(nodes), fmt.Errorf("it holds %d of %d", held, len(nodes))
	})
}

// probe is a tight HTTPS client for sys/health and the floor's loop.
type probe struct{ cl *http.Client }

func newProbe(topo *topology.Topology) *probe {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: topo.Vault.CA.Pool(), MinVersion: tls.VersionTLS12},
		DialContext:         (&net.Dialer{Timeout: 200 * time.Millisecond}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     5 * time.Second,
	}
	return &probe{cl: &http.Client{Transport: tr, Timeout: time.Second}}
}

// health returns sys/health's status code (0 if the node did not answer).
func (p *probe) health(ctx context.Context, n *harness.VaultNode) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.APIAddr()+"/v1/sys/health", nil)
	if err != nil {
		return 0
	}
	resp, err := p.cl.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// untilReady polls every 5 ms until every node is unsealed (200 or 429)
// and one is active (200), and returns the time since start.
func (p *probe) untilReady(ctx context.Context, nodes []*harness.VaultNode, start time.Time) (time.Duration, error) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	codes := make([]int, len(nodes))
	for {
		active, unsealed := 0, 0
		for i, n := range nodes {
			codes[i] = p.health(ctx, n)
			switch codes[i] {
			case http.StatusOK:
				active++
				unsealed++
			case http.StatusTooManyRequests, 473: // standby, performance standby
				unsealed++
			}
		}
		if active >= 1 && unsealed == len(nodes) {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("timed out waiting for every node unsealed and one active (health codes %v): %w", codes, ctx.Err())
		case <-tick.C:
		}
	}
}

// restartRound kills every node (kill -9), starts them again and waits
// until they are ready. It returns when the processes were started and
// how long they took to be ready.
func (p *probe) restartRound(ctx context.Context, nodes []*harness.VaultNode) (time.Time, time.Duration, error) {
	for _, n := range nodes {
		if err := n.Kill(); err != nil {
			return time.Time{}, 0, err
		}
	}
	start := time.Now()
	for _, n := range nodes {
		if err := n.Start(); err != nil {
			return start, 0, err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	d, err := p.untilReady(rctx, nodes, start)
	return start, d, err
}

// floor is the fastest unsealer possible: it already holds the keys, polls
// seal-status every 20 ms, and submits them as soon as n reports sealed.
func (p *probe) floor(ctx context.Context, n *harness.VaultNode, keys []string) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		var st struct{ Initialized, Sealed bool }
		if p.call(ctx, http.MethodGet, n.APIAddr()+"/v1/sys/seal-status", nil, &st) == nil && st.Initialized && st.Sealed {
			for _, k := range keys {
				body, _ := json.Marshal(map[string]string{"key": k})
				if p.call(ctx, http.MethodPut, n.APIAddr()+"/v1/sys/unseal", body, &st) != nil || !st.Sealed {
					break
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

func (p *probe) call(ctx context.Context, method, url string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := p.cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// exportKeys takes the paper backups of holders a and c: 3 distinct keys,
// hex, for the floor. They stay in memory.
func exportKeys(tb testing.TB, ctx context.Context, topo *topology.Topology) []string {
	tb.Helper()
	var keys []string
	for _, name := range []string{"a", "c"} {
		_, ss, err := topo.Holder(name).Export(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		for _, s := range ss {
			keys = append(keys, s.Hex())
		}
	}
	if len(keys) != 3 {
		tb.Fatalf("holders a and c exported %d shares, want 3", len(keys))
	}
	return keys
}

// breakdown reads one keyshare round from the coordinator's log: process
// start to "vault node is back", to "unsealed", and the total.
func breakdown(ctx context.Context, topo *topology.Topology, node string, off int64, start time.Time, total time.Duration) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	back, err := topology.WaitLog(wctx, topo.Coordinator, off, map[string]string{"msg": "vault node is back", "node": node})
	if err != nil {
		return "", err
	}
	uns, err := topology.WaitLog(wctx, topo.Coordinator, off, map[string]string{"msg": "unsealed", "node": node})
	if err != nil {
		return "", err
	}
	tb, err1 := time.Parse(time.RFC3339Nano, back.Get("time"))
	tu, err2 := time.Parse(time.RFC3339Nano, uns.Get("time"))
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("bad log times %q, %q", back.Get("time"), uns.Get("time"))
	}
	return fmt.Sprintf("start->back %s, back->unsealed %s (took %s), unsealed->active %s, total %s",
		tb.Sub(start).Round(time.Millisecond), tu.Sub(tb).Round(time.Millisecond), uns.Get("took"),
		(total - tu.Sub(start)).Round(time.Millisecond), total.Round(time.Millisecond)), nil
}

// summarizeParts turns the per-round breakdowns into one median row.
func summarizeParts(parts []string) []string {
	if len(parts) == 0 {
		return nil
	}
	cols := map[string][]time.Duration{}
	var order []string
	for _, p := range parts {
		for _, f := range strings.Split(p, ", ") {
			k, v, ok := strings.Cut(f, " ")
			if !ok || k == "total" {
				continue
			}
			if i := strings.Index(v, " "); i > 0 {
				v = v[:i]
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				continue
			}
			if _, seen := cols[k]; !seen {
				order = append(order, k)
			}
			cols[k] = append(cols[k], d)
		}
	}
	var out []string
	for _, k := range order {
		out = append(out, fmt.Sprintf("| 1 node, keyshare, from the coordinator's log: %s | | %d | %s | %s | %s | %s | |",
			k, len(cols[k]), fmtD(median(cols[k])), fmtD(pct(cols[k], 90)), fmtD(slices.Min(cols[k])), fmtD(slices.Max(cols[k]))))
	}
	return out
}

func benchRows(setup string, ks, fl []time.Duration) []string {
	ratio := fmt.Sprintf("%.2fx", float64(median(ks))/float64(median(fl)))
	row := func(who string, ds []time.Duration, r string) string {
		return fmt.Sprintf("| %s | %s | %d | %s | %s | %s | %s | %s |", setup, who, len(ds),
			fmtD(median(ds)), fmtD(pct(ds, 90)), fmtD(slices.Min(ds)), fmtD(slices.Max(ds)), r)
	}
	return []string{row("keyshare", ks, ratio), row("floor", fl, "")}
}

func median(ds []time.Duration) time.Duration { return pct(ds, 50) }

// pct is the nearest-rank percentile.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtD(d time.Duration) string {
	return strconv.Itoa(int(d.Round(time.Millisecond)/time.Millisecond)) + " ms"
}

func envInt(tb testing.TB, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q is not a positive number", key, v)
	}
	return n
}

// benchBinaries builds holder and unsealer without -race: the race
// detector would slow the coordinator down and skew the figures.
func benchBinaries(tb testing.TB) topology.Binaries {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	b, err := topology.BuildBinaries(ctx, tb.TempDir(), false)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
