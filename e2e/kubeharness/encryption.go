package kubeharness

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// Provider is how an apiserver stores Secrets.
type Provider string

// The providers the harness can configure.
const (
	// KMS is the keyshare KMS v2 plugin on the host's unix socket, alone:
	// a Secret that it cannot decrypt cannot be read at all.
	KMS Provider = "kms"
	// Identity stores Secrets in plaintext (the benchmark's reference).
	Identity Provider = "identity"
	// AESCBC encrypts with a static key in the config file (the
	// benchmark's reference for a local cipher).
	AESCBC Provider = "aescbc"
)

// ProviderName is the KMS provider's name: the plugin's provider_name, and
// part of every stored prefix.
const ProviderName = "keyshare"

// StoredPrefix is how every Secret the KMS provider wrote starts in etcd.
const StoredPrefix = "k8s:enc:kms:v2:" + ProviderName + ":"

// encryptionConfig returns an EncryptionConfiguration for Secrets with
// provider p; socket is the plugin's socket (KMS only).
func encryptionConfig(p Provider, socket string) (string, error) {
	var b strings.Builder
	b.WriteString("# written by e2e/kubeharness\napiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n")
	switch p {
	case KMS:
		fmt.Fprintf(&b, "      - kms:\n          apiVersion: v2\n          name: %s\n          endpoint: unix://%s\n          timeout: 3s\n", ProviderName, socket)
	case Identity:
		b.WriteString("      - identity: {}\n")
	case AESCBC:
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return "", fmt.Errorf("failed to make an aescbc key: %w", err)
		}
		fmt.Fprintf(&b, "      - aescbc:\n          keys:\n            - name: k1\n              secret: %s\n", base64.StdEncoding.EncodeToString(key))
	default:
		return "", fmt.Errorf("unknown encryption provider %q (want kms, identity or aescbc)", p)
	}
	return b.String(), nil
}

// WriteEncryptionConfig writes the encryption config for provider p; the
// apiserver reads it at its next start. socket is the KMS plugin's socket.
func (a *APIServer) WriteEncryptionConfig(p Provider, socket string) error {
	cfg, err := encryptionConfig(p, socket)
	if err != nil {
		return fmt.Errorf("%s: %w", a.Name, err)
	}
	return writeFile(a.EncryptionConfig, []byte(cfg), 0o600)
}
