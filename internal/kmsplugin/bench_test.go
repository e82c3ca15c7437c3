package kmsplugin

import (
	"context"
	"testing"
	"time"
)

// BenchmarkEncrypt is the plugin's own cost against the fake Vault:
// Encrypt through the unix socket with the apiserver's KMS v2 client
// (socket), next to the same transit call made directly with the plugin's
// Vault client (direct). The real-Vault figures are BenchmarkKMSPlugin in
// e2e (BENCHMARKS.md).
func BenchmarkEncrypt(b *testing.B) {
	r := newRig(b, 1)
	r.issue(b, pluginIP)
	r.cfg.LogLevel = "info"
	p := r.start(b)
	waitStatus(b, p.client, 5*time.Second, "ok", isOK)
	direct, err := NewVaultClient(r.cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	direct.SetToken(r.token(b))
	ctx := context.Background()
	seed := make([]byte, 32)
	b.Run("socket", func(b *testing.B) {
		for b.Loop() {
			if _, err := p.client.Encrypt(ctx, "bench", seed); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := direct.Encrypt(ctx, "transit", "kubernetes", seed, associatedData, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
