package devpki

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestIssueAndVerify(t *testing.T) {
	ca, err := NewCA("keyshare.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueID("holder", "a", net.ParseIP("127.0.0.11"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := leaf.Cert.URIs[0].String(), "spiffe://keyshare.test/holder/a"; got != want {
		t.Fatalf("URI SAN = %q, want %q", got, want)
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf does not verify against its CA: %v", err)
	}
	other, _ := NewCA("keyshare.test")
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: other.Pool()}); err == nil {
		t.Fatal("leaf verified against a foreign CA")
	}

	dir := t.TempDir()
	certPath, keyPath, err := leaf.WriteFiles(dir, "a")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if _, err := os.Stat(certPath); err != nil {
		t.Fatal(err)
	}

	crlPath := filepath.Join(dir, "ca.crl")
	if err := ca.WriteCRL(crlPath, leaf.Cert); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(crlPath)
	blk, _ := pem.Decode(b)
	crl, err := x509.ParseRevocationList(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0 {
		t.Fatalf("CRL does not revoke the leaf: %+v", crl.RevokedCertificateEntries)
	}
}
