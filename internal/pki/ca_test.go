package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const td = "keyshare.test"

func newCA(t *testing.T, kt KeyType) *CA {
	t.Helper()
	ca, err := CreateCA(filepath.Join(t.TempDir(), "ca"), CAOptions{TrustDomain: td, KeyType: kt})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestCreateCA(t *testing.T) {
	type tc struct {
		opts CAOptions
		want string // error substring; "" = success
	}
	run := func(t *testing.T, c tc) {
		dir := filepath.Join(t.TempDir(), "ca")
		ca, err := CreateCA(dir, c.opts)
		if c.want != "" {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("CreateCA: %v; want an error containing %q", err, c.want)
			}
			if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
				t.Fatal("a refused CA left a key behind")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if m := mode(t, ca.KeyPath()); m != 0o600 {
			t.Fatalf("key mode %04o; want 0600", m)
		}
		if m := mode(t, ca.CertPath()); m != 0o644 {
			t.Fatalf("certificate mode %04o; want 0644", m)
		}
		loaded, err := LoadCA(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		c0 := loaded.Cert
		if !c0.IsCA || !c0.MaxPathLenZero || c0.KeyUsage&x509.KeyUsageCertSign == 0 || c0.KeyUsage&x509.KeyUsageCRLSign == 0 {
			t.Fatalf("CA certificate lacks CA bits or usages: IsCA=%v keyUsage=%v", c0.IsCA, c0.KeyUsage)
		}
		if loaded.TrustDomain.Name() != td {
			t.Fatalf("trust domain %q; want %q", loaded.TrustDomain.Name(), td)
		}
		wantNC := !c.opts.NoNameConstraint
		if got := len(c0.PermittedURIDomains) == 1 && c0.PermittedURIDomains[0] == td && c0.PermittedDNSDomainsCritical; got != wantNC {
			t.Fatalf("name constraint %v (critical %v); want present=%v", c0.PermittedURIDomains, c0.PermittedDNSDomainsCritical, wantNC)
		}
		if c.opts.KeyType == KeyEd25519 {
			if _, ok := loaded.Key.(ed25519.PrivateKey); !ok {
				t.Fatalf("key is %T; want ed25519", loaded.Key)
			}
		}
	}
	for name, c := range map[string]tc{
		"ok/ecdsa":              {opts: CAOptions{TrustDomain: td}},
		"ok/ed25519":            {opts: CAOptions{TrustDomain: td, KeyType: KeyEd25519}},
		"ok/no-name-constraint": {opts: CAOptions{TrustDomain: td, NoNameConstraint: true}},
		"fail/no-trust-domain":  {opts: CAOptions{}, want: "no trust domain"},
		"fail/bad-trust-domain": {opts: CAOptions{TrustDomain: "Key Share"}, want: `trust domain "Key Share" is not usable`},
		"fail/negative-days":    {opts: CAOptions{TrustDomain: td, Days: -1}, want: "not positive"},
		"fail/bad-key-type":     {opts: CAOptions{TrustDomain: td, KeyType: "rsa"}, want: "unknown key type"},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}

func TestCreateCANeverOverwrites(t *testing.T) {
	ca := newCA(t, "")
	before := map[string][]byte{}
	for _, p := range []string{ca.KeyPath(), ca.CertPath()} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		before[p] = b
	}
	for name, remove := range map[string]string{"both-exist": "", "only-key-exists": ca.CertPath()} {
		t.Run(name, func(t *testing.T) {
			if remove != "" {
				if err := os.Rename(remove, remove+".away"); err != nil {
					t.Fatal(err)
				}
				defer os.Rename(remove+".away", remove)
			}
			_, err := CreateCA(ca.Dir, CAOptions{TrustDomain: td})
			if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), ca.KeyPath()) {
				t.Fatalf("CreateCA over an existing CA: %v; want ErrExists naming %s", err, ca.KeyPath())
			}
			if b, _ := os.ReadFile(ca.KeyPath()); !bytes.Equal(b, before[ca.KeyPath()]) {
				t.Fatal("the CA key changed")
			}
		})
	}
	if b, _ := os.ReadFile(ca.CertPath()); !bytes.Equal(b, before[ca.CertPath()]) {
		t.Fatal("the CA certificate changed")
	}
	assertNoTempFiles(t, ca.Dir)
}

func TestLoadCARefuses(t *testing.T) {
	type tc struct {
		prep func(t *testing.T, ca *CA)
		td   string
		want string
	}
	run := func(t *testing.T, c tc) {
		ca := newCA(t, "")
		c.prep(t, ca)
		_, err := LoadCA(ca.Dir, c.td)
		if c.want == "" {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("LoadCA: %v; want an error containing %q", err, c.want)
		}
	}
	for name, c := range map[string]tc{
		"ok/as-made":           {prep: func(*testing.T, *CA) {}},
		"ok/same-trust-domain": {prep: func(*testing.T, *CA) {}, td: td},
		"fail/key-group-read":  {prep: func(t *testing.T, ca *CA) { chmod(t, ca.KeyPath(), 0o640) }, want: "chmod 600"},
		"fail/missing-cert":    {prep: func(t *testing.T, ca *CA) { rm(t, ca.CertPath()) }, want: "tls ca create"},
		"fail/missing-key":     {prep: func(t *testing.T, ca *CA) { rm(t, ca.KeyPath()) }, want: CAKeyFile},
		"fail/other-trust":     {prep: func(*testing.T, *CA) {}, td: "other.test", want: "outside the CA's name constraints"},
		"fail/key-of-other-ca": {prep: func(t *testing.T, ca *CA) { copyFile(t, newCA(t, "").KeyPath(), ca.KeyPath()) }, want: "does not belong"},
		"fail/garbage-key":     {prep: func(t *testing.T, ca *CA) { write(t, ca.KeyPath(), "not a key", 0o600) }, want: "no PEM block"},
		"fail/leaf-as-ca-cert": {prep: func(t *testing.T, ca *CA) {
			write(t, ca.CertPath(), string(issue(t, ca, RoleHolder, "a").CertPEM), 0o644)
		}, want: "not a CA"},
		"fail/encrypted-ca-key": {prep: func(t *testing.T, ca *CA) {
			write(t, ca.KeyPath(), "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n", 0o600)
		}, want: "is encrypted"},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}

func chmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

func rm(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p, s string, m os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), m); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	write(t, to, string(b), 0o600)
}

// assertNoTempFiles fails if a temporary file was left in dir.
func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}

// TestForeignCA: a CA made elsewhere (SEC 1 EC key, no trust domain in the
// certificate) can revoke at once, and issue once given a trust domain.
func TestForeignCA(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "corp CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, CACertFile), string(pemCert(der)), 0o644)
	write(t, filepath.Join(dir, CAKeyFile), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})), 0o600)

	ca, err := LoadCA(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Issue(LeafOptions{Role: RoleOperator, Name: "x"}); err == nil || !strings.Contains(err.Error(), "pass --trust-domain") {
		t.Fatalf("Issue without a trust domain: %v; want it to ask for --trust-domain", err)
	}
	if _, err := ca.UpdateCRL(CRLOptions{}); err != nil {
		t.Fatalf("UpdateCRL on a foreign CA: %v", err)
	}
	ca, err = LoadCA(dir, td)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ca.Issue(LeafOptions{Role: RoleOperator, Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := ca.Revoke(l.Cert, CRLOptions{}); err != nil || info.Number.Int64() != 2 {
		t.Fatalf("Revoke: %+v, %v; want CRL number 2", info, err)
	}
}
