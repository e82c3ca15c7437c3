package metricsrv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func writeCert(t *testing.T, path string, notAfter time.Time) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// value is the one gauge's value in reg.
func value(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gather: %v, %v", mfs, err)
	}
	return mfs[0].GetMetric()[0].GetGauge().GetValue()
}

func TestCertExpiry(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "leaf.crt")
	g := CertExpiry("keyshare_test_cert_expiry_timestamp_seconds", path)
	reg := prometheus.NewRegistry()
	reg.MustRegister(g)

	if v := value(t, reg); v != 0 {
		t.Errorf("missing file: %v, want 0", v)
	}
	first := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	writeCert(t, path, first)
	if v := value(t, reg); v != float64(first.Unix()) {
		t.Errorf("got %v, want %v", v, first.Unix())
	}
	// A rotated certificate shows at the next scrape.
	second := first.AddDate(1, 0, 0)
	writeCert(t, path, second)
	if v := value(t, reg); v != float64(second.Unix()) {
		t.Errorf("after rotation: %v, want %v", v, second.Unix())
	}
	if err := os.WriteFile(path, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v := value(t, reg); v != 0 {
		t.Errorf("garbage file: %v, want 0", v)
	}
}
