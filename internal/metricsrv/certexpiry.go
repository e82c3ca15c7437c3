package metricsrv

import (
	"crypto/x509"
	"encoding/pem"
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// CertExpiry is a gauge named name whose value, read from the PEM file at
// path on every scrape, is the NotAfter of its first certificate as a Unix
// time, or 0 if the file cannot be read or parsed (the identity package
// logs that itself). Reading at scrape time follows a rotated certificate
// without any reload hook. The alert KeyshareCertificateExpiresSoon
// (configs/prometheus) watches it.
func CertExpiry(name, path string) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: name,
		Help: "NotAfter of this daemon's TLS certificate, as a Unix time (0: unreadable).",
	}, func() float64 { return CertNotAfter(path) })
}

// CertNotAfter reads the NotAfter of the first certificate in the PEM file
// at path, as a Unix time, or 0 if the file cannot be read or parsed.
func CertNotAfter(path string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return 0
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return 0
	}
	return float64(cert.NotAfter.Unix())
}
