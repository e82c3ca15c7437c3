package kubeharness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// certPair is a certificate and key written to disk.
type certPair struct{ Cert, Key string }

// issue writes a leaf for cn, valid as server and client for ips, into dir
// as base.crt and base.key (0600).
func issue(ca *devpki.CA, dir, base, cn string, ips ...string) (certPair, error) {
	var parsed []net.IP
	for _, ip := range ips {
		parsed = append(parsed, net.ParseIP(ip))
	}
	leaf, err := ca.Issue(devpki.LeafOptions{CommonName: cn, IPs: parsed, DNSNames: []string{"localhost"}})
	if err != nil {
		return certPair{}, fmt.Errorf("failed to issue certificate %s: %w", cn, err)
	}
	c, k, err := leaf.WriteFiles(dir, base)
	if err != nil {
		return certPair{}, err
	}
	return certPair{Cert: c, Key: k}, nil
}

// writeServiceAccountKey writes a fresh ECDSA P-256 key (SEC 1 PEM, 0600)
// and its public key (PKIX PEM): the apiservers sign service account
// tokens with the first and verify them with the second.
func writeServiceAccountKey(keyPath, pubPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("failed to generate service account key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("failed to marshal service account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("failed to marshal service account public key: %w", err)
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return writeFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

// writeFile writes b to path atomically (a temporary file, then rename),
// so a process reading it never sees half a file.
func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}
