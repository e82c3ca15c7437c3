//go:build costs

package bench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/holdercfg"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Addresses: holders on 127.0.0.221-223, their fake Vault on .224, the
// probing unsealer on .220.
const (
	holderBase   = 220
	holderVault  = "127.0.0.224"
	unsealerAddr = "127.0.0.220"
)

func ip(n int) string { return fmt.Sprintf("127.0.0.%d", n) }

// anyAddr is host:0: a holder binds a port the kernel picks, and the test
// reads it back from the holder's log (holderProc.bound); never a port
// picked free and bound later.
func anyAddr(host string) string { return net.JoinHostPort(host, "0") }

// buildHolder builds the holder binary as shipped (no race detector).
func buildHolder(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "holder")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/holder").CombinedOutput()
	if err != nil {
		t.Fatalf("failed to build holder: %v\n%s", err, out)
	}
	return bin
}

type holderProc struct {
	name, listen, gossip, metrics string
	cmd                           *exec.Cmd
	done                          chan error
	out                           *lockedWriter
}

// bound waits for the holder's log line msg and returns its attribute key.
func (h *holderProc) bound(t *testing.T, msg, key string) string {
	t.Helper()
	var v string
	proctest.WaitForErr(t, 60*time.Second, fmt.Sprintf("holder %s to log %q", h.name, msg), func() error {
		h.out.mu.Lock()
		text := h.out.w.String()
		h.out.mu.Unlock()
		for _, line := range strings.Split(text, "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
				if s, ok := m[key].(string); ok && s != "" {
					v = s
					return nil
				}
			}
		}
		return errors.New("not yet")
	})
	return v
}

// TestHolderIdleCost runs three real holder processes that gossip with one
// another (memberlist LAN defaults, mutual TLS) and hold their shares, and
// samples each one's CPU time and RSS while nothing asks for a share.
func TestHolderIdleCost(t *testing.T) {
	bin := buildHolder(t)
	dir := t.TempDir()
	ca, err := devpki.NewCA("keyshare.test")
	if err != nil {
		t.Fatal(err)
	}
	vca, err := devpki.NewCA("vault.test")
	if err != nil {
		t.Fatal(err)
	}
	caFile, vcaFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "vault-ca.crt")
	if err := ca.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	if err := vca.WriteCA(vcaFile); err != nil {
		t.Fatal(err)
	}
	vleaf, err := vca.IssueID("vault", "v1", net.ParseIP(holderVault))
	if err != nil {
		t.Fatal(err)
	}
	fake, raw, err := vaultfake.New(holderVault+":0", &tls.Config{Certificates: []tls.Certificate{vleaf.TLSCertificate()}}, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Stop)
	var all []shares.Share
	for i, r := range raw {
		all = append(all, shares.Share{Index: uint8(i + 1), Value: r})
	}
	manifest := filepath.Join(dir, "manifest.json")
	mb, err := json.Marshal(shares.NewManifest(1, 3, all))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, mb, 0o600); err != nil {
		t.Fatal(err)
	}

	names := []string{"a", "b", "c"}
	plan := shares.DefaultPlan([3]string{"a", "b", "c"}).Indices()
	hs := make([]*holderProc, 3)
	for i, name := range names {
		h := ip(holderBase + 1 + i)
		hs[i] = &holderProc{name: name, listen: anyAddr(h), gossip: anyAddr(h), metrics: anyAddr(h)}
	}
	// One after the other: each seeds its gossip with the addresses the
	// ones before it bound.
	var seeds []string
	for i, h := range hs {
		leaf, err := ca.IssueID("holder", h.name, net.ParseIP(ip(holderBase+1+i)))
		if err != nil {
			t.Fatal(err)
		}
		cert, key, err := leaf.WriteFiles(dir, "holder-"+h.name)
		if err != nil {
			t.Fatal(err)
		}
		hdir := filepath.Join(dir, "h-"+h.name)
		if err := os.Mkdir(hdir, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(hdir, "holder.yaml")
		hc := holdercfg.Config{
			ID: ca.ID("holder", h.name), Listen: h.listen, GossipBind: h.gossip, Seeds: seeds,
			CAFile: caFile, CertFile: cert, KeyFile: key,
			StoreDir: filepath.Join(hdir, "store"), SealKeyFile: filepath.Join(hdir, "seal.key"), AuditFile: filepath.Join(hdir, "audit.log"),
			VaultCAFile: vcaFile, VaultURL: fake.URL(), UnsealerCIDR: unsealerAddr + "/32",
			MetricsListen: h.metrics, LogLev: "info",
		}
		if err := hc.Write(cfg); err != nil {
			t.Fatal(err)
		}
		run(t, bin, "", "keygen", filepath.Join(hdir, "seal.key"))
		var lines strings.Builder
		for _, x := range plan[h.name] {
			fmt.Fprintf(&lines, "%d %s\n", x, all[x-1].Hex())
		}
		run(t, bin, lines.String(), "import", "-c", cfg, "--manifest", manifest)
		h.start(t, bin, cfg)
		h.listen = h.bound(t, "holder serving", "listen")
		h.gossip = h.bound(t, "holder serving", "gossip")
		h.metrics = h.bound(t, "metrics listening", "metrics_listen")
		seeds = append(seeds, fmt.Sprintf("%q", h.gossip))
	}

	// Wait until every holder serves and sees all three alive.
	unsealer := source(t, ca, dir, "unsealer", "u1")
	ctx := context.Background()
	for _, h := range hs {
		id := spiffeid.RequireFromString(ca.ID("holder", h.name))
		c, err := sharerpc.Dial(h.listen, unsealer.ClientConfig(identity.AllowIDs(id)), id,
			sharerpc.ClientOptions{LocalAddr: netip.MustParseAddr(unsealerAddr), CallTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		proctest.WaitForErr(t, 60*time.Second, "holder "+h.name+" to serve", func() error { return c.Health(ctx) })
		_ = c.Close()
		proctest.WaitForErr(t, 60*time.Second, "holder "+h.name+" to see 3 members alive", func() error {
			m, err := httpGet("http://" + h.metrics + "/metrics")
			if err != nil {
				return err
			}
			if !strings.Contains(m, `keyshare_holder_members{state="alive"} 3`) {
				return fmt.Errorf("members: %s", grep(m, "keyshare_holder_members"))
			}
			return nil
		})
	}

	w := window(t)
	pids := []int{hs[0].cmd.Process.Pid, hs[1].cmd.Process.Pid, hs[2].cmd.Process.Pid}
	us := sampleAll(t, pids, w)
	var worstCPU, worstRSS float64
	for i, u := range us {
		t.Logf("holder %s: %s", hs[i].name, u)
		worstCPU, worstRSS = max(worstCPU, u.cpuPercent), max(worstRSS, u.rssMaxMB)
	}
	for _, h := range hs {
		select {
		case err := <-h.done:
			t.Fatalf("holder %s exited during the window: %v", h.name, err)
		default:
		}
	}
	fig := func(f func(usage) float64, format string) string {
		var parts []string
		for _, u := range us {
			parts = append(parts, fmt.Sprintf(format, f(u)))
		}
		return strings.Join(parts, " / ")
	}
	setup := fmt.Sprintf("3 `holder run` processes gossiping (LAN defaults), shares held, no requests, %s", w)
	record("holder idle CPU (a / b / c)", fig(func(u usage) float64 { return u.cpuPercent }, "%.2f%%")+" of a core", "< 1%", setup)
	record("holder idle RSS (a / b / c)", fig(func(u usage) float64 { return u.rssMeanMB }, "%.1f")+" MB (max "+fmt.Sprintf("%.1f", worstRSS)+")", "< 30 MB", setup)
	record("holder peak RSS since start (a / b / c)", fig(func(u usage) float64 { return u.hwmMB }, "%.1f")+" MB", "", "VmHWM: start-up, store open and gossip join included")
	if worstCPU >= 1 {
		t.Errorf("a holder used %.2f%% of a core at idle; the goal is under 1%%", worstCPU)
	}
	if worstRSS >= 30 {
		t.Errorf("a holder's RSS reached %.1f MB at idle; the goal is under 30 MB", worstRSS)
	}
}

func (h *holderProc) start(t *testing.T, bin, cfg string) {
	t.Helper()
	h.done = make(chan error, 1)
	h.cmd = exec.Command(bin, "run", "-c", cfg)
	out := &strings.Builder{}
	lw := &lockedWriter{w: out}
	h.out = lw
	h.cmd.Stdout, h.cmd.Stderr = lw, lw
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.done <- h.cmd.Wait() }()
	t.Cleanup(func() {
		_ = h.cmd.Process.Kill()
		<-h.done
		if t.Failed() {
			t.Logf("holder %s output:\n%s", h.name, out.String())
		}
	})
}

// run runs a one-shot holder command, failing the test on a non-zero exit.
func run(t *testing.T, bin, stdin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("holder %s: %v\n%s", args[0], err, out)
	}
}

// source writes a certificate for role/name and returns its identity source.
func source(t *testing.T, ca *devpki.CA, dir, role, name string) *identity.Source {
	t.Helper()
	leaf, err := ca.IssueID(role, name)
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := leaf.WriteFiles(dir, role+"-"+name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := identity.New(identity.Options{CAFile: filepath.Join(dir, "ca.crt"), CertFile: c, KeyFile: k})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

// lockedWriter serializes writes from a process and reads by the test.
type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
