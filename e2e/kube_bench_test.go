//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/kubeharness"
	"github.com/keyshare/keyshare/e2e/topology"
)

// BenchmarkKubeSecrets measures what the keyshare KMS v2 provider costs a
// cluster: Secrets created per second through one real kube-apiserver
// (v1.34.4, one etcd v3.6.4 member with TLS) with the keyshare provider
// (plugin on its socket, key in a Vault v1.21.0 node that keyshare's
// `unsealer init` unsealed), next to the same apiserver with the identity
// provider and with aescbc, in one run. Each provider gets its own etcd
// prefix and a restarted apiserver; rounds are interleaved (kms, identity,
// aescbc, kms, ...) so that the load of the shared machine falls on all
// alike, and each row is the median of the rounds.
//
// Then the apiserver's cold start with the Secrets of the last kms round:
// the time from the process start until every one of them is readable
// (listed and compared), and how many Decrypt calls reached Vault through
// the plugin meanwhile.
//
// KEYSHARE_KUBE_BENCH_SECRETS (1000), KEYSHARE_KUBE_BENCH_ROUNDS (3) and
// KEYSHARE_KUBE_BENCH_CONCURRENCY (8 writers) tune it. It ignores b.N: run
// it with -benchtime 1x (`make bench-kube`).
func BenchmarkKubeSecrets(b *testing.B) {
	kbins := kubeharness.RequireBinaries(b)
	vault := harness.RequireVaultBinary(b)
	n := envInt(b, "KEYSHARE_KUBE_BENCH_SECRETS", 1000)
	rounds := envInt(b, "KEYSHARE_KUBE_BENCH_ROUNDS", 3)
	conc := envInt(b, "KEYSHARE_KUBE_BENCH_CONCURRENCY", 8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bins := benchBinaries(b)
	plugin, err := topology.BuildKMSPlugin(ctx, b.TempDir(), false)
	if err != nil {
		b.Fatal(err)
	}
	topo, err := topology.New(topology.Options{Dir: b.TempDir(), VaultBinary: vault, Binaries: bins,
		VaultIPs: []string{harness.DefaultVaultAddrs[0]}, RaftPerformanceMultiplier: 1, Logf: b.Logf})
	if err != nil {
		b.Fatal(err)
	}
	defer topo.Close()
	if err := topo.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := topo.Init(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := topo.Vault.WaitActive(ctx); err != nil {
		b.Fatal(err)
	}
	cp, err := kubeharness.New(kubeharness.Options{Topo: topo, Bins: kbins, PluginBin: plugin,
		Hosts: kubeharness.DefaultHosts[:1], Logf: b.Logf})
	if err != nil {
		b.Fatal(err)
	}
	defer cp.Close()
	if err := cp.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	if err := cp.Start(ctx); err != nil {
		b.Fatal(err)
	}
	h := cp.Hosts[0]
	api := h.APIServer

	// use restarts the apiserver with provider p on a fresh etcd prefix.
	use := func(p kubeharness.Provider, prefix string) *kubernetes.Clientset {
		api.EtcdPrefix = prefix
		if err := api.WriteEncryptionConfig(p, h.Plugin.Socket); err != nil {
			b.Fatal(err)
		}
		if err := api.Restart(ctx); err != nil {
			b.Fatal(err)
		}
		cs, err := api.Admin()
		if err != nil {
			b.Fatal(err)
		}
		return cs
	}
	providers := []kubeharness.Provider{kubeharness.KMS, kubeharness.Identity, kubeharness.AESCBC}
	rates := map[kubeharness.Provider][]float64{}
	var lastKMS string
	var lastValues [][]byte
	for r := range rounds {
		for _, p := range providers {
			prefix := fmt.Sprintf("/registry-%s-%d", p, r)
			cs := use(p, prefix)
			values, rate := createSecrets(b, ctx, cs, n, conc)
			rates[p] = append(rates[p], rate)
			b.Logf("round %d %s: %.0f secrets/s", r+1, p, rate)
			if p == kubeharness.KMS {
				lastKMS, lastValues = prefix, values
				checkStoredKMS(b, ctx, cp, prefix)
			}
		}
	}

	// Cold start with the n Secrets of the last kms round.
	api.EtcdPrefix = lastKMS
	if err := api.WriteEncryptionConfig(kubeharness.KMS, h.Plugin.Socket); err != nil {
		b.Fatal(err)
	}
	if err := api.Process.Stop(); err != nil {
		b.Fatal(err)
	}
	before, err := h.Decrypts(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := api.Restart(ctx); err != nil {
		b.Fatal(err)
	}
	started := api.Process.StartedAt()
	ready := time.Since(started)
	cs, err := api.Admin()
	if err != nil {
		b.Fatal(err)
	}
	if err := harness.Poll(ctx, "every secret readable after the restart", func() (bool, error) {
		return allReadable(ctx, cs, lastValues)
	}); err != nil {
		b.Fatal(err)
	}
	readable := time.Since(started)
	after, err := h.Decrypts(ctx)
	if err != nil {
		b.Fatal(err)
	}

	med := func(p kubeharness.Provider) float64 {
		xs := append([]float64(nil), rates[p]...)
		sort.Float64s(xs)
		return xs[len(xs)/2]
	}
	kms, id, cbc := med(kubeharness.KMS), med(kubeharness.Identity), med(kubeharness.AESCBC)
	fmt.Printf("\n| provider | secrets per round | writers | rounds | created/s (median) | all rounds | vs aescbc | vs identity |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, p := range providers {
		fmt.Printf("| %s | %d | %d | %d | %.0f | %s | %.2fx | %.2fx |\n", p, n, conc, rounds, med(p), fmtRates(rates[p]), med(p)/cbc, med(p)/id)
	}
	fmt.Printf("\n| cold start (kms) | secrets | process start to ready | to all readable | Decrypt calls to Vault |\n| --- | --- | --- | --- | --- |\n")
	fmt.Printf("| kube-apiserver restart | %d | %s | %s | %.0f |\n", len(lastValues), fmtD(ready), fmtD(readable), after-before)
	b.ReportMetric(kms, "kms-created/s")
	b.ReportMetric(cbc, "aescbc-created/s")
	b.ReportMetric(id, "identity-created/s")
	b.ReportMetric(kms/cbc, "kms-vs-aescbc")
	b.ReportMetric(ms(readable), "cold-readable-ms")
	b.ReportMetric(after-before, "cold-decrypts")
}

func fmtRates(xs []float64) string {
	var b bytes.Buffer
	for i, x := range xs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(int(x + 0.5)))
	}
	return b.String()
}

// createSecrets creates n Secrets of 64 random bytes in a new namespace
// with conc writers after 50 unmeasured ones, and returns their values (by
// index) and the rate.
func createSecrets(b *testing.B, ctx context.Context, cs *kubernetes.Clientset, n, conc int) ([][]byte, float64) {
	b.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	mk := func(name string) ([]byte, error) {
		v := make([]byte, 32)
		_, _ = rand.Read(v)
		val := []byte(hex.EncodeToString(v))
		_, err := cs.CoreV1().Secrets("bench").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string][]byte{"value": val}}, metav1.CreateOptions{})
		return val, err
	}
	for i := range 50 {
		if _, err := mk("warmup-" + strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
	}
	values := make([][]byte, n)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				v, err := mk(fmt.Sprintf("s-%05d", i))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				values[i] = v
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	return values, float64(n) / took.Seconds()
}

// checkStoredKMS makes sure a kms round really stored its Secrets through
// the plugin: every one under the bench namespace has the KMS v2 prefix.
func checkStoredKMS(b *testing.B, ctx context.Context, cp *kubeharness.ControlPlane, prefix string) {
	b.Helper()
	kvs, err := cp.Etcd.List(ctx, prefix+"/secrets/bench/")
	if err != nil {
		b.Fatal(err)
	}
	for _, kv := range kvs {
		if _, err := kubeharness.ParseStored(kv.Value); err != nil {
			b.Fatalf("%s: %v", kv.Key, err)
		}
	}
	if len(kvs) == 0 {
		b.Fatalf("no secret stored under %s", prefix)
	}
}

// allReadable lists the bench namespace and compares every s-NNNNN Secret
// with its value.
func allReadable(ctx context.Context, cs *kubernetes.Clientset, values [][]byte) (bool, error) {
	list, err := cs.CoreV1().Secrets("bench").List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err
	}
	seen := 0
	for _, s := range list.Items {
		var i int
		if _, err := fmt.Sscanf(s.Name, "s-%05d", &i); err != nil || i >= len(values) {
			continue
		}
		if !bytes.Equal(s.Data["value"], values[i]) {
			return false, fmt.Errorf("secret %s differs from what was written", s.Name)
		}
		seen++
	}
	if seen != len(values) {
		return false, fmt.Errorf("%d of %d secrets listed", seen, len(values))
	}
	return true, nil
}
