//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// The hosts of the PKI deployment, apart from the other scenarios' ones.
const (
	pkiTrustDomain = "keyshare.test"
	pkiVaultIP     = "127.0.0.131"
	pkiUnsealerIP  = "127.0.0.90"
	pkiOperatorIP  = "127.0.0.91"
)

var pkiHolders = []struct {
	name, ip string
	shares   int
}{{"a", "127.0.0.81", 2}, {"b", "127.0.0.82", 2}, {"c", "127.0.0.83", 1}}

// TestPKI makes every certificate of a deployment from nothing, once with
// `unsealer tls` and once with the openssl recipe of the README, and checks
// that keyshare accepts them: no test CA code (internal/devpki) is used.
func TestPKI(t *testing.T) {
	bins := requireBinaries(t)
	t.Run("commands_from_nothing_unseal_a_real_vault_and_revoke", func(t *testing.T) { pkiFromCommands(t, bins) })
	t.Run("openssl_recipe_from_the_readme_is_accepted", func(t *testing.T) { pkiFromOpenSSL(t, bins) })
}

// pkiFromCommands: `unsealer tls` makes the deployment CA, Vault's CA, the
// certificates of three holders, the coordinator, an operator and the Vault
// node, and an empty CRL. With only those, a real Vault node is initialized
// and unsealed through the holders, unsealed again by `unsealer run` after a
// restart, and an operator revoked with `unsealer tls cert revoke` is
// refused by the running holders once they reload the CRL.
func pkiFromCommands(t *testing.T, bins topology.Binaries) {
	vaultBin := harness.RequireVaultBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d := &pkiDeployment{t: t, dir: t.TempDir(), bins: bins}
	ca, vca := d.path("ca"), d.path("vault-ca")

	d.cli(0, bins.Unsealer, "tls", "ca", "create", "--dir", ca, "--trust-domain", pkiTrustDomain)
	d.cli(0, bins.Unsealer, "tls", "ca", "create", "--dir", vca, "--trust-domain", pkiTrustDomain, "--key-type", "ecdsa")
	leaf := func(caDir, role, name string, extra ...string) {
		d.cli(0, bins.Unsealer, append([]string{"tls", "cert", "create", "--ca-dir", caDir, "--out-dir", d.path("tls"),
			"--role", role, "--name", name, "--days", "2"}, extra...)...)
	}
	for _, h := range pkiHolders {
		leaf(ca, "holder", h.name, "--ip", h.ip)
	}
	leaf(ca, "unsealer", "u1", "--ip", pkiUnsealerIP)
	leaf(ca, "operator", "oncall")
	leaf(vca, "vault", "vault-1", "--ip", pkiVaultIP)
	d.cli(0, bins.Unsealer, "tls", "crl", "update", "--ca-dir", ca)
	// Refusals on the way, as an operator would meet them.
	if out := d.cli(1, bins.Unsealer, "tls", "cert", "create", "--ca-dir", ca, "--out-dir", d.path("tls"), "--role", "holder", "--name", "a", "--ip", "127.0.0.81"); !strings.Contains(out, "never overwritten") {
		t.Fatalf("second holder-a certificate: %s", out)
	}
	if out := d.cli(2, bins.Unsealer, "tls", "cert", "create", "--ca-dir", ca, "--role", "holder", "--name", "d", "--ip", "vault-1"); !strings.Contains(out, `--ip "vault-1" is not an IP address`) {
		t.Fatalf("host name as --ip: %s", out)
	}

	// The Vault node serves the certificate made by the command; the test's
	// own client checks it the standard way (IP SAN, server auth, CA).
	v := d.startVault(ctx, vaultBin, vca)
	for _, h := range pkiHolders {
		d.startHolder(ctx, h.name, h.ip, v.url)
	}
	d.writeUnsealerConfig("unsealer.yaml", "unsealer/u1", pkiUnsealerIP, v.url, true)
	d.writeUnsealerConfig("operator.yaml", "operator/oncall", pkiOperatorIP, v.url, false)

	cmd := exec.CommandContext(ctx, bins.Unsealer, "init", "-c", d.path("unsealer.yaml"))
	cmd.Stdout = io.Discard // the root token
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || !strings.Contains(stderr.String(), "init done: generation 1 dealt to 3 holders") {
		d.dumpLogs()
		t.Fatalf("unsealer init: %v\n%s", err, stderr.String())
	}
	v.waitSealed(ctx, false)
	t.Logf("init through holders with command-made certificates: vault-1 unsealed")

	// A restart, unsealed by the coordinator with no one typing anything.
	d.coordinator = d.process("unsealer", nil, bins.Unsealer, "run", "-c", d.path("unsealer.yaml"))
	if err := v.proc.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := v.proc.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	v.waitSealed(ctx, false)
	t.Logf("timing: vault-1 restarted and unsealed by `unsealer run` in %s", time.Since(start).Round(time.Millisecond))

	// Both daemons export their build.
	for _, addr := range []string{d.metrics["unsealer"], d.metrics["a"]} {
		text, err := topology.Metrics(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^keyshare_build_info\{commit="[^"]+",goversion="go[^"]+",version="[^"]+"\} 1$`).MatchString(text) {
			t.Fatalf("metrics of %s lack keyshare_build_info:\n%s", addr, grepLines(text, "keyshare_"))
		}
	}

	// The operator reaches every holder; once revoked, no holder lets it in.
	if st := d.status(ctx, "operator.yaml"); st.alive() != 3 || st.Version.GoVersion == "" {
		t.Fatalf("operator status before revocation: %d holders alive, version %+v; want 3 and a version", st.alive(), st.Version)
	}
	offset := topology.LogOffset(d.holders["a"])
	d.cli(0, bins.Unsealer, "tls", "cert", "revoke", "--ca-dir", ca, "--cert", d.path("tls", "operator-oncall.crt"))
	deadline := time.Now().Add(30 * time.Second)
	for d.status(ctx, "operator.yaml").alive() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the holders still let the revoked operator in 30s after the CRL was rewritten")
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	entries, err := topology.FindLog(d.holders["a"], offset, map[string]string{"msg": "refused TLS client"})
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, e := range entries {
		named = named || strings.Contains(e.Get("err"), "revoked")
	}
	if !named {
		t.Fatalf("holder a logged no refusal naming the revocation after the CRL was rewritten: %v", entries)
	}
	// The coordinator was not revoked and still unseals.
	if st := d.status(ctx, "unsealer.yaml"); st.alive() != 3 {
		t.Fatalf("coordinator status after revoking the operator: %d holders alive, want 3", st.alive())
	}
}

// pkiFromOpenSSL runs the README's openssl recipe (the CA block and the
// leaf block, extracted verbatim) for a holder, an unsealer and an
// operator, and checks that the identity code accepts them over a real
// handshake; `unsealer tls cert revoke` then revokes into that CA's CRL, and
// a rerun of the recipe does not overwrite a key.
func pkiFromOpenSSL(t *testing.T, bins topology.Binaries) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is needed to test the README recipe: %v", err)
	}
	root, err := topology.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	caRecipe, leafRecipe := readmeRecipe(t, readme, "openssl-ca"), readmeRecipe(t, readme, "openssl-leaf")
	dir := t.TempDir()
	run := func(recipe string, env ...string) (string, error) {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", recipe)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), append([]string{"TRUST_DOMAIN=" + pkiTrustDomain}, env...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(caRecipe); err != nil {
		t.Fatalf("README openssl CA recipe: %v\n%s", err, out)
	}
	leaves := []struct{ role, name, sans, eku string }{
		{"holder", "a", "IP:127.0.0.81", "serverAuth,clientAuth"},
		{"unsealer", "u1", "IP:" + pkiUnsealerIP, "serverAuth,clientAuth"},
		{"operator", "oncall", "", "clientAuth"},
	}
	for _, l := range leaves {
		if out, err := run(leafRecipe, "ROLE="+l.role, "NAME="+l.name, "SANS="+l.sans, "EKU="+l.eku, "DAYS=2"); err != nil {
			t.Fatalf("README openssl leaf recipe for %s/%s: %v\n%s", l.role, l.name, err, out)
		}
		if st, err := os.Stat(filepath.Join(dir, l.role+"-"+l.name+".key")); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s-%s.key: %v; want mode 0600", l.role, l.name, err)
		}
	}
	// The usages of README's table: server and client for holders and
	// unsealers, client only for operators; exactly one URI SAN.
	for _, l := range leaves {
		b, err := os.ReadFile(filepath.Join(dir, l.role+"-"+l.name+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(b)
		if block == nil {
			t.Fatalf("%s-%s.crt is not PEM", l.role, l.name)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		var eku []string
		for _, u := range c.ExtKeyUsage {
			eku = append(eku, map[x509.ExtKeyUsage]string{x509.ExtKeyUsageServerAuth: "serverAuth", x509.ExtKeyUsageClientAuth: "clientAuth"}[u])
		}
		if strings.Join(eku, ",") != l.eku || len(c.URIs) != 1 || c.IsCA {
			t.Fatalf("%s-%s.crt: usages %v, URI SANs %v, CA %t; want %s, one URI SAN, not a CA", l.role, l.name, eku, c.URIs, c.IsCA, l.eku)
		}
	}
	keyBefore, err := os.ReadFile(filepath.Join(dir, "holder-a.key"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(leafRecipe, "ROLE=holder", "NAME=a", "SANS=IP:127.0.0.81", "EKU=serverAuth,clientAuth", "DAYS=2"); err == nil {
		t.Fatalf("a rerun of the leaf recipe for holder/a succeeded; want it to refuse to overwrite:\n%s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "holder-a.key")); string(b) != string(keyBefore) {
		t.Fatal("a rerun of the recipe overwrote holder-a.key")
	}

	// The CA folder of the recipe is one `unsealer tls` can revoke from.
	if out, err := exec.Command(bins.Unsealer, "tls", "crl", "update", "--ca-dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("unsealer tls crl update on the openssl CA: %v\n%s", err, out)
	}
	src := func(role, name string) *identity.Source {
		s, err := identity.New(identity.Options{CAFile: filepath.Join(dir, "ca.crt"), CertFile: filepath.Join(dir, role+"-"+name+".crt"),
			KeyFile: filepath.Join(dir, role+"-"+name+".key"), CRLFile: filepath.Join(dir, "crl.pem"), TrustDomain: pkiTrustDomain})
		if err != nil {
			t.Fatalf("identity refuses the openssl %s/%s certificate: %v", role, name, err)
		}
		if want := "spiffe://" + pkiTrustDomain + "/" + role + "/" + name; s.ID().String() != want {
			t.Fatalf("identity reads %s; want %s", s.ID(), want)
		}
		return s
	}
	holder, unsealer, operator := src("holder", "a"), src("unsealer", "u1"), src("operator", "oncall")
	if err := identity.AllowRoles(identity.RoleHolder).Authorize(holder.ID()); err != nil {
		t.Fatalf("the openssl holder certificate is not authorized as a holder: %v", err)
	}
	srv := holder.ServerConfig(identity.AllowRoles(identity.RoleUnsealer, identity.RoleOperator))
	if err := pkiHandshake(t, srv, unsealer.ClientConfig(identity.AllowRoles(identity.RoleHolder))); err != nil {
		t.Fatalf("unsealer -> holder with openssl certificates: %v", err)
	}
	if err := pkiHandshake(t, srv, operator.ClientConfig(identity.AllowRoles(identity.RoleHolder))); err != nil {
		t.Fatalf("operator -> holder with openssl certificates: %v", err)
	}
	if out, err := exec.Command(bins.Unsealer, "tls", "cert", "revoke", "--ca-dir", dir, "--cert", filepath.Join(dir, "operator-oncall.crt")).CombinedOutput(); err != nil {
		t.Fatalf("revoke the openssl operator certificate: %v\n%s", err, out)
	}
	if err := holder.Reload(); err != nil {
		t.Fatalf("holder reload of the new CRL: %v", err)
	}
	if err := pkiHandshake(t, srv, operator.ClientConfig(identity.AllowRoles(identity.RoleHolder))); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked operator -> holder: %v; want refused as revoked", err)
	}
}

// readmeRecipe returns the shell block that follows `<!-- recipe: name -->`
// in the README.
func readmeRecipe(t *testing.T, readme []byte, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<!-- recipe: ` + regexp.QuoteMeta(name) + ` -->\n` + "```sh\n(.*?)\n```\n").FindSubmatch(readme)
	if m == nil {
		t.Fatalf("README.md has no ```sh block after <!-- recipe: %s -->", name)
	}
	return string(m[1])
}

// pkiHandshake runs one TLS handshake on loopback and returns the refusing
// side's error, if any.
func pkiHandshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan error, 1)
	go func() {
		c, err := lis.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		s := tls.Server(c, server)
		if err = s.Handshake(); err == nil {
			_, err = s.Read(make([]byte, 1))
		}
		done <- err
	}()
	cc, err := net.DialTimeout("tcp", lis.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_ = cc.SetDeadline(deadline)
	c := tls.Client(cc, client)
	clientErr := c.Handshake()
	if clientErr == nil {
		_, clientErr = c.Write([]byte{1})
	}
	serverErr := <-done
	if serverErr != nil {
		return fmt.Errorf("server: %w (client: %v)", serverErr, clientErr)
	}
	return clientErr
}

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
	var last error
	for {
		got, err := v.sealed(ctx)
		if err == nil && got == want {
			return
		}
		last = err
		select {
		case <-ctx.Done():
			v.t.Fatalf("vault-1 never answered sealed=%t (last error: %v)", want, last)
		case <-time.After(50 * time.Millisecond):
		}
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
	cfg := fmt.Sprintf(`id: spiffe://%[1]s/holder/%[2]s
listen: %[3]s
gossip:
  bind: %[4]s
  seeds: %[5]s
  rejoin_interval: 2s
tls:
  ca_file: %[6]s
  cert_file: %[7]s
  key_file: %[8]s
  crl_file: %[9]s
store:
  dir: %[10]s
  seal_key_file: %[11]s
audit:
  file: %[12]s
vault:
  ca_file: %[13]s
  timeout: 2s
  nodes:
    - {name: vault-1, address: %[14]q}
policy:
  allow_roles:
    - {role: unsealer, cidrs: [%[15]s/32]}
  operators:
    - {id: "spiffe://%[1]s/operator/oncall", cidrs: [%[16]s/32]}
  rate_per_minute: 120
  burst: 30
metrics_listen: %[17]s
log_level: info
`, pkiTrustDomain, name, d.listen[name], d.gossip[name], d.seeds(name), d.path("ca", "ca.crt"), d.path("tls", "holder-"+name+".crt"),
		d.path("tls", "holder-"+name+".key"), d.path("ca", "crl.pem"), filepath.Join(hd, "store"), filepath.Join(hd, "seal.key"),
		filepath.Join(hd, "audit.log"), d.path("vault-ca", "ca.crt"), vaultURL, pkiUnsealerIP, pkiOperatorIP, d.metrics[name])
	path := filepath.Join(hd, "holder.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		d.t.Fatal(err)
	}
	p := d.process("holder-"+name, nil, d.bins.Holder, "run", "-c", path)
	d.holders[name] = p
	exited, exitErr := p.Exited()
	for {
		c, err := net.DialTimeout("tcp", d.listen[name], 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			d.t.Fatalf("holder %s exited before it served: %v", name, exitErr())
		case <-ctx.Done():
			d.t.Fatalf("holder %s never served on %s: %v", name, d.listen[name], err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// seeds are every gossip address but self's.
func (d *pkiDeployment) seeds(self string) string {
	var s []string
	for name, a := range d.gossip {
		if name != self {
			s = append(s, a)
		}
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// writeUnsealerConfig writes the coordinator's config (gossip and metrics)
// or the operator's (neither), both with the CA's CRL.
func (d *pkiDeployment) writeUnsealerConfig(file, who, ip, vaultURL string, daemon bool) {
	d.t.Helper()
	var holders strings.Builder
	for _, h := range pkiHolders {
		fmt.Fprintf(&holders, "  - {id: \"spiffe://%s/holder/%s\", address: %q, shares: %d}\n", pkiTrustDomain, h.name, d.listen[h.name], h.shares)
	}
	gossip, metrics := `gossip: {bind: ""}`, `metrics_listen: ""`
	if daemon {
		gossip = fmt.Sprintf("gossip:\n  bind: %s\n  seeds: %s\n  rejoin_interval: 2s", d.gossip["unsealer"], d.seeds("unsealer"))
		metrics = "metrics_listen: " + d.metrics["unsealer"]
	}
	base := strings.ReplaceAll(who, "/", "-")
	cfg := fmt.Sprintf(`id: spiffe://%[1]s/%[2]s
source_addr: %[3]s
%[4]s
tls:
  ca_file: %[5]s
  cert_file: %[6]s
  key_file: %[7]s
  crl_file: %[8]s
holders:
%[9]splan: {shares: 5, threshold: 3}
vault:
  ca_file: %[10]s
  timeout: 5s
  nodes:
    - {name: vault-1, address: %[11]q}
watch:
  poll_interval: 1s
  down_interval: 100ms
  holder_timeout: 3s
%[12]s
log_level: info
`, pkiTrustDomain, who, ip, gossip, d.path("ca", "ca.crt"), d.path("tls", base+".crt"), d.path("tls", base+".key"),
		d.path("ca", "crl.pem"), holders.String(), d.path("vault-ca", "ca.crt"), vaultURL, metrics)
	if err := os.WriteFile(d.path(file), []byte(cfg), 0o600); err != nil {
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
