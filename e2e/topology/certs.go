package topology

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/keyshare/keyshare/internal/devpki"
)

// ReissueCert replaces h's certificate and key with a fresh leaf for the
// same ID and address, valid from notBefore to notAfter (the zero time
// keeps devpki's default). A not yet valid or expired leaf is a clock-skew
// fault. The holder reloads it on file change; restart it to be sure.
func (h *Holder) ReissueCert(notBefore, notAfter time.Time) error {
	leaf, err := h.t.CA.Issue(devpki.LeafOptions{URIs: []string{h.ID}, IPs: []net.IP{net.ParseIP(h.IP)}, DNSNames: []string{"localhost"},
		NotBefore: notBefore, NotAfter: notAfter})
	if err != nil {
		return fmt.Errorf("failed to reissue certificate of holder %s: %w", h.Name, err)
	}
	dir, base := filepath.Split(h.certPath)
	cert, key, err := leaf.WriteFiles(dir, base[:len(base)-len(filepath.Ext(base))])
	if err != nil {
		return err
	}
	if cert != h.certPath || key != h.keyPath {
		return fmt.Errorf("holder %s: reissued certificate went to %s and %s, not %s and %s", h.Name, cert, key, h.certPath, h.keyPath)
	}
	return nil
}

// CoordinatorCert returns the coordinator's certificate and key files.
func (t *Topology) CoordinatorCert() (certPath, keyPath string) {
	return t.path("tls", "unsealer-u1.crt"), t.path("tls", "unsealer-u1.key")
}
