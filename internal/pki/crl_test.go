package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

func readCRL(t *testing.T, path string) *x509.RevocationList {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "X509 CRL" {
		t.Fatalf("%s is not a PEM X509 CRL", path)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func serials(crl *x509.RevocationList) []string {
	var out []string
	for _, e := range crl.RevokedCertificateEntries {
		out = append(out, e.SerialNumber.String())
	}
	return out
}

func TestCRLNumbersAndEntries(t *testing.T) {
	ca := newCA(t, "")
	a, b := issue(t, ca, RoleHolder, "a"), issue(t, ca, RoleUnsealer, "u1")

	info, err := ca.UpdateCRL(CRLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Number.Int64() != 1 || info.Revoked != 0 {
		t.Fatalf("first CRL: %+v; want number 1, empty", info)
	}
	if m := mode(t, ca.CRLPath()); m != 0o644 {
		t.Fatalf("CRL mode %04o; want 0644", m)
	}
	steps := []struct {
		do      func() (CRLInfo, error)
		number  int64
		revoked []string
		already bool
	}{
		{do: func() (CRLInfo, error) { return ca.Revoke(a.Cert, CRLOptions{}) }, number: 2, revoked: []string{a.Cert.SerialNumber.String()}},
		{do: func() (CRLInfo, error) { return ca.Revoke(a.Cert, CRLOptions{}) }, number: 2, revoked: []string{a.Cert.SerialNumber.String()}, already: true},
		{do: func() (CRLInfo, error) { return ca.RevokeSerial(b.Cert.SerialNumber, CRLOptions{Days: 7}) }, number: 3,
			revoked: []string{a.Cert.SerialNumber.String(), b.Cert.SerialNumber.String()}},
		{do: func() (CRLInfo, error) { return ca.UpdateCRL(CRLOptions{}) }, number: 4,
			revoked: []string{a.Cert.SerialNumber.String(), b.Cert.SerialNumber.String()}},
	}
	for i, s := range steps {
		info, err := s.do()
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		crl := readCRL(t, ca.CRLPath())
		if crl.Number.Int64() != s.number || info.Number.Int64() != s.number || info.Already != s.already {
			t.Fatalf("step %d: CRL number %v (info %+v); want %d, already=%v", i, crl.Number, info, s.number, s.already)
		}
		if got := serials(crl); strings.Join(got, ",") != strings.Join(s.revoked, ",") {
			t.Fatalf("step %d: revoked %v; want %v", i, got, s.revoked)
		}
		if err := crl.CheckSignatureFrom(ca.Cert); err != nil {
			t.Fatalf("step %d: CRL signature: %v", i, err)
		}
	}
	// The revocation time of a survives rewrites.
	crl := readCRL(t, ca.CRLPath())
	if rt := crl.RevokedCertificateEntries[0].RevocationTime; time.Since(rt) > time.Minute || time.Since(rt) < 0 {
		t.Fatalf("revocation time %s; want about now", rt)
	}
	assertNoTempFiles(t, ca.Dir)
}

func TestCRLRefuses(t *testing.T) {
	ca := newCA(t, "")
	other := newCA(t, "")
	if _, err := other.UpdateCRL(CRLOptions{}); err != nil {
		t.Fatal(err)
	}
	foreignCRL, err := os.ReadFile(other.CRLPath())
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		prep func(t *testing.T)
		do   func() error
		want string
		is   error
	}
	run := func(t *testing.T, c tc) {
		os.Remove(ca.CRLPath())
		if c.prep != nil {
			c.prep(t)
		}
		before, _ := os.ReadFile(ca.CRLPath())
		err := c.do()
		if err == nil || !strings.Contains(err.Error(), c.want) || (c.is != nil && !errors.Is(err, c.is)) {
			t.Fatalf("got %v; want an error containing %q", err, c.want)
		}
		if after, _ := os.ReadFile(ca.CRLPath()); string(after) != string(before) {
			t.Fatal("a refused revocation changed the CRL")
		}
	}
	for name, c := range map[string]tc{
		"fail/cert-of-other-ca": {do: func() error { _, err := ca.Revoke(issue(t, other, RoleHolder, "a").Cert, CRLOptions{}); return err },
			want: "revoke it with the CA that issued it", is: ErrNotIssuedByCA},
		"fail/crl-of-other-ca": {prep: func(t *testing.T) { write(t, ca.CRLPath(), string(foreignCRL), 0o644) },
			do: func() error { _, err := ca.Revoke(issue(t, ca, RoleHolder, "a").Cert, CRLOptions{}); return err }, want: "not signed by the CA"},
		"fail/garbage-crl": {prep: func(t *testing.T) { write(t, ca.CRLPath(), "garbage", 0o644) },
			do: func() error { _, err := ca.UpdateCRL(CRLOptions{}); return err }, want: "failed to parse CRL"},
		"fail/zero-serial":   {do: func() error { _, err := ca.RevokeSerial(big.NewInt(0), CRLOptions{}); return err }, want: "must be positive"},
		"fail/negative-days": {do: func() error { _, err := ca.UpdateCRL(CRLOptions{Days: -1}); return err }, want: "not positive"},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}
