//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/internal/testkit/holdercfg"
)

// pkiDeployment is the folders, processes and ports of pkiFromCommands.
type pkiDeployment struct {
	t           *testing.T
	dir         string
	bins        topology.Binaries
	holders     map[string]*harness.Process
	listen      map[string]string // holder name -> share service address
	gossip      map[string]string // holder name or "unsealer" -> gossip address
	metrics     map[string]string // holder name or "unsealer" -> metrics address
	coordinator *harness.Process
}

func (d *pkiDeployment) path(elem ...string) string {
	return filepath.Join(append([]string{d.dir}, elem...)...)
}

// cli runs a one-shot command, wants exit code code, and returns its
// output. Only `unsealer tls` and `holder keygen` go through here: neither
// prints a secret.
func (d *pkiDeployment) cli(code int, bin string, args ...string) string {
	d.t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	got := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		got = exit.ExitCode()
	} else if err != nil {
		d.t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	if got != code {
		d.t.Fatalf("%s %s: exit %d, want %d:\n%s", filepath.Base(bin), strings.Join(args, " "), got, code, out)
	}
	return string(out)
}

func (d *pkiDeployment) addr(ip string) string {
	d.t.Helper()
	p, err := harness.FreePort(ip)
	if err != nil {
		d.t.Fatal(err)
	}
	return net.JoinHostPort(ip, strconv.Itoa(p))
}

// process starts a daemon that the test kills at the end.
// env, if not nil, is its whole environment.
func (d *pkiDeployment) process(name string, env []string, bin string, args ...string) *harness.Process {
	d.t.Helper()
	p := &harness.Process{Name: name, Path: bin, Args: args, Env: env, LogPath: d.path("logs", name+".log")}
	if err := os.MkdirAll(d.path("logs"), 0o700); err != nil {
		d.t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() {
		if d.t.Failed() {
			if tail, err := p.LogTail(40); err == nil {
				d.t.Logf("==== last lines of %s ====\n%s", name, tail)
			}
		}
		if p.Running() {
			_ = p.Kill()
		}
	})
	return p
}

func (d *pkiDeployment) dumpLogs() {
	for name, p := range d.holders {
		if tail, err := p.LogTail(20); err == nil {
			d.t.Logf("==== holder %s ====\n%s", name, tail)
		}
	}
}

// pkiVault is the one Vault node, with its client.
type pkiVault struct {
	t      *testing.T
	proc   *harness.Process
	url    string
	client *http.Client
}

// startVault writes a single-node raft config that serves the vault-1
// certificate made by `unsealer tls`, starts it and waits for its API.
func (d *pkiDeployment) startVault(ctx context.Context, bin, vca string) *pkiVault {
	d.t.Helper()
	api, cluster := d.addr(pkiVaultIP), d.addr(pkiVaultIP)
	data := d.path("vault", "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		d.t.Fatal(err)
	}
	hcl := fmt.Sprintf(`ui = false
disable_mlock = true
api_addr = "https://%[1]s"
cluster_addr = "https://%[2]s"
storage "raft" {
  path    = %[3]q
  node_id = "vault-1"
}
listener "tcp" {
  address         = %[1]q
  cluster_address = %[2]q
  tls_cert_file   = %[4]q
  tls_key_file    = %[5]q
}
`, api, cluster, data, d.path("tls", "vault-vault-1.crt"), d.path("tls", "vault-vault-1.key"))
	cfg := d.path("vault", "vault.hcl")
	if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
		d.t.Fatal(err)
	}
	pem, err := os.ReadFile(filepath.Join(vca, "ca.crt"))
	if err != nil {
		d.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		d.t.Fatal("vault CA made by the command does not parse")
	}
	v := &pkiVault{t: d.t, url: "https://" + api, client: &http.Client{Timeout: 2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}}}
	// Vault reads VAULT_* before its config: none of the caller's may leak.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") {
			env = append(env, kv)
		}
	}
	v.proc = d.process("vault-1", env, bin, "server", "-config="+cfg)
	v.waitSealed(ctx, true)
	return v
}

// sealed reads sys/seal-status over TLS verified against Vault's CA.
func (v *pkiVault) sealed(ctx context.Context) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.url+"/v1/sys/seal-status", nil)
	if err != nil {
		return false, err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var st struct {
		Sealed bool `json:"sealed"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return false, fmt.Errorf("seal-status: HTTP %d: %w", resp.StatusCode, err)
	}
	return st.Sealed, nil
}

// waitSealed polls until the node answers with sealed == want.
func (v *pkiVault) waitSealed(ctx context.Context, want bool) {
	v.t.Helper()
	if err := harness.Poll(ctx, fmt.Sprintf("vault-1 to answer sealed=%t", want), func() (bool, error) {
		got, err := v.sealed(ctx)
		return err == nil && got == want, err
	}); err != nil {
		v.t.Fatal(err)
	}
}

// startHolder writes holder name's config (certificates from `unsealer
// tls`, the CA's CRL), makes its seal key and starts it.
func (d *pkiDeployment) startHolder(ctx context.Context, name, ip, vaultURL string) {
	d.t.Helper()
	if d.holders == nil {
		d.holders, d.listen, d.gossip, d.metrics = map[string]*harness.Process{}, map[string]string{}, map[string]string{}, map[string]string{}
		for _, h := range pkiHolders {
			d.listen[h.name], d.gossip[h.name], d.metrics[h.name] = d.addr(h.ip), d.addr(h.ip), d.addr(h.ip)
		}
		d.gossip["unsealer"], d.metrics["unsealer"] = d.addr(pkiUnsealerIP), d.addr(pkiUnsealerIP)
	}
	hd := d.path("holder-" + name)
	if err := os.MkdirAll(hd, 0o700); err != nil {
		d.t.Fatal(err)
	}
	d.cli(0, d.bins.Holder, "keygen", filepath.Join(hd, "seal.key"))
	path := filepath.Join(hd, "holder.yaml")
	err := holdercfg.Config{
		ID: "spiffe://" + pkiTrustDomain + "/holder/" + name, Listen: d.listen[name],
		GossipBind: d.gossip[name], Seeds: d.seeds(name), RejoinInterval: "2s",
		CAFile: d.path("ca", "ca.crt"), CertFile: d.path("tls", "holder-"+name+".crt"), KeyFile: d.path("tls", "holder-"+name+".key"),
		CRLFile:  d.path("ca", "crl.pem"),
		StoreDir: filepath.Join(hd, "store"), SealKeyFile: filepath.Join(hd, "seal.key"), AuditFile: filepath.Join(hd, "audit.log"),
		VaultCAFile: d.path("vault-ca", "ca.crt"), VaultURL: vaultURL,
		UnsealerCIDR:  pkiUnsealerIP + "/32",
		Operators:     []holdercfg.Operator{{ID: "spiffe://" + pkiTrustDomain + "/operator/oncall", CIDR: pkiOperatorIP + "/32"}},
		Policy:        []string{"rate_per_minute: 120", "burst: 30"},
		MetricsListen: d.metrics[name], LogLev: "info",
	}.Write(path)
	if err != nil {
		d.t.Fatal(err)
	}
	p := d.process("holder-"+name, nil, d.bins.Holder, "run", "-c", path)
	d.holders[name] = p
	if err := harness.PollProcess(ctx, p, harness.DefaultPollInterval, "holder "+name+" to serve on "+d.listen[name], func() (bool, error) {
		c, err := net.DialTimeout("tcp", d.listen[name], 200*time.Millisecond)
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	}); err != nil {
		d.t.Fatal(err)
	}
}

// seeds are every gossip address but self's.
func (d *pkiDeployment) seeds(self string) []string {
	var s []string
	for name, a := range d.gossip {
		if name != self {
			s = append(s, a)
		}
	}
	return s
}

// writeUnsealerConfig writes the coordinator's config (gossip and metrics)
// or the operator's (neither), both with the CA's CRL.
func (d *pkiDeployment) writeUnsealerConfig(file, who, ip, vaultURL string, daemon bool) {
	d.t.Helper()
	base := strings.ReplaceAll(who, "/", "-")
	c := topology.UnsealerConfig{
		ID: "spiffe://" + pkiTrustDomain + "/" + who, SourceAddr: ip,
		CAFile: d.path("ca", "ca.crt"), CertFile: d.path("tls", base+".crt"), KeyFile: d.path("tls", base+".key"), CRLFile: d.path("ca", "crl.pem"),
		VaultCAFile: d.path("vault-ca", "ca.crt"), VaultNodes: []holdercfg.VaultNode{{Name: "vault-1", Address: vaultURL}},
		PollInterval: time.Second, DownInterval: 100 * time.Millisecond,
		LogLevel: "info",
	}
	for _, h := range pkiHolders {
		c.Holders = append(c.Holders, topology.UnsealerHolder{ID: "spiffe://" + pkiTrustDomain + "/holder/" + h.name, Address: d.listen[h.name], Shares: h.shares})
	}
	if daemon {
		c.GossipBind, c.GossipSeeds, c.MetricsListen = d.gossip["unsealer"], d.seeds("unsealer"), d.metrics["unsealer"]
	}
	if err := c.Write(d.path(file)); err != nil {
		d.t.Fatal(err)
	}
}

// pkiStatus is the part of `unsealer status --json` this test reads.
type pkiStatus struct {
	Version struct {
		Version   string `json:"version"`
		Commit    string `json:"commit"`
		GoVersion string `json:"go_version"`
	} `json:"version"`
	Holders []struct {
		ID    string `json:"id"`
		Alive bool   `json:"alive"`
		Error string `json:"error"`
	} `json:"holders"`
}

func (s pkiStatus) alive() int {
	n := 0
	for _, h := range s.Holders {
		if h.Alive {
			n++
		}
	}
	return n
}

// status runs `unsealer status --json` with the given config (exit 0 or
// 3 both print the report).
func (d *pkiDeployment) status(ctx context.Context, file string) pkiStatus {
	d.t.Helper()
	cmd := exec.CommandContext(ctx, d.bins.Unsealer, "status", "--json", "-c", d.path(file))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 3) {
		d.t.Fatalf("unsealer status -c %s: %v\n%s", file, err, stderr.String())
	}
	var st pkiStatus
	if err := json.Unmarshal(out, &st); err != nil {
		d.t.Fatalf("unsealer status --json -c %s: %v\n%s", file, err, out)
	}
	return st
}

// grepLines returns the lines of text that contain sub.
func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
