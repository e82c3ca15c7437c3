package topology

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// The simulated hosts' addresses.
const (
	// TrustDomain is the deployment's SPIFFE trust domain.
	TrustDomain = "keyshare.test"
	// CoordinatorIP is the coordinator's host: `unsealer run` and the CLI
	// commands that use its config connect to holders from it.
	CoordinatorIP = "127.0.0.20"
	// OperatorIP is the break-glass operator's host.
	OperatorIP = "127.0.0.30"
)

// HolderSpec is one holder of the default 2/2/1 deal.
type HolderSpec struct {
	Name   string
	IP     string
	Shares int
}

// DefaultHolders are holders a, b and c with 2, 2 and 1 shares.
var DefaultHolders = []HolderSpec{
	{Name: "a", IP: "127.0.0.11", Shares: 2},
	{Name: "b", IP: "127.0.0.12", Shares: 2},
	{Name: "c", IP: "127.0.0.13", Shares: 1},
}

// Options configure New. Dir, VaultBinary and Binaries are required.
type Options struct {
	// Dir receives everything: certificates, configs, stores, logs.
	Dir string
	// VaultBinary is the Vault server (harness.VaultBinary).
	VaultBinary string
	// Binaries are holder and unsealer (BuildBinaries).
	Binaries Binaries
	// RaftPerformanceMultiplier is raft's performance_multiplier (1 makes a
	// lost leader fail over in a few seconds; 0 keeps Vault's default).
	RaftPerformanceMultiplier int
	// LogLevel of the holders and the coordinator (default info).
	LogLevel string
	// PollInterval is the coordinator's seal-status poll of a healthy node
	// (default 1s).
	PollInterval time.Duration
	// VaultIPs are the Vault nodes' loopback addresses, one per node (default
	// harness.DefaultVaultAddrs: three nodes).
	VaultIPs []string
	// DownInterval is the coordinator's poll of an unreachable node
	// (default 100ms).
	DownInterval time.Duration
	// StaleProgressAfter is the coordinator's stale_progress_after (default
	// 15s).
	StaleProgressAfter time.Duration
	// OperatorRatePerMinute and OperatorBurst are the holders' release
	// limits for the operator (defaults 6 and 10, as a production
	// holder would keep them); the chaos rounds release far more often.
	OperatorRatePerMinute, OperatorBurst int
	// Logf, if set, receives progress messages. Never secrets.
	Logf func(format string, args ...any)
}

// Topology is the whole local deployment.
type Topology struct {
	Dir    string
	LogDir string
	// CA is the deployment CA of holders, coordinator and operator.
	CA     *devpki.CA
	CAPath string
	Vault  *harness.VaultCluster
	// Holders are a, b and c, in that order.
	Holders     []*Holder
	Coordinator *harness.Process
	// UnsealerConfig is the coordinator's config (also used by init,
	// status and rekey); OperatorConfig is the break-glass operator's.
	UnsealerConfig string
	OperatorConfig string
	// CoordinatorMetrics is the coordinator's metrics address (host:port).
	CoordinatorMetrics string
	Bins               Binaries

	opts       Options
	gossipAddr string

	mu        sync.Mutex
	rootToken string
	cliSeq    int
}

// New lays out the folders, the deployment CA and the Vault cluster. It
// starts nothing.
func New(opts Options) (*Topology, error) {
	switch {
	case opts.Dir == "":
		return nil, errors.New("topology: no folder given")
	case opts.VaultBinary == "":
		return nil, errors.New("topology: no vault binary given (see harness.VaultBinary)")
	case opts.Binaries.Holder == "" || opts.Binaries.Unsealer == "":
		return nil, errors.New("topology: no holder or unsealer binary given (see BuildBinaries)")
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = time.Second
	}
	if opts.DownInterval == 0 {
		opts.DownInterval = 100 * time.Millisecond
	}
	if opts.StaleProgressAfter == 0 {
		opts.StaleProgressAfter = 15 * time.Second
	}
	if opts.OperatorRatePerMinute == 0 {
		opts.OperatorRatePerMinute = 6
	}
	if opts.OperatorBurst == 0 {
		opts.OperatorBurst = 10
	}
	t := &Topology{Dir: opts.Dir, LogDir: filepath.Join(opts.Dir, "logs"), Bins: opts.Binaries, opts: opts}
	for _, d := range []string{t.LogDir, t.path("tls")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("failed to create folder %s: %w", d, err)
		}
	}
	var err error
	if t.CA, err = devpki.NewCA(TrustDomain); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	t.CAPath = t.path("tls", "ca.crt")
	if err := t.CA.WriteCA(t.CAPath); err != nil {
		return nil, err
	}
	t.Vault, err = harness.NewVaultCluster(harness.VaultClusterOptions{
		Binary: opts.VaultBinary, BaseDir: t.path("vault"), IPs: opts.VaultIPs,
		RaftPerformanceMultiplier: opts.RaftPerformanceMultiplier, Logf: opts.Logf,
	})
	if err != nil {
		return nil, err
	}
	// Vault's logs live in its node folders; link them into LogDir so that
	// everything the run printed is in one place.
	for _, n := range t.Vault.Nodes() {
		_ = os.Symlink(n.Process.LogPath, filepath.Join(t.LogDir, n.Name+".log"))
	}
	return t, nil
}

func (t *Topology) path(elem ...string) string {
	return filepath.Join(append([]string{t.Dir}, elem...)...)
}

func (t *Topology) logf(format string, args ...any) {
	if t.opts.Logf != nil {
		t.opts.Logf(format, args...)
	}
}

// Start starts the Vault cluster (sealed, uninitialized), then writes the
// certificates and configs of holders, coordinator and operator, runs
// `holder keygen` for each holder and starts the holders.
func (t *Topology) Start(ctx context.Context) error {
	start := time.Now()
	if err := t.Vault.Start(ctx); err != nil {
		return err
	}
	t.logf("topology: %d vault nodes answering in %s", len(t.Vault.Nodes()), time.Since(start).Round(time.Millisecond))
	// Vault's ports are final now; the configs below name them.
	if err := t.layout(); err != nil {
		return err
	}
	for _, h := range t.Holders {
		if _, err := t.Run(ctx, CLI{}, t.Bins.Holder, "keygen", h.SealKeyPath); err != nil {
			return fmt.Errorf("holder %s: %w", h.Name, err)
		}
	}
	if err := t.StartHolders(ctx, t.Holders...); err != nil {
		return err
	}
	t.logf("topology: holders a, b, c serving")
	return nil
}

// layout picks ports, issues certificates and writes every config.
func (t *Topology) layout() error {
	t.gossipAddr, t.CoordinatorMetrics = anyAddr(CoordinatorIP), anyAddr(CoordinatorIP)
	for _, s := range DefaultHolders {
		h, err := t.newHolder(s)
		if err != nil {
			return err
		}
		t.Holders = append(t.Holders, h)
	}
	for _, h := range t.Holders {
		if err := t.writeHolderConfig(h); err != nil {
			return err
		}
	}
	for _, id := range [][3]string{{"unsealer", "u1", CoordinatorIP}, {"operator", "oncall", OperatorIP}} {
		if _, _, err := t.issue(id[0], id[1], id[2]); err != nil {
			return err
		}
	}
	t.UnsealerConfig, t.OperatorConfig = t.path("unsealer.yaml"), t.path("operator.yaml")
	if err := t.writeUnsealerConfig(t.UnsealerConfig, "unsealer/u1", CoordinatorIP, true); err != nil {
		return err
	}
	if err := t.writeUnsealerConfig(t.OperatorConfig, "operator/oncall", OperatorIP, false); err != nil {
		return err
	}
	t.Coordinator = &harness.Process{
		Name: "unsealer", Path: t.Bins.Unsealer, Args: []string{"run", "-c", t.UnsealerConfig},
		LogPath: filepath.Join(t.LogDir, "unsealer.log"),
	}
	return nil
}

// issue makes a leaf for role/name, valid for ip, in the tls folder.
func (t *Topology) issue(role, name, ip string) (string, string, error) {
	leaf, err := t.CA.IssueID(role, name, net.ParseIP(ip))
	if err != nil {
		return "", "", fmt.Errorf("failed to issue certificate for %s/%s: %w", role, name, err)
	}
	return leaf.WriteFiles(t.path("tls"), role+"-"+name)
}

// Holder returns holder a, b or c by name.
func (t *Topology) Holder(name string) *Holder {
	for _, h := range t.Holders {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// StartHolders starts the holders and waits until each serves. A holder's
// first start binds ports the kernel picks; they are read back from its
// log, one holder after the other (each seeds its gossip with those
// before it), and every config naming them is written again.
func (t *Topology) StartHolders(ctx context.Context, hs ...*Holder) error {
	var first []*Holder
	for _, h := range hs {
		if unbound(h.Listen) {
			first = append(first, h)
			continue
		}
		if err := h.Process.Start(); err != nil {
			return err
		}
	}
	for _, h := range first {
		if err := t.writeHolderConfig(h); err != nil {
			return err
		}
		off := LogOffset(h.Process)
		if err := h.Process.Start(); err != nil {
			return err
		}
		addrs, err := bound(ctx, h.Process, off, "holder serving", "listen", "gossip")
		if err != nil {
			return err
		}
		h.Listen, h.GossipAddr = addrs[0], addrs[1]
		if addrs, err = bound(ctx, h.Process, off, "metrics listening", "metrics_listen"); err != nil {
			return err
		}
		h.MetricsAddr = addrs[0]
	}
	if len(first) > 0 {
		if err := t.writeConfigs(); err != nil {
			return err
		}
	}
	for _, h := range hs {
		if err := h.WaitServing(ctx); err != nil {
			return err
		}
	}
	return nil
}

// writeConfigs writes every holder's and unsealer's config again with the
// addresses known so far (the bound ones).
func (t *Topology) writeConfigs() error {
	for _, h := range t.Holders {
		if err := t.writeHolderConfig(h); err != nil {
			return err
		}
	}
	if err := t.writeUnsealerConfig(t.UnsealerConfig, "unsealer/u1", CoordinatorIP, true); err != nil {
		return err
	}
	return t.writeUnsealerConfig(t.OperatorConfig, "operator/oncall", OperatorIP, false)
}

// StopHolders stops the holders gracefully, all at once.
func (t *Topology) StopHolders(hs ...*Holder) error {
	errs := make([]error, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		wg.Go(func() { errs[i] = h.Process.Stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Init runs `unsealer init` (it deals the shares to the holders and unseals
// the first node through them) and keeps the root token it prints. The
// saved transcript has the token redacted.
func (t *Topology) Init(ctx context.Context) (Result, error) {
	res, err := t.Run(ctx, CLI{RedactRootToken: true}, t.Bins.Unsealer, "init", "-c", t.UnsealerConfig)
	if err != nil {
		return res, err
	}
	tok := parseRootToken(res.Stdout)
	if tok == "" {
		return res, errors.New("unsealer init printed no root token")
	}
	t.mu.Lock()
	t.rootToken = tok
	t.mu.Unlock()
	return res, nil
}

// RootToken is the root token `unsealer init` printed (a secret).
func (t *Topology) RootToken() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rootToken
}

// StartCoordinator starts `unsealer run`. Its first start binds gossip and
// metrics ports the kernel picks, read back from its log and written into
// the configs.
func (t *Topology) StartCoordinator() error {
	off := LogOffset(t.Coordinator)
	if err := t.Coordinator.Start(); err != nil {
		return err
	}
	if !unbound(t.gossipAddr) && !unbound(t.CoordinatorMetrics) {
		return nil
	}
	ctx := context.Background()
	addrs, err := bound(ctx, t.Coordinator, off, "unsealer watching", "gossip_addr")
	if err != nil {
		return err
	}
	t.gossipAddr = addrs[0]
	if addrs, err = bound(ctx, t.Coordinator, off, "metrics listening", "metrics_listen"); err != nil {
		return err
	}
	t.CoordinatorMetrics = addrs[0]
	return t.writeConfigs()
}

// Processes returns every daemon process: Vault nodes, holders and the
// coordinator.
func (t *Topology) Processes() []*harness.Process {
	var ps []*harness.Process
	for _, n := range t.Vault.Nodes() {
		ps = append(ps, n.Process)
	}
	for _, h := range t.Holders {
		ps = append(ps, h.Process)
	}
	if t.Coordinator != nil {
		ps = append(ps, t.Coordinator)
	}
	return ps
}

// Close kills every process still running, by PID: the coordinator first,
// then the holders, then Vault. It is safe to call more than once.
func (t *Topology) Close() error {
	var errs []error
	var daemons []*harness.Process
	if t.Coordinator != nil {
		daemons = append(daemons, t.Coordinator)
	}
	for _, h := range t.Holders {
		daemons = append(daemons, h.Process)
	}
	for _, p := range daemons {
		errs = append(errs, p.KillIfRunning())
	}
	if err := t.Vault.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DumpLogs writes the last lines of every daemon's log through logf.
func (t *Topology) DumpLogs(logf func(format string, args ...any), lines int) {
	for _, p := range t.Processes() {
		tail, err := p.LogTail(lines)
		if err != nil {
			logf("%v", err)
			continue
		}
		logf("==== last %d lines of %s (%s) ====\n%s", lines, p.Name, p.LogPath, tail)
	}
}

// anyAddr is ip:0, the address a daemon is first configured with: the
// kernel picks the port when the daemon binds it, and the topology reads
// the bound address back from the daemon's log (see bound), then writes it
// into the configs so that a restart comes back on the same address.
func anyAddr(ip string) string { return net.JoinHostPort(ip, "0") }

// unbound reports whether addr still has port 0.
func unbound(addr string) bool { return strings.HasSuffix(addr, ":0") }

// boundTimeout bounds the wait for a daemon's first log lines.
const boundTimeout = 60 * time.Second

// bound waits for p's log line msg (after offset) and returns its
// attributes keys.
func bound(ctx context.Context, p *harness.Process, offset int64, msg string, keys ...string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, boundTimeout)
	defer cancel()
	e, err := WaitLog(ctx, p, offset, map[string]string{"msg": msg})
	if err != nil {
		return nil, fmt.Errorf("%s did not say which addresses it bound: %w", p.Name, err)
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		if out[i] = e.Get(k); out[i] == "" || unbound(out[i]) {
			return nil, fmt.Errorf("%s logged %q without a bound %s", p.Name, msg, k)
		}
	}
	return out, nil
}
