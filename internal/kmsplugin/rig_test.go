package kmsplugin

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2"
	kmsservice "k8s.io/kms/pkg/service"

	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
)

// Loopback addresses of the simulated hosts in these tests.
const (
	pluginIP = "127.0.0.196" // the apiserver node the plugin runs on
	otherIP  = "127.0.0.197" // another node
)

func vaultIP(i int) string { return fmt.Sprintf("127.0.0.%d", 191+i) }

// rig is a fake Vault cluster with transit set up, a token for the plugin's
// host, and the plugin's config.
type rig struct {
	dir    string
	fakes  []*vaultfake.Vault
	caFile string
	admin  Admin
	cfg    Config
	logs   *proctest.Buffer // the daemon's log, for the leak checks
}

func newRig(t testing.TB, nodes int) *rig {
	t.Helper()
	dir := t.TempDir()
	ca, err := devpki.NewCA("keyshare.test")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{dir: dir, caFile: filepath.Join(dir, "vault-ca.crt"), logs: &proctest.Buffer{}}
	if err := ca.WriteCA(r.caFile); err != nil {
		t.Fatal(err)
	}
	var cfgNodes []confload.VaultNode
	for i := range nodes {
		leaf, err := ca.IssueID("vault", fmt.Sprintf("v%d", i), net.ParseIP(vaultIP(i)))
		if err != nil {
			t.Fatal(err)
		}
		f, _, err := vaultfake.New(vaultIP(i)+":0", &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, ClientAuth: tls.RequestClientCert}, 5, 3)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			f.JoinTransit(r.fakes[0])
		}
		if err := f.Start(); err != nil {
			t.Fatal(err)
		}
		f.Unseal()
		t.Cleanup(f.Stop)
		r.fakes = append(r.fakes, f)
		cfgNodes = append(cfgNodes, confload.VaultNode{Name: fmt.Sprintf("vault-%d", i+1), Address: f.URL()})
	}
	c := Default()
	c.Socket.Path = filepath.Join(dir, "kms.sock")
	c.Vault.CAFile = r.caFile
	c.Vault.Nodes = cfgNodes
	c.Vault.SourceAddr = pluginIP
	c.Vault.TokenFile = filepath.Join(dir, "vault-token")
	c.Vault.TokenCheck = 20 * time.Millisecond
	c.Vault.Timeout = 2 * time.Second
	c.Status = StatusConfig{Interval: 300 * time.Millisecond, RetryInterval: 50 * time.Millisecond, MaxAge: 10 * time.Second}
	c.MetricsListen = pluginIP + ":0"
	c.LogLevel = "debug"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r.cfg = c
	adm, err := NewVaultClient(c)
	if err != nil {
		t.Fatal(err)
	}
	adm.SetToken(r.fakes[0].TransitRootToken())
	t.Cleanup(adm.Close)
	r.admin = Admin{Vault: adm, Mount: c.Vault.Mount, Key: c.Vault.Key, Out: io.Discard}
	ctx := testCtx(t, 10*time.Second)
	if err := r.admin.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// issue writes a token for host into the plugin's token file.
func (r *rig) issue(t testing.TB, host string) string {
	t.Helper()
	_ = os.Remove(r.cfg.Vault.TokenFile)
	acc, err := r.admin.CreateToken(testCtx(t, 5*time.Second), netip.MustParseAddr(host), r.cfg.Vault.TokenFile, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return acc
}

func (r *rig) token(t testing.TB) string {
	t.Helper()
	b, err := ReadTokenFile(r.cfg.Vault.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// running is a started plugin and Kubernetes' own KMS v2 client on its
// socket.
type running struct {
	d      *Daemon
	client kmsservice.Service
	stop   func() error
}

// start runs the plugin on the rig's config and dials its socket with the
// apiserver's KMS v2 gRPC client.
func (r *rig) start(t testing.TB) *running {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := Build(r.cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(10 * time.Second):
				runErr = fmt.Errorf("plugin did not stop within 10s")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("plugin stop: %v", err)
		}
	})
	cctx, ccancel := context.WithCancel(context.Background())
	t.Cleanup(ccancel)
	client, err := kmsv2.NewGRPCService(cctx, "unix://"+r.cfg.Socket.Path, r.cfg.ProviderName, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &running{d: d, client: client, stop: stop}
}

// waitStatus polls Status through the socket until cond holds.
func waitStatus(t testing.TB, c kmsservice.Service, bound time.Duration, what string, cond func(*kmsservice.StatusResponse) bool) *kmsservice.StatusResponse {
	t.Helper()
	deadline := time.Now().Add(bound)
	var last *kmsservice.StatusResponse
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		st, err := c.Status(ctx)
		cancel()
		if err == nil && cond(st) {
			return st
		}
		last, lastErr = st, err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("status never became %s within %s: last %+v, err %v", what, bound, last, lastErr)
	return nil
}

func isOK(st *kmsservice.StatusResponse) bool { return st.Healthz == "ok" }

func healthzIs(prefix string) func(*kmsservice.StatusResponse) bool {
	return func(st *kmsservice.StatusResponse) bool { return strings.HasPrefix(st.Healthz, prefix) }
}

// currentKeyID is the key_id Vault's data gives for the key's latest
// version, computed independently of the plugin.
func (r *rig) currentKeyID(t testing.TB) string {
	t.Helper()
	k, err := r.admin.Vault.ReadKey(testCtx(t, 5*time.Second), r.cfg.Vault.Mount, r.cfg.Vault.Key)
	if err != nil {
		t.Fatal(err)
	}
	return KeyID(r.cfg.Vault.Mount, r.cfg.Vault.Key, k.LatestVersion, k.Created[k.LatestVersion])
}
