package topology

// CoordinatorCert returns the coordinator's certificate and key files.
func (t *Topology) CoordinatorCert() (certPath, keyPath string) {
	return t.path("tls", "unsealer-u1.crt"), t.path("tls", "unsealer-u1.key")
}
