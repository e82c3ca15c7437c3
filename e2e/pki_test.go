//go:build e2e

package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/internal/testkit/tlstest"
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
// that keyshare accepts them: no test CA code (internal/testkit/devpki) is used.
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
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := harness.PollEvery(rctx, 100*time.Millisecond, "the holders to refuse the revoked operator", func() (bool, error) {
		n := d.status(ctx, "operator.yaml").alive()
		return n == 0, fmt.Errorf("%d holders still let it in", n)
	}); err != nil {
		t.Fatalf("%v (the CRL was rewritten 30s ago at most)", err)
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
	if err := tlstest.Refusal(t, srv, unsealer.ClientConfig(identity.AllowRoles(identity.RoleHolder))); err != nil {
		t.Fatalf("unsealer -> holder with openssl certificates: %v", err)
	}
	if err := tlstest.Refusal(t, srv, operator.ClientConfig(identity.AllowRoles(identity.RoleHolder))); err != nil {
		t.Fatalf("operator -> holder with openssl certificates: %v", err)
	}
	if out, err := exec.Command(bins.Unsealer, "tls", "cert", "revoke", "--ca-dir", dir, "--cert", filepath.Join(dir, "operator-oncall.crt")).CombinedOutput(); err != nil {
		t.Fatalf("revoke the openssl operator certificate: %v\n%s", err, out)
	}
	if err := holder.Reload(); err != nil {
		t.Fatalf("holder reload of the new CRL: %v", err)
	}
	if err := tlstest.Refusal(t, srv, operator.ClientConfig(identity.AllowRoles(identity.RoleHolder))); err == nil || !strings.Contains(err.Error(), "revoked") {
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
