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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/coordinator"
	"github.com/keyshare/keyshare/internal/devpki"
	"github.com/keyshare/keyshare/internal/vaultfake"
	"github.com/keyshare/keyshare/internal/vaultnode"
)

// coordinatorSpecEnv names the spec file of a re-executed coordinator.
const coordinatorSpecEnv = "KEYSHARE_COSTS_COORDINATOR_SPEC"

// fakeVaultIP serves the fake Vault nodes the coordinator watches.
const fakeVaultIP = "127.0.0.225"

type coordinatorSpec struct {
	CA    string            `json:"ca"`
	Nodes map[string]string `json:"nodes"` // name -> URL
}

// noHolders is a deployment whose holders are all down: the watched nodes
// stay unsealed, so the coordinator only watches.
type noHolders struct{}

func (noHolders) Live() []coordinator.HolderRef { return nil }
func (noHolders) Total() int                    { return 3 }

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
	fmt.Println("watching", len(nodes))
	if err := c.Run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// TestCoordinatorIdleCost runs the coordinator (coordinator.Options
// defaults: a seal-status poll per node every second, with jitter) in its
// own process against 3 and then 100 unsealed fake Vault nodes, and samples
// that process's CPU time and RSS.
func TestCoordinatorIdleCost(t *testing.T) {
	for _, n := range []int{3, 100} {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) { coordinatorCost(t, n) })
	}
}

func coordinatorCost(t *testing.T, n int) {
	dir := t.TempDir()
	ca, err := devpki.NewCA("vault.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueID("vault", "fake", net.ParseIP(fakeVaultIP))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}
	spec := coordinatorSpec{CA: string(ca.CertPEM), Nodes: map[string]string{}}
	fakes := make([]*vaultfake.Vault, n)
	ctx := context.Background()
	for i := range fakes {
		f, raw, err := vaultfake.New(fakeVaultIP+":0", tlsCfg, 5, 3)
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
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "watching") {
		t.Fatalf("coordinator did not start: %q %v", line, err)
	}
	// Let every watcher make its first connection (the TLS handshakes are
	// start-up cost, not idle cost) before the window.
	warm := sample(t, cmd.Process.Pid, 3*time.Second)
	w := window(t)
	u := sample(t, cmd.Process.Pid, w)
	t.Logf("coordinator watching %d nodes: %s (warm-up: %s)", n, u, warm)
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
	setup := fmt.Sprintf("coordinator process (Options defaults: poll every 1 s) watching %d unsealed fake Vaults over TLS, %s", n, w)
	record(fmt.Sprintf("coordinator CPU, %d nodes", n), fmt.Sprintf("%.2f%% of a core", u.cpuPercent), "", setup)
	record(fmt.Sprintf("coordinator RSS, %d nodes", n), fmt.Sprintf("%.1f MB (max %.1f)", u.rssMeanMB, u.rssMaxMB), "", setup)
}
