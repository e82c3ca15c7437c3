//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2"
	kmsservice "k8s.io/kms/pkg/service"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/kmsplugin"
	"github.com/keyshare/keyshare/internal/transit"
)

// BenchmarkKMSPlugin measures the KMS plugin's Encrypt and Decrypt through
// its unix socket with the apiserver's own KMS v2 gRPC client, against the
// real Vault (one raft node, unsealed, transit set up by the plugin's
// provisioning code, a token bound to 127.0.0.41), next to the floor: the
// same transit call (same node, same key version, same associated data,
// same token, same source address) made directly from this process over
// the plugin's own HTTP transport (transit.NewHTTPClient: same TLS, same
// protocol, kept alive).
//
// Rounds are interleaved so that the load of the shared machine falls on
// both alike: plugin encrypt, an untimed floor encrypt, plugin decrypt, an
// untimed floor encrypt, floor encrypt, floor decrypt. Every timed call
// follows a floor call, so no timed call is charged with the gRPC work a
// plugin call leaves behind (the apiserver's client pings the socket after
// each answer, and the plugin acknowledges).
//
// A second phase times the plugin's own Vault client called directly (no
// socket) against the floor the same way: it shows what the client code
// adds. KEYSHARE_KMS_BENCH_ROUNDS sets the rounds of each phase (default
// 2000). It ignores b.N: run it with -benchtime 1x.
func BenchmarkKMSPlugin(b *testing.B) {
	vault := harness.RequireVaultBinary(b)
	rounds := envInt(b, "KEYSHARE_KMS_BENCH_ROUNDS", 2000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := b.TempDir()
	cluster, err := harness.NewVaultCluster(harness.VaultClusterOptions{Binary: vault, BaseDir: filepath.Join(dir, "vault"),
		IPs: []string{"127.0.0.101"}, RaftPerformanceMultiplier: 1, Logf: b.Logf})
	if err != nil {
		b.Fatal(err)
	}
	defer cluster.Close()
	init, node, err := cluster.Bootstrap(ctx, 1, 1)
	if err != nil {
		b.Fatal(err)
	}

	cfg := kmsplugin.Default()
	cfg.Socket.Path = filepath.Join(dir, "kms.sock")
	cfg.Vault.CAFile = cluster.CAPath
	cfg.Vault.Nodes = []confload.VaultNode{{Name: node.Name, Address: node.APIAddr()}}
	cfg.Vault.SourceAddr = topology.KMSHostA
	cfg.Vault.TokenFile = filepath.Join(dir, "vault-token")
	cfg.MetricsListen = topology.KMSHostA + ":0"
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	adminClient := provisionTransit(b, ctx, cfg, init.RootToken)
	if os.Getenv("KEYSHARE_KMS_BENCH_PLUGIN") == "process" {
		stop := startPluginProcess(b, ctx, dir, cfg)
		defer stop()
	} else {
		stop := startPluginInProcess(b, ctx, dir, cfg)
		defer stop()
	}
	client, err := kmsv2.NewGRPCService(ctx, "unix://"+cfg.Socket.Path, "keyshare", 3*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	var st *kmsservice.StatusResponse
	if err := harness.Poll(ctx, "plugin status ok", func() (bool, error) {
		st, err = client.Status(ctx)
		return err == nil && st.Healthz == "ok", err
	}); err != nil {
		b.Fatal(err)
	}
	tok, err := kmsplugin.ReadTokenFile(cfg.Vault.TokenFile)
	if err != nil {
		b.Fatal(err)
	}
	ca, err := os.ReadFile(cluster.CAPath)
	if err != nil {
		b.Fatal(err)
	}
	floor := newFloorClient(b, transit.Options{Addrs: []string{node.APIAddr()}, CACert: ca, SourceAddr: topology.KMSHostA},
		node.APIAddr(), cfg.Vault.Mount, cfg.Vault.Key, string(tok))
	direct, err := kmsplugin.NewVaultClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	direct.SetToken(string(tok))
	key, err := adminClient.ReadKey(ctx, cfg.Vault.Mount, cfg.Vault.Key)
	if err != nil {
		b.Fatal(err)
	}
	version := key.LatestVersion

	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	var fe, pe, fd, pd []time.Duration
	round := func(record bool) {
		t0 := time.Now()
		enc, err := client.Encrypt(ctx, "bench", seed)
		t1 := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		floor.encrypt(b, seed, version) // untimed: lets the socket's work settle
		t2 := time.Now()
		pgot, err := client.Decrypt(ctx, "bench", &kmsservice.DecryptRequest{Ciphertext: enc.Ciphertext, KeyID: enc.KeyID})
		tpd := time.Since(t2)
		if err != nil || !bytes.Equal(pgot, seed) {
			b.Fatalf("plugin round trip: %v", err)
		}
		floor.encrypt(b, seed, version) // untimed, as above
		t3 := time.Now()
		fct := floor.encrypt(b, seed, version)
		t4 := time.Now()
		got := floor.decrypt(b, fct)
		t5 := time.Now()
		if !bytes.Equal(got, seed) {
			b.Fatal("floor round trip: wrong plaintext")
		}
		if record {
			pe, pd, fe, fd = append(pe, t1.Sub(t0)), append(pd, tpd), append(fe, t4.Sub(t3)), append(fd, t5.Sub(t4))
		}
	}
	var ce, cd, fe2, fd2 []time.Duration
	clientRound := func(record bool) {
		t0 := time.Now()
		ct, _, err := direct.Encrypt(ctx, cfg.Vault.Mount, cfg.Vault.Key, seed, benchADRaw, version)
		t1 := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		got, err := direct.Decrypt(ctx, cfg.Vault.Mount, cfg.Vault.Key, ct, benchADRaw)
		t2 := time.Now()
		if err != nil || !bytes.Equal(got, seed) {
			b.Fatalf("client round trip: %v", err)
		}
		fct := floor.encrypt(b, seed, version)
		t3 := time.Now()
		floor.decrypt(b, fct)
		t4 := time.Now()
		if record {
			ce, cd, fe2, fd2 = append(ce, t1.Sub(t0)), append(cd, t2.Sub(t1)), append(fe2, t3.Sub(t2)), append(fd2, t4.Sub(t3))
		}
	}
	for range 100 {
		round(false)
		clientRound(false)
	}
	load0 := loadAvg()
	b.ResetTimer()
	for range rounds {
		round(true)
	}
	for range rounds {
		clientRound(true)
	}
	b.StopTimer()
	load1 := loadAvg()
	row := func(op string, plugin, fl []time.Duration) {
		r50 := float64(pct(plugin, 50)) / float64(pct(fl, 50))
		r99 := float64(pct(plugin, 99)) / float64(pct(fl, 99))
		fmt.Printf("| %s | %d | %s | %s | %s | %s | %.2fx | %.2fx |\n", op, len(plugin),
			us(pct(plugin, 50)), us(pct(plugin, 99)), us(pct(fl, 50)), us(pct(fl, 99)), r50, r99)
		name := strings.ReplaceAll(op, " ", "-")
		b.ReportMetric(r50, name+"-ratio-p50")
		b.ReportMetric(float64(pct(plugin, 50).Microseconds()), name+"-p50-us")
		b.ReportMetric(float64(pct(fl, 50).Microseconds()), name+"-floor-p50-us")
	}
	fmt.Printf("\n| load average (1 min): %s at the start, %s at the end |\n", load0, load1)
	fmt.Printf("\n| op | rounds | p50 | p99 | floor p50 | floor p99 | p50 ratio | p99 ratio |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	row("Encrypt", pe, fe)
	row("Decrypt", pd, fd)
	row("client Encrypt", ce, fe2)
	row("client Decrypt", cd, fd2)
}

// startPluginInProcess runs the plugin's daemon in this process.
func startPluginInProcess(b *testing.B, ctx context.Context, dir string, cfg kmsplugin.Config) (stop func()) {
	logf, err := os.Create(filepath.Join(dir, "kmsplugin.log"))
	if err != nil {
		b.Fatal(err)
	}
	d, err := kmsplugin.Build(cfg, slog.New(slog.NewJSONHandler(logf, nil)))
	if err != nil {
		b.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(pctx) }()
	return func() { pcancel(); <-done; logf.Close() }
}

// startPluginProcess runs `kmsplugin serve` (built without -race) as its
// own process, as on an apiserver node, with the configuration of cfg.
// KEYSHARE_KMS_BENCH_PLUGIN_GOMAXPROCS, if set, is its GOMAXPROCS.
func startPluginProcess(b *testing.B, ctx context.Context, dir string, cfg kmsplugin.Config) (stop func()) {
	bin, err := topology.BuildKMSPlugin(ctx, dir, false)
	if err != nil {
		b.Fatal(err)
	}
	n := cfg.Vault.Nodes[0]
	conf := fmt.Sprintf(`provider_name: keyshare
socket:
  path: %s
vault:
  ca_file: %s
  nodes:
    - {name: %s, address: "%s"}
  source_addr: %s
  token_file: %s
metrics_listen: %s
log_level: info
`, cfg.Socket.Path, cfg.Vault.CAFile, n.Name, n.Address, cfg.Vault.SourceAddr, cfg.Vault.TokenFile, cfg.MetricsListen)
	confPath := filepath.Join(dir, "kmsplugin.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	if v := os.Getenv("KEYSHARE_KMS_BENCH_PLUGIN_GOMAXPROCS"); v != "" {
		env = append(env, "GOMAXPROCS="+v)
	}
	p := &harness.Process{Name: "kmsplugin", Path: bin, Args: []string{"serve", "-c", confPath}, Env: env,
		LogPath: filepath.Join(dir, "kmsplugin.log")}
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	return func() { _ = p.Stop() }
}

// loadAvg is the machine's 1-minute load average, for the report.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

// floorClient is the direct transit call: the plugin's own HTTP transport
// (transit.NewHTTPClient: pinned CA, same protocol, kept alive, same source
// address), the least code around it.
type floorClient struct {
	hc                  *http.Client
	encURL, decURL, tok string
}

func newFloorClient(tb testing.TB, o transit.Options, addr, mount, key, tok string) *floorClient {
	hc, err := transit.NewHTTPClient(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(hc.CloseIdleConnections)
	return &floorClient{hc: hc, tok: tok,
		encURL: addr + "/v1/" + mount + "/encrypt/" + key, decURL: addr + "/v1/" + mount + "/decrypt/" + key}
}

func (f *floorClient) call(tb testing.TB, url string, body map[string]any, out any) {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(raw))
	req.Header.Set("X-Vault-Token", f.tok)
	resp, err := f.hc.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("floor %s: HTTP %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		tb.Fatal(err)
	}
}

// benchADRaw is the plugin's associated data (kmsplugin's associatedData).
var benchADRaw = []byte("keyshare kms v2 seed")

var benchAD = base64.StdEncoding.EncodeToString(benchADRaw)

func (f *floorClient) encrypt(tb testing.TB, pt []byte, version int) string {
	var r struct {
		Data struct {
			Ciphertext string `json:"ciphertext"`
		} `json:"data"`
	}
	f.call(tb, f.encURL, map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt), "associated_data": benchAD, "key_version": version}, &r)
	return r.Data.Ciphertext
}

func (f *floorClient) decrypt(tb testing.TB, ct string) []byte {
	var r struct {
		Data struct {
			Plaintext string `json:"plaintext"`
		} `json:"data"`
	}
	f.call(tb, f.decURL, map[string]any{"ciphertext": ct, "associated_data": benchAD}, &r)
	pt, err := base64.StdEncoding.DecodeString(r.Data.Plaintext)
	if err != nil {
		tb.Fatal(err)
	}
	return pt
}

// provisionTransit sets transit up with the plugin's own provisioning code
// (as `kmsplugin vault setup`) and writes a token bound to
// topology.KMSHostA into cfg's token file. It returns the admin client,
// closed when the benchmark ends.
func provisionTransit(b *testing.B, ctx context.Context, cfg kmsplugin.Config, rootToken string) *transit.Client {
	b.Helper()
	adminClient, err := kmsplugin.NewVaultClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(adminClient.Close)
	adminClient.SetToken(rootToken)
	admin := kmsplugin.Admin{Vault: adminClient, Mount: cfg.Vault.Mount, Key: cfg.Vault.Key, Out: io.Discard}
	if err := admin.Setup(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := admin.CreateToken(ctx, netip.MustParseAddr(topology.KMSHostA), cfg.Vault.TokenFile, time.Hour); err != nil {
		b.Fatal(err)
	}
	return adminClient
}
