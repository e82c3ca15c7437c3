package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func issue(t *testing.T, ca *CA, role Role, name string) *Leaf {
	t.Helper()
	l, err := ca.Issue(LeafOptions{Role: role, Name: name, IPs: []net.IP{net.ParseIP("127.0.0.1").To4()}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestIssue(t *testing.T) {
	ca := newCA(t, "")
	ip := func(s ...string) []net.IP {
		ips, err := ParseIPs(s)
		if err != nil {
			t.Fatal(err)
		}
		return ips
	}
	server, client := x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth
	type tc struct {
		opts    LeafOptions
		wantEKU []x509.ExtKeyUsage
		want    string // error substring; "" = success
	}
	run := func(t *testing.T, c tc) {
		l, err := ca.Issue(c.opts)
		if c.want != "" {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Issue: %v; want an error containing %q", err, c.want)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		cert := l.Cert
		wantID := "spiffe://" + td + "/" + string(c.opts.Role) + "/" + c.opts.Name
		if len(cert.URIs) != 1 || cert.URIs[0].String() != wantID || l.ID.String() != wantID {
			t.Fatalf("URI SANs %v (ID %s); want exactly %s", cert.URIs, l.ID, wantID)
		}
		if !slices.Equal(cert.ExtKeyUsage, c.wantEKU) {
			t.Fatalf("extended key usage %v; want %v", cert.ExtKeyUsage, c.wantEKU)
		}
		if cert.IsCA || cert.KeyUsage != x509.KeyUsageDigitalSignature {
			t.Fatalf("IsCA=%v keyUsage=%v; want a leaf with digitalSignature only", cert.IsCA, cert.KeyUsage)
		}
		if len(cert.IPAddresses) != len(c.opts.IPs) {
			t.Fatalf("IP SANs %v; want %v", cert.IPAddresses, c.opts.IPs)
		}
		for i := range c.opts.IPs {
			if !cert.IPAddresses[i].Equal(c.opts.IPs[i]) {
				t.Fatalf("IP SANs %v; want %v", cert.IPAddresses, c.opts.IPs)
			}
		}
		if !slices.Equal(cert.DNSNames, c.opts.DNSNames) {
			t.Fatalf("DNS SANs %v; want %v", cert.DNSNames, c.opts.DNSNames)
		}
		days := c.opts.Days
		if days == 0 {
			days = DefaultLeafDays
		}
		if d := time.Until(cert.NotAfter); d < time.Duration(days)*24*time.Hour-time.Hour || d > time.Duration(days)*24*time.Hour {
			t.Fatalf("valid for %s more; want %d days", d, days)
		}
		// It verifies against the CA, with the usage it is meant for.
		pool := x509.NewCertPool()
		pool.AddCert(ca.Cert)
		for _, u := range c.wantEKU {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
				t.Fatalf("does not verify for %v: %v", u, err)
			}
		}
	}
	for name, c := range map[string]tc{
		"ok/holder": {opts: LeafOptions{Role: RoleHolder, Name: "a", IPs: ip("10.0.0.11")}, wantEKU: []x509.ExtKeyUsage{server, client}},
		"ok/unsealer-two-ips-and-dns": {opts: LeafOptions{Role: RoleUnsealer, Name: "u1", IPs: ip("10.0.0.20,fd00::20"), DNSNames: []string{"unsealer.example"}, Days: 30},
			wantEKU: []x509.ExtKeyUsage{server, client}},
		"ok/operator-client-only":  {opts: LeafOptions{Role: RoleOperator, Name: "oncall"}, wantEKU: []x509.ExtKeyUsage{client}},
		"ok/kmsplugin-client-only": {opts: LeafOptions{Role: RoleKMSPlugin, Name: "node-1", IPs: ip("10.0.1.1")}, wantEKU: []x509.ExtKeyUsage{client}},
		"ok/vault-server-only":     {opts: LeafOptions{Role: RoleVault, Name: "vault-1", IPs: ip("10.0.0.101")}, wantEKU: []x509.ExtKeyUsage{server}},
		"ok/ed25519":               {opts: LeafOptions{Role: RoleHolder, Name: "b", IPs: ip("10.0.0.12"), KeyType: KeyEd25519}, wantEKU: []x509.ExtKeyUsage{server, client}},
		"ok/name-with-dots":        {opts: LeafOptions{Role: RoleHolder, Name: "host-a.dc1_x", IPs: ip("10.0.0.11")}, wantEKU: []x509.ExtKeyUsage{server, client}},
		"fail/name-with-slash":     {opts: LeafOptions{Role: RoleHolder, Name: "a/b", IPs: ip("10.0.0.11")}, want: `--name "a/b" contains '/'`},
		"fail/name-dots-only":      {opts: LeafOptions{Role: RoleHolder, Name: "..", IPs: ip("10.0.0.11")}, want: "not only dots"},
		"fail/name-space":          {opts: LeafOptions{Role: RoleHolder, Name: "a b", IPs: ip("10.0.0.11")}, want: "may hold only"},
		"fail/name-empty":          {opts: LeafOptions{Role: RoleHolder, IPs: ip("10.0.0.11")}, want: "no --name"},
		"fail/unknown-role":        {opts: LeafOptions{Role: "admin", Name: "a", IPs: ip("10.0.0.11")}, want: `unknown role "admin"`},
		"fail/server-no-address":   {opts: LeafOptions{Role: RoleHolder, Name: "a"}, want: "give the addresses it serves on with --ip"},
		"fail/bad-dns":             {opts: LeafOptions{Role: RoleHolder, Name: "a", DNSNames: []string{"a..b"}}, want: `--dns "a..b" is not a host name`},
		"fail/outlives-ca":         {opts: LeafOptions{Role: RoleHolder, Name: "a", IPs: ip("10.0.0.11"), Days: DefaultCADays + 1}, want: "would outlive the CA"},
		"fail/negative-days":       {opts: LeafOptions{Role: RoleOperator, Name: "a", Days: -3}, want: "not positive"},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}

func TestParseIPs(t *testing.T) {
	ips, err := ParseIPs([]string{"10.0.0.1, 10.0.0.2", "fd00::1"})
	if err != nil || len(ips) != 3 || len(ips[0]) != 4 || len(ips[2]) != 16 {
		t.Fatalf("ParseIPs = %v, %v; want two IPv4 (4 bytes) and one IPv6", ips, err)
	}
	for _, bad := range []string{"10.0.0", "holder-a.example", "10.0.0.1/32", "::g"} {
		if _, err := ParseIPs([]string{"10.0.0.1," + bad}); err == nil || !strings.Contains(err.Error(), `--ip "`+bad+`" is not an IP address`) {
			t.Fatalf("ParseIPs(%q): %v; want it refused by name", bad, err)
		}
	}
}

func TestParseRole(t *testing.T) {
	for _, r := range Roles {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Fatalf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	if _, err := ParseRole("Holder"); err == nil || !strings.Contains(err.Error(), "holder, unsealer, operator, kmsplugin, vault") {
		t.Fatalf("ParseRole(Holder): %v; want the list of roles", err)
	}
}

// TestNameConstraint: a certificate for another trust domain, signed with
// the CA's key by other means, does not verify against the CA.
func TestNameConstraint(t *testing.T) {
	ca := newCA(t, "")
	forge := func(uri string) *x509.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(uri)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "x"},
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
			URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, ca.Cert, &key.PublicKey, ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if _, err := forge("spiffe://" + td + "/holder/a").Verify(opts); err != nil {
		t.Fatalf("in-domain certificate refused: %v", err)
	}
	_, err := forge("spiffe://other.test/holder/a").Verify(opts)
	var inv x509.CertificateInvalidError
	if !errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName {
		t.Fatalf("out-of-domain certificate: %v; want CANotAuthorizedForThisName", err)
	}
}

func TestWriteLeaf(t *testing.T) {
	ca := newCA(t, "")
	dir := filepath.Join(t.TempDir(), "new", "folder") // made on demand
	l := issue(t, ca, RoleHolder, "a")
	certPath, keyPath, err := WriteLeaf(dir, RoleHolder, "a", l)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, keyPath); m != 0o600 {
		t.Fatalf("key mode %04o; want 0600", m)
	}
	if m := mode(t, certPath); m != 0o644 {
		t.Fatalf("certificate mode %04o; want 0644", m)
	}
	got, err := ReadCert(certPath)
	if err != nil || got.SerialNumber.Cmp(l.Cert.SerialNumber) != 0 {
		t.Fatalf("ReadCert = %v, %v; want the issued certificate", got, err)
	}
	keyBefore, _ := os.ReadFile(keyPath)
	// A second certificate for the same name is refused and changes nothing,
	// whichever of the two files exists.
	for name, remove := range map[string]string{"both": "", "only-cert": keyPath, "only-key": certPath} {
		t.Run(name, func(t *testing.T) {
			if remove != "" {
				if err := os.Rename(remove, remove+".away"); err != nil {
					t.Fatal(err)
				}
				defer os.Rename(remove+".away", remove)
			}
			_, _, err := WriteLeaf(dir, RoleHolder, "a", issue(t, ca, RoleHolder, "a"))
			if !errors.Is(err, ErrExists) {
				t.Fatalf("WriteLeaf over an existing leaf: %v; want ErrExists", err)
			}
			if remove != "" {
				if _, err := os.Stat(remove); err == nil {
					t.Fatalf("%s was written although its partner exists", remove)
				}
			}
		})
	}
	if b, _ := os.ReadFile(keyPath); string(b) != string(keyBefore) {
		t.Fatal("the key changed")
	}
	assertNoTempFiles(t, dir)
}
