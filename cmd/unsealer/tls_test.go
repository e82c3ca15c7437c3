package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyshare/keyshare/internal/pki"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/internal/testkit/tlstest"
	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// TestTLSCommands is a session at the terminal: make a CA, issue, refuse
// bad requests with exit code 2 and a message naming the flag, never
// overwrite, revoke into a CRL the identity code loads.
func TestTLSCommands(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	type step struct {
		name string
		args []string
		code int
		want []string // substrings of stdout+stderr
	}
	cert := func(extra ...string) []string {
		return append([]string{"tls", "cert", "create", "--ca-dir", ca, "--out-dir", dir}, extra...)
	}
	steps := []step{
		{name: "fail/ca-no-trust-domain", args: []string{"tls", "ca", "create", "--dir", ca}, code: 2, want: []string{`required flag(s) "trust-domain" not set`}},
		{name: "fail/ca-bad-trust-domain", args: []string{"tls", "ca", "create", "--dir", ca, "--trust-domain", "Key Share"}, code: 2, want: []string{`trust domain "Key Share" is not usable`}},
		{name: "fail/cert-before-ca", args: cert("--role", "holder", "--name", "a", "--ip", "127.0.0.1"), code: 1, want: []string{"unsealer tls ca create --dir " + ca}},
		{name: "ok/ca", args: []string{"tls", "ca", "create", "--dir", ca, "--trust-domain", "keyshare.test"}, want: []string{"created CA for trust domain keyshare.test", "name constraint"}},
		{name: "fail/ca-again", args: []string{"tls", "ca", "create", "--dir", ca, "--trust-domain", "keyshare.test"}, code: 1, want: []string{"ca.key: file already exists; it is never overwritten"}},
		{name: "ok/holder", args: cert("--role", "holder", "--name", "a", "--ip", "127.0.0.11,127.0.0.12", "--dns", "holder-a.example", "--days", "30"),
			want: []string{"issued spiffe://keyshare.test/holder/a", "holder-a.key (0600)"}},
		{name: "fail/holder-again", args: cert("--role", "holder", "--name", "a", "--ip", "127.0.0.11"), code: 1, want: []string{"holder-a.key: file already exists"}},
		{name: "ok/unsealer", args: cert("--role", "unsealer", "--name", "u1", "--ip", "127.0.0.20")},
		{name: "ok/operator", args: cert("--role", "operator", "--name", "oncall")},
		{name: "ok/kmsplugin", args: cert("--role", "kmsplugin", "--name", "node-1", "--ip", "127.0.0.40")},
		{name: "fail/ip-not-ip", args: cert("--role", "holder", "--name", "b", "--ip", "127.0.0.1,holder-b"), code: 2, want: []string{`--ip "holder-b" is not an IP address`}},
		{name: "fail/name-slash", args: cert("--role", "holder", "--name", "b/c", "--ip", "127.0.0.1"), code: 2, want: []string{`--name "b/c" contains '/'`}},
		{name: "fail/unknown-role", args: cert("--role", "admin", "--name", "b", "--ip", "127.0.0.1"), code: 2, want: []string{`unknown role "admin"; use one of holder, unsealer, operator, kmsplugin, vault`}},
		{name: "fail/holder-without-ip", args: cert("--role", "holder", "--name", "b"), code: 2, want: []string{"give the addresses it serves on with --ip"}},
		{name: "fail/days-past-ca", args: cert("--role", "holder", "--name", "b", "--ip", "127.0.0.1", "--days", "4000"), code: 2, want: []string{"would outlive the CA"}},
		{name: "fail/revoke-nothing", args: []string{"tls", "cert", "revoke", "--ca-dir", ca}, code: 2, want: []string{"give exactly one of --cert FILE and --serial HEX"}},
		{name: "ok/crl-update-empty", args: []string{"tls", "crl", "update", "--ca-dir", ca}, want: []string{"number 1, 0 revoked"}},
		{name: "ok/revoke", args: []string{"tls", "cert", "revoke", "--ca-dir", ca, "--cert", filepath.Join(dir, "holder-a.crt")}, want: []string{"revoked " + filepath.Join(dir, "holder-a.crt"), "number 2, 1 revoked"}},
		{name: "ok/revoke-again", args: []string{"tls", "cert", "revoke", "--ca-dir", ca, "--cert", filepath.Join(dir, "holder-a.crt")}, want: []string{"already revoked", "nothing changed"}},
		{name: "fail/revoke-bad-serial", args: []string{"tls", "cert", "revoke", "--ca-dir", ca, "--serial", "xyz"}, code: 2, want: []string{`--serial "xyz" is not a hexadecimal number`}},
		{name: "ok/revoke-serial", args: []string{"tls", "cert", "revoke", "--ca-dir", ca, "--serial", "0a:0b"}, want: []string{"revoked serial a0b", "number 3, 2 revoked"}},
	}
	for _, s := range steps {
		out, errOut, code := proctest.Run(t, "", nil, unsealerBin, s.args...)
		all := out + errOut
		if code != s.code {
			t.Fatalf("%s: exit %d, want %d; output:\n%s", s.name, code, s.code, all)
		}
		for _, w := range s.want {
			if !strings.Contains(all, w) {
				t.Fatalf("%s: output lacks %q:\n%s", s.name, w, all)
			}
		}
		if strings.Contains(all, "PRIVATE KEY") {
			t.Fatalf("%s: a private key reached the output", s.name)
		}
	}
	for _, f := range []string{"ca/ca.key", "holder-a.key", "unsealer-u1.key", "operator-oncall.key", "kmsplugin-node-1.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", f, err, st.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "holder-b.key")); err == nil {
		t.Fatal("a refused request wrote holder-b.key")
	}
	// What the commands made is what the daemons load: a holder certificate
	// is authorized as a holder by an unsealer, until it is revoked and the
	// unsealer reloads the CRL.
	load := func(base string) *identity.Source {
		src, err := identity.New(identity.Options{CAFile: filepath.Join(ca, pki.CACertFile), CertFile: filepath.Join(dir, base+".crt"),
			KeyFile: filepath.Join(dir, base+".key"), CRLFile: filepath.Join(ca, pki.CRLFile), TrustDomain: "keyshare.test"})
		if err != nil {
			t.Fatalf("identity refuses %s or the CRL made by the commands: %v", base, err)
		}
		if want := "spiffe://keyshare.test/" + strings.Replace(base, "-", "/", 1); src.ID().String() != want {
			t.Fatalf("%s: identity reads %s; want %s", base, src.ID(), want)
		}
		return src
	}
	if _, _, code := proctest.Run(t, "", nil, unsealerBin, cert("--role", "holder", "--name", "h2", "--ip", "127.0.0.1")...); code != 0 {
		t.Fatal("issue holder h2")
	}
	holder, unsealer := load("holder-h2"), load("unsealer-u1")
	if err := identity.AllowRoles(identity.RoleHolder).Authorize(holder.ID()); err != nil {
		t.Fatalf("holder h2 is not authorized as a holder: %v", err)
	}
	srv := holder.ServerConfig(identity.AllowRoles(identity.RoleUnsealer))
	cli := unsealer.ClientConfig(identity.AllowRoles(identity.RoleHolder))
	if err := tlstest.Refusal(t, srv, cli); err != nil {
		t.Fatalf("unsealer -> holder h2: %v", err)
	}
	if out, errOut, code := proctest.Run(t, "", nil, unsealerBin, "tls", "cert", "revoke", "--ca-dir", ca, "--cert", filepath.Join(dir, "holder-h2.crt")); code != 0 {
		t.Fatalf("revoke holder h2: %s%s", out, errOut)
	}
	if err := tlstest.Refusal(t, srv, cli); err != nil {
		t.Fatalf("before the unsealer reloads, the old CRL holds: %v", err)
	}
	if err := unsealer.Reload(); err != nil {
		t.Fatalf("reload of the CRL written by revoke: %v", err)
	}
	if err := tlstest.Refusal(t, srv, cli); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("unsealer -> revoked holder h2: %v; want refused as revoked", err)
	}
}
