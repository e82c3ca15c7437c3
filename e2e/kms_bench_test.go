//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2"
	kmsservice "k8s.io/kms/pkg/service"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/kmsplugin"
)

// BenchmarkKMSPlugin measures the KMS plugin's Encrypt and Decrypt through
// its unix socket with the apiserver's own KMS v2 gRPC client, against the
// real Vault (one raft node, unsealed, transit set up by the plugin's
// provisioning code, a token bound to 127.0.0.41), next to the floor: the
// same transit call (same key version, same associated data, same token,
// same source address) made directly over HTTPS by a kept-alive client in
// this process. Rounds are interleaved (floor encrypt, plugin encrypt,
// floor decrypt, plugin decrypt) so that the load of the shared machine
// falls on both alike. KEYSHARE_KMS_BENCH_ROUNDS sets the rounds (default
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
	if err := cluster.Start(ctx); err != nil {
		b.Fatal(err)
	}
	init, err := cluster.Init(ctx, 1, 1)
	if err != nil {
		b.Fatal(err)
	}
	if err := cluster.UnsealAll(ctx, init.KeysB64); err != nil {
		b.Fatal(err)
	}
	node, err := cluster.WaitActive(ctx)
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
	adminClient, err := kmsplugin.NewVaultClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	adminClient.SetToken(init.RootToken)
	admin := kmsplugin.Admin{Vault: adminClient, Mount: cfg.Vault.Mount, Key: cfg.Vault.Key, Out: io.Discard}
	if err := admin.Setup(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := admin.CreateToken(ctx, netip.MustParseAddr(topology.KMSHostA), cfg.Vault.TokenFile, time.Hour); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "kmsplugin.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	d, err := kmsplugin.Build(cfg, slog.New(slog.NewJSONHandler(logf, nil)))
	if err != nil {
		b.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(pctx) }()
	defer func() { pcancel(); <-done }()
	client, err := kmsv2.NewGRPCService(ctx, "unix://"+cfg.Socket.Path, "keyshare", 3*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	var st *kmsservice.StatusResponse
	if err := pollUntil(ctx, "plugin status ok", func() (bool, error) {
		st, err = client.Status(ctx)
		return err == nil && st.Healthz == "ok", err
	}); err != nil {
		b.Fatal(err)
	}
	tok, err := kmsplugin.ReadTokenFile(cfg.Vault.TokenFile)
	if err != nil {
		b.Fatal(err)
	}
	floor := newFloorClient(b, cluster.CAPath, topology.KMSHostA, node.APIAddr(), string(tok))
	key, err := adminClient.ReadKey(ctx, cfg.Vault.Mount, cfg.Vault.Key)
	if err != nil {
		b.Fatal(err)
	}
	version := key.LatestVersion

	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	var fe, pe, fd, pd []time.Duration
	step := func(record bool) {
		t0 := time.Now()
		fct := floor.encrypt(b, seed, version)
		t1 := time.Now()
		enc, err := client.Encrypt(ctx, "bench", seed)
		t2 := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		got := floor.decrypt(b, fct)
		t3 := time.Now()
		pgot, err := client.Decrypt(ctx, "bench", &kmsservice.DecryptRequest{Ciphertext: enc.Ciphertext, KeyID: enc.KeyID})
		t4 := time.Now()
		if err != nil || !bytes.Equal(got, seed) || !bytes.Equal(pgot, seed) {
			b.Fatalf("round trip: %v", err)
		}
		if record {
			fe, pe, fd, pd = append(fe, t1.Sub(t0)), append(pe, t2.Sub(t1)), append(fd, t3.Sub(t2)), append(pd, t4.Sub(t3))
		}
	}
	for range 100 {
		step(false)
	}
	b.ResetTimer()
	for range rounds {
		step(true)
	}
	b.StopTimer()
	row := func(op string, plugin, fl []time.Duration) {
		r50 := float64(pct(plugin, 50)) / float64(pct(fl, 50))
		r99 := float64(pct(plugin, 99)) / float64(pct(fl, 99))
		fmt.Printf("| %s | %d | %s | %s | %s | %s | %.2fx | %.2fx |\n", op, len(plugin),
			us(pct(plugin, 50)), us(pct(plugin, 99)), us(pct(fl, 50)), us(pct(fl, 99)), r50, r99)
		b.ReportMetric(r50, op+"-ratio-p50")
		b.ReportMetric(float64(pct(plugin, 50).Microseconds()), op+"-plugin-p50-us")
		b.ReportMetric(float64(pct(fl, 50).Microseconds()), op+"-floor-p50-us")
	}
	fmt.Printf("\n| op | rounds | plugin p50 | plugin p99 | floor p50 | floor p99 | p50 ratio | p99 ratio |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	row("Encrypt", pe, fe)
	row("Decrypt", pd, fd)
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

// floorClient is the direct transit call: a kept-alive HTTPS client from
// the plugin host's address, the pinned CA, HTTP/2 as the plugin's.
type floorClient struct {
	hc   *http.Client
	addr string
	tok  string
}

func newFloorClient(tb testing.TB, caFile, src, addr, tok string) *floorClient {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4}
	return &floorClient{hc: &http.Client{Transport: tr}, addr: addr, tok: tok}
}

func (f *floorClient) call(tb testing.TB, path string, body map[string]any, out any) {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", f.addr+"/v1/transit/"+path+"/kubernetes", bytes.NewReader(raw))
	req.Header.Set("X-Vault-Token", f.tok)
	resp, err := f.hc.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("floor %s: HTTP %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		tb.Fatal(err)
	}
}

var benchAD = base64.StdEncoding.EncodeToString([]byte("keyshare kms v2 seed"))

func (f *floorClient) encrypt(tb testing.TB, pt []byte, version int) string {
	var r struct {
		Data struct {
			Ciphertext string `json:"ciphertext"`
		} `json:"data"`
	}
	f.call(tb, "encrypt", map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt), "associated_data": benchAD, "key_version": version}, &r)
	return r.Data.Ciphertext
}

func (f *floorClient) decrypt(tb testing.TB, ct string) []byte {
	var r struct {
		Data struct {
			Plaintext string `json:"plaintext"`
		} `json:"data"`
	}
	f.call(tb, "decrypt", map[string]any{"ciphertext": ct, "associated_data": benchAD}, &r)
	pt, err := base64.StdEncoding.DecodeString(r.Data.Plaintext)
	if err != nil {
		tb.Fatal(err)
	}
	return pt
}
