//go:build costs

package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/coordinator"
	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/internal/vaultnode"
)

// coordinatorSpecEnv names the spec file of a re-executed coordinator.
const coordinatorSpecEnv = "KEYSHARE_COSTS_COORDINATOR_SPEC"

// fakeVaultIPs serve the fake Vault nodes the coordinator watches, round
// robin, so that no single listening address is the bottleneck.
var fakeVaultIPs = []string{"127.0.0.225", "127.0.0.226", "127.0.0.227", "127.0.0.228", "127.0.0.229",
	"127.0.0.230", "127.0.0.231", "127.0.0.232", "127.0.0.233", "127.0.0.234"}

// Profiling the re-executed coordinator: KEYSHARE_COSTS_CPUPROFILE names a
// folder; each coordinator writes coordinator-<n>.cpu.pprof there over the
// sampling window (go tool pprof -top <file>).
const cpuProfileEnv = "KEYSHARE_COSTS_CPUPROFILE"

type coordinatorSpec struct {
	CA    string            `json:"ca"`
	Nodes map[string]string `json:"nodes"` // name -> URL
	// Profile, if set, is written with a CPU profile taken from the
	// parent's SIGUSR1 (the start of its window) until the process ends.
	Profile string `json:"profile,omitempty"`
}

// noHolders is a deployment whose holders are all down: the watched nodes
// stay unsealed, so the coordinator only watches.
type noHolders struct{}

func (noHolders) Refs() []unseal.HolderRef                     { return nil }
func (noHolders) Total() int                                   { return 3 }
func (noHolders) Commit(context.Context, string, uint64) error { return nil }

// runCoordinator is the re-executed process: a coordinator with default
// options watching the nodes of the spec until SIGTERM.
func runCoordinator(specFile string) error {
	b, err := os.ReadFile(specFile)
	if err != nil {
		return err
	}
	var spec coordinatorSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return err
	}
	var nodes []coordinator.Node
	for name, url := range spec.Nodes {
		n, err := vaultnode.New(name, url, vaultnode.Options{CACert: []byte(spec.CA)})
		if err != nil {
			return err
		}
		nodes = append(nodes, coordinator.Node{Name: name, Vault: n})
	}
	c, err := coordinator.New(nodes, noHolders{}, coordinator.Options{})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if spec.Profile != "" {
		f, err := os.Create(spec.Profile)
		if err != nil {
			return err
		}
		defer f.Close()
		// The parent sends SIGUSR1 when its window starts.
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			select {
			case <-usr1:
			case <-ctx.Done():
				return
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintln(os.Stderr, "cpu profile:", err)
			}
		}()
		defer pprof.StopCPUProfile()
	}
	fmt.Println("watching", len(nodes))
	start := time.Now()
	go func() {
		// Tell the parent once every node is in its steady state (its
		// connection held), so that start-up stays out of the window.
		for ctx.Err() == nil {
			held := 0
			for _, s := range c.State() {
				if s.Mode == coordinator.ModeHeld {
					held++
				}
			}
			if held == len(nodes) {
				fmt.Println("held", len(nodes), time.Since(start).Round(time.Millisecond))
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	if err := c.Run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// TestCoordinatorIdleCost runs the coordinator (coordinator.Options
// defaults: a held connection per node, a safety-net seal-status poll every
// 10 s with jitter) in its own process against 3, 100 and 1,000 unsealed
// fake Vault nodes, and samples that process's CPU time and RSS.
func TestCoordinatorIdleCost(t *testing.T) {
	for _, n := range []int{3, 100, 1000} {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) { coordinatorCost(t, n) })
	}
}

func coordinatorCost(t *testing.T, n int) {
	dir := t.TempDir()
	ca, err := devpki.NewCA("vault.test")
	if err != nil {
		t.Fatal(err)
	}
	var ips []net.IP
	for _, ip := range fakeVaultIPs {
		ips = append(ips, net.ParseIP(ip))
	}
	leaf, err := ca.IssueID("vault", "fake", ips...)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}
	spec := coordinatorSpec{CA: string(ca.CertPEM), Nodes: map[string]string{}}
	fakes := make([]*vaultfake.Vault, n)
	ctx := context.Background()
	for i := range fakes {
		f, raw, err := vaultfake.New(fakeVaultIPs[i%len(fakeVaultIPs)]+":0", tlsCfg, 5, 3)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.Stop)
		fakes[i] = f
		name := fmt.Sprintf("vault-%d", i+1)
		spec.Nodes[name] = f.URL()
		vn, err := vaultnode.New(name, f.URL(), vaultnode.Options{CACert: ca.CertPEM})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range raw[:3] {
			if _, err := vn.Unseal(ctx, r); err != nil {
				t.Fatalf("unsealing fake %s: %v", name, err)
			}
		}
		if f.Sealed() {
			t.Fatalf("fake %s still sealed", name)
		}
	}
	// Start-up (the first TLS handshakes to every node, held connection
	// and poller's) is not idle cost: the window starts settle after the
	// coordinator says every node is held.
	const settle = 2 * time.Second
	w := window(t)
	profileAfter := make(chan struct{})
	if d := os.Getenv(cpuProfileEnv); d != "" {
		spec.Profile = filepath.Join(d, fmt.Sprintf("coordinator-%d.cpu.pprof", n))
		close(profileAfter)
	}
	specFile := filepath.Join(dir, "spec.json")
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(specFile, b, 0o600); err != nil {
		t.Fatal(err)
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), coordinatorSpecEnv+"="+specFile)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	rd := bufio.NewReader(stdout)
	line, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "watching") {
		t.Fatalf("coordinator did not start: %q %v", line, err)
	}
	heldLine := make(chan string, 1)
	go func() { l, _ := rd.ReadString('\n'); heldLine <- l }()
	warmStart := time.Now()
	select {
	case l := <-heldLine:
		if !strings.HasPrefix(l, "held") {
			t.Fatalf("coordinator said %q, want every node held", l)
		}
		t.Logf("every node held after %s (coordinator's count: %s)", time.Since(warmStart).Round(time.Millisecond), strings.TrimSpace(l))
	case <-time.After(5 * time.Minute):
		t.Fatal("not every node held after 5 minutes")
	}
	warm := sample(t, cmd.Process.Pid, settle)
	select {
	case <-profileAfter:
		if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
	default:
	}
	u := sample(t, cmd.Process.Pid, w)
	t.Logf("coordinator watching %d nodes: %s (settling: %s)", n, u, warm)
	for i, f := range fakes {
		if f.Sealed() || f.Stats().Submitted != 3 {
			t.Fatalf("fake %d was sealed or got shares during the window", i+1)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("coordinator exited during the window: %v", err)
	default:
	}
	setup := fmt.Sprintf("coordinator process (Options defaults: held connection, safety-net poll every 10 s) watching %d unsealed fake Vaults over TLS on %d loopback addresses, %s",
		n, min(n, len(fakeVaultIPs)), w)
	cpuGoal, rssGoal := "", ""
	switch n {
	case 100:
		cpuGoal = "< 1%"
	case 1000:
		cpuGoal, rssGoal = "< 5%", "< 150 MB"
	}
	record(fmt.Sprintf("coordinator CPU, %d nodes", n), fmt.Sprintf("%.2f%% of a core", u.cpuPercent), cpuGoal, setup)
	record(fmt.Sprintf("coordinator RSS, %d nodes", n), fmt.Sprintf("%.1f MB (max %.1f)", u.rssMeanMB, u.rssMaxMB), rssGoal, setup)
}
