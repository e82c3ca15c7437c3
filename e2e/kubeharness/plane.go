package kubeharness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// The control plane's loopback addresses, beside the topology's (Vault
// 127.0.0.101-103, holders 127.0.0.11-13, coordinator 127.0.0.20, KMS test
// hosts 127.0.0.41-44).
const (
	// EtcdIP is etcd's host.
	EtcdIP = "127.0.0.60"
	// HostA and HostB are the two control-plane hosts: each runs a
	// kube-apiserver and its own KMS plugin, which connects to Vault from
	// the host's address with a token bound to it.
	HostA = "127.0.0.51"
	HostB = "127.0.0.52"
	// ElsewhereIP is a host with no control plane: a token bound to it is
	// refused from every control-plane host.
	ElsewhereIP = "127.0.0.59"
)

// DefaultHosts are cp-a and cp-b.
var DefaultHosts = []HostSpec{{Name: "cp-a", IP: HostA}, {Name: "cp-b", IP: HostB}}

// HostSpec names one control-plane host.
type HostSpec struct{ Name, IP string }

// Options configure New. Topo, Bins and PluginBin are required.
type Options struct {
	// Topo is the running keyshare deployment (Vault, holders,
	// coordinator); its LogDir receives every log of the control plane.
	Topo *topology.Topology
	Bins Binaries
	// PluginBin is cmd/kmsplugin (topology.BuildKMSPlugin).
	PluginBin string
	// Hosts default to DefaultHosts.
	Hosts []HostSpec
	// Provider defaults to KMS; with Identity or AESCBC no plugin runs.
	Provider Provider
	// Plugin tunes every plugin (topology's defaults when zero).
	Plugin topology.KMSPluginOptions
	// Logf, if set, receives progress messages. Never secrets.
	Logf func(format string, args ...any)
}

// Host is one control-plane host: its plugin and its apiserver.
type Host struct {
	Name, IP string
	// Plugin is nil unless the provider is KMS.
	Plugin    *topology.KMSPlugin
	APIServer *APIServer
	// PluginMetrics is the plugin's metrics address, once it served.
	PluginMetrics string
}

// ControlPlane is etcd and the control-plane hosts, on top of a topology.
type ControlPlane struct {
	Dir   string
	Etcd  *Etcd
	Hosts []*Host
	// CA signs etcd's and the apiservers' certificates; CAFile is its PEM.
	CA     *devpki.CA
	CAFile string

	opts Options
}

// New lays out etcd and the hosts in <topology dir>/kube. It starts
// nothing and asks Vault nothing.
func New(o Options) (*ControlPlane, error) {
	switch {
	case o.Topo == nil:
		return nil, errors.New("kube control plane: no topology given")
	case o.Bins.APIServer == "" || o.Bins.Etcd == "":
		return nil, errors.New("kube control plane: no kube-apiserver or etcd binary given (see FindBinaries)")
	}
	if o.Provider == "" {
		o.Provider = KMS
	}
	if o.Provider == KMS && o.PluginBin == "" {
		return nil, errors.New("kube control plane: no kmsplugin binary given (see topology.BuildKMSPlugin)")
	}
	if len(o.Hosts) == 0 {
		o.Hosts = DefaultHosts
	}
	c := &ControlPlane{Dir: filepath.Join(o.Topo.Dir, "kube"), opts: o}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", c.Dir, err)
	}
	var err error
	if c.CA, err = devpki.NewCA("kube.test"); err != nil {
		return nil, fmt.Errorf("kube control plane: %w", err)
	}
	c.CAFile = filepath.Join(c.Dir, "ca.crt")
	if err := c.CA.WriteCA(c.CAFile); err != nil {
		return nil, err
	}
	if c.Etcd, err = newEtcd(o.Bins.Etcd, filepath.Join(c.Dir, "etcd"), o.Topo.LogDir, EtcdIP, c.CA, c.CAFile); err != nil {
		return nil, err
	}
	for _, s := range o.Hosts {
		h := &Host{Name: s.Name, IP: s.IP}
		if h.APIServer, err = newAPIServer(o.Bins.APIServer, "kube-apiserver-"+s.Name, s.IP, filepath.Join(c.Dir, s.Name), o.Topo.LogDir, c.Etcd, c.CA); err != nil {
			return nil, err
		}
		socket := ""
		if o.Provider == KMS {
			if h.Plugin, err = o.Topo.NewKMSPlugin(o.PluginBin, s.Name, s.IP, o.Plugin); err != nil {
				return nil, err
			}
			socket = h.Plugin.Socket
		}
		if err := h.APIServer.WriteEncryptionConfig(o.Provider, socket); err != nil {
			return nil, err
		}
		c.Hosts = append(c.Hosts, h)
	}
	return c, nil
}

func (c *ControlPlane) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf(format, args...)
	}
}

// Host returns the host named name (cp-a, cp-b), or nil.
func (c *ControlPlane) Host(name string) *Host {
	for _, h := range c.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Provision makes Vault ready for the plugins with the operator's own
// commands, as the root token: `kmsplugin vault setup` (transit, the key,
// the policy, the token role), then `kmsplugin token create` for each host,
// bound to the host's address, into the host's token file.
func (c *ControlPlane) Provision(ctx context.Context) error {
	if c.opts.Provider != KMS {
		return nil
	}
	first := c.Hosts[0].Plugin
	if _, err := c.opts.Topo.KMSAdmin(ctx, c.opts.PluginBin, first.Config, "vault", "setup"); err != nil {
		return fmt.Errorf("kmsplugin vault setup: %w", err)
	}
	for _, h := range c.Hosts {
		if _, err := os.Stat(h.Plugin.TokenFile); err == nil {
			continue // provisioned before
		}
		if _, err := c.opts.Topo.KMSAdmin(ctx, c.opts.PluginBin, h.Plugin.Config, "token", "create", "--host", h.IP, "--out", h.Plugin.TokenFile); err != nil {
			return fmt.Errorf("kmsplugin token create for %s: %w", h.Name, err)
		}
	}
	return nil
}

// Start starts etcd, then on every host the plugin and the apiserver, and
// waits until every apiserver is ready (its KMS provider healthy).
func (c *ControlPlane) Start(ctx context.Context) error {
	start := time.Now()
	if err := c.Etcd.Start(ctx); err != nil {
		return err
	}
	c.logf("kube: etcd %s healthy in %s", c.Etcd.Endpoint(), time.Since(start).Round(time.Millisecond))
	for _, h := range c.Hosts {
		if h.Plugin == nil {
			continue
		}
		if err := h.StartPlugin(ctx); err != nil {
			return err
		}
	}
	errs := make(chan error, len(c.Hosts))
	for _, h := range c.Hosts {
		go func() { errs <- h.APIServer.Start(ctx) }()
	}
	var all []error
	for range c.Hosts {
		all = append(all, <-errs)
	}
	if err := errors.Join(all...); err != nil {
		return err
	}
	names := make([]string, 0, len(c.Hosts))
	for _, h := range c.Hosts {
		names = append(names, h.APIServer.String())
	}
	c.logf("kube: %s ready %s after start", strings.Join(names, ", "), time.Since(start).Round(time.Millisecond))
	return nil
}

// StartPlugin starts the host's plugin and waits until it serves.
func (h *Host) StartPlugin(ctx context.Context) error {
	off := topology.LogOffset(h.Plugin.Process)
	if err := h.Plugin.Process.Start(); err != nil {
		return err
	}
	m, err := h.Plugin.WaitServing(ctx, off)
	if err != nil {
		return err
	}
	h.PluginMetrics = m
	return nil
}

// RestartPlugin stops the host's plugin gracefully and starts it again.
func (h *Host) RestartPlugin(ctx context.Context) error {
	if err := h.Plugin.Process.Stop(); err != nil && !errors.Is(err, harness.ErrNotRunning) {
		return err
	}
	return h.StartPlugin(ctx)
}

// PluginMetric reads one series from the plugin's metrics (0 if absent).
func (h *Host) PluginMetric(ctx context.Context, series string) (float64, error) {
	text, err := topology.Metrics(ctx, h.PluginMetrics)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", h.Plugin, err)
	}
	return topology.MetricValue(text, series), nil
}

// Decrypts is how many Decrypt calls the host's plugin answered ok, that
// is how many seeds it unwrapped through Vault.
func (h *Host) Decrypts(ctx context.Context) (float64, error) {
	return h.PluginMetric(ctx, `keyshare_kms_requests_total{op="decrypt",result="ok"}`)
}

// Processes returns etcd's, the plugins' and the apiservers' processes.
func (c *ControlPlane) Processes() []*harness.Process {
	ps := []*harness.Process{c.Etcd.Process}
	for _, h := range c.Hosts {
		if h.Plugin != nil {
			ps = append(ps, h.Plugin.Process)
		}
		ps = append(ps, h.APIServer.Process)
	}
	return ps
}

// DumpLogs writes the last lines of every control-plane log through logf.
func (c *ControlPlane) DumpLogs(logf func(format string, args ...any), lines int) {
	for _, p := range c.Processes() {
		tail, err := p.LogTail(lines)
		if err != nil {
			logf("%v", err)
			continue
		}
		logf("==== last %d lines of %s (%s) ====\n%s", lines, p.Name, p.LogPath, tail)
	}
}

// Close kills every control-plane process still running, by PID: the
// apiservers, then the plugins, then etcd. It is safe to call more than
// once.
func (c *ControlPlane) Close() error {
	var errs []error
	for _, h := range c.Hosts {
		errs = append(errs, h.APIServer.Close())
	}
	for _, h := range c.Hosts {
		if h.Plugin != nil {
			errs = append(errs, h.Plugin.Process.KillIfRunning())
		}
	}
	errs = append(errs, c.Etcd.Close())
	return errors.Join(errs...)
}
