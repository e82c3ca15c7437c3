package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// VaultClusterOptions configures a VaultCluster. Binary and BaseDir are
// required; everything else has a default.
type VaultClusterOptions struct {
	// Binary is the vault server executable (see VaultBinary).
	Binary string
	// BaseDir receives one folder per node and the CA certificate.
	BaseDir string
	// IPs are the loopback addresses of the nodes, one per node. The
	// default is DefaultVaultAddrs (three nodes).
	IPs []string
	// CA issues the nodes' server certificates. A fresh CA is made if nil.
	CA *devpki.CA
	// RaftPerformanceMultiplier is raft's performance_multiplier; 0 keeps
	// Vault's default. 1 makes elections about five times faster.
	RaftPerformanceMultiplier int
	// ClientCAFile, if set, becomes tls_client_ca_file on every listener.
	ClientCAFile string
	// ListenerExtra, if set, is written as is inside every listener
	// block (HCL lines, e.g. `disable_unauthed_rekey_endpoints = true`).
	ListenerExtra string
	// StopTimeout bounds SIGTERM before SIGKILL (DefaultStopTimeout if 0).
	StopTimeout time.Duration
	// Logf, if set, receives progress messages. Never secrets.
	Logf func(format string, args ...any)
}

// VaultCluster is a raft Vault cluster of real processes on loopback, each
// node with its own address, ports, data folder, TLS certificate and log.
type VaultCluster struct {
	opts   VaultClusterOptions
	CA     *devpki.CA
	CAPath string
	nodes  []*VaultNode

	mu      sync.Mutex
	started bool // true after the first successful Start
}

// NewVaultCluster lays out the nodes' folders, certificates and configs. It
// starts nothing; call Start. Call Close when done (NewTestVaultCluster
// arranges that for tests).
func NewVaultCluster(opts VaultClusterOptions) (*VaultCluster, error) {
	if opts.Binary == "" {
		return nil, errors.New("vault cluster: no vault binary given (see harness.VaultBinary)")
	}
	if opts.BaseDir == "" {
		return nil, errors.New("vault cluster: no base dir given")
	}
	if len(opts.IPs) == 0 {
		opts.IPs = DefaultVaultAddrs
	}
	for _, ip := range opts.IPs {
		if err := checkLoopback(ip); err != nil {
			return nil, fmt.Errorf("vault cluster: %w", err)
		}
	}
	c := &VaultCluster{opts: opts, CA: opts.CA}
	if c.CA == nil {
		ca, err := devpki.NewCA("keyshare.test")
		if err != nil {
			return nil, fmt.Errorf("vault cluster: %w", err)
		}
		c.CA = ca
	}
	if err := os.MkdirAll(opts.BaseDir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create base dir %s: %w", opts.BaseDir, err)
	}
	c.CAPath = filepath.Join(opts.BaseDir, "ca.crt")
	if err := c.CA.WriteCA(c.CAPath); err != nil {
		return nil, err
	}
	for i, ip := range opts.IPs {
		n := newVaultNode(c, i, ip, opts.BaseDir)
		if err := prepareNodeFiles(n, c.CA); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	if err := c.assignPorts(); err != nil {
		return nil, err
	}
	return c, nil
}

// NewTestVaultCluster is NewVaultCluster for tests: BaseDir defaults to a
// t.TempDir, Logf to tb.Logf, and a cleanup kills every node and, if the
// test failed, logs the tail of each node's log.
func NewTestVaultCluster(tb testing.TB, opts VaultClusterOptions) *VaultCluster {
	tb.Helper()
	if opts.BaseDir == "" {
		opts.BaseDir = tb.TempDir()
	}
	if opts.Logf == nil {
		opts.Logf = tb.Logf
	}
	c, err := NewVaultCluster(opts)
	if err != nil {
		tb.Fatalf("failed to set up vault cluster: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			c.DumpLogs(tb.Logf, 60)
		}
		if err := c.Close(); err != nil {
			tb.Errorf("failed to clean up vault cluster: %v", err)
		}
	})
	return c
}

// Nodes returns the nodes in order (vault-1 first).
func (c *VaultCluster) Nodes() []*VaultNode { return c.nodes }

// Node returns node i (0-based).
func (c *VaultCluster) Node(i int) *VaultNode { return c.nodes[i] }

func (c *VaultCluster) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf(format, args...)
	}
}

// assignPorts picks fresh API and cluster ports for every node and rewrites
// every config (retry_join names the peers' ports).
func (c *VaultCluster) assignPorts() error {
	for _, n := range c.nodes {
		n.resetClient()
		var err error
		if n.APIPort, err = FreePort(n.IP); err != nil {
			return fmt.Errorf("failed to pick api port for %s: %w", n.Name, err)
		}
		if n.ClusterPort, err = FreePort(n.IP); err != nil {
			return fmt.Errorf("failed to pick cluster port for %s: %w", n.Name, err)
		}
	}
	for _, n := range c.nodes {
		cfg := vaultConfig{node: n, caPath: c.CAPath, clientCAPath: c.opts.ClientCAFile,
			perfMultiplier: c.opts.RaftPerformanceMultiplier, listenerExtra: c.opts.ListenerExtra}
		for _, p := range c.nodes {
			if p != n {
				cfg.peers = append(cfg.peers, p)
			}
		}
		if err := cfg.write(); err != nil {
			return err
		}
	}
	return nil
}

// startAttempts bounds how often Start picks new ports when one was taken
// between FreePort and Vault binding it.
const startAttempts = 3

// Start starts every node and waits until each answers its API (sealed).
// On the first start, a node that fails because its port was taken makes
// Start pick new ports for all nodes and try again.
func (c *VaultCluster) Start(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := c.startOnce(ctx)
		if err == nil {
			c.mu.Lock()
			c.started = true
			c.mu.Unlock()
			return nil
		}
		c.mu.Lock()
		retry := !c.started && attempt < startAttempts && c.portTaken()
		c.mu.Unlock()
		if !retry {
			return err
		}
		c.logf("vault cluster: a port was taken (%v); picking new ports (attempt %d)", err, attempt+1)
		if err := c.Close(); err != nil {
			return err
		}
		if err := c.assignPorts(); err != nil {
			return err
		}
	}
}

func (c *VaultCluster) startOnce(ctx context.Context) error {
	for _, n := range c.nodes {
		if err := n.Start(); err != nil {
			return err
		}
	}
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() { errs[i] = n.WaitAPI(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// portTaken reports whether a node's log says it could not bind its port.
func (c *VaultCluster) portTaken() bool {
	for _, n := range c.nodes {
		if tail, err := n.Process.LogTail(20); err == nil && strings.Contains(tail, "address already in use") {
			return true
		}
	}
	return false
}

// Stop stops every running node gracefully (SIGTERM, then SIGKILL after
// StopTimeout), all at once.
func (c *VaultCluster) Stop() error {
	return c.eachRunning(func(n *VaultNode) error { return n.Stop() })
}

// Close kills (SIGKILL) every node process that is still running. It is
// safe to call more than once.
func (c *VaultCluster) Close() error {
	return c.eachRunning(func(n *VaultNode) error { return n.Kill() })
}

func (c *VaultCluster) eachRunning(f func(*VaultNode) error) error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		if n.Process.Running() {
			wg.Go(func() { errs[i] = f(n) })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// DumpLogs writes the last lines of every node's log through logf.
func (c *VaultCluster) DumpLogs(logf func(format string, args ...any), lines int) {
	for _, n := range c.nodes {
		tail, err := n.Process.LogTail(lines)
		if err != nil {
			logf("%v", err)
			continue
		}
		logf("==== last %d lines of %s (%s) ====\n%s", lines, n.Name, n.Process.LogPath, tail)
	}
}
