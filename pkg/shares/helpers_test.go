package shares

import (
	"crypto/rand"
	"testing"

	"github.com/hashicorp/vault/shamir"
)

// split makes a fresh 32-byte secret and its 5-of-3 shares with Vault's own
// Shamir code, indexed 1..5 in dealt order.
func split(t testing.TB) (secret []byte, all []Share) {
	t.Helper()
	secret = make([]byte, KeyLen)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	parts, err := shamir.Split(secret, DefaultShares, DefaultThreshold)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range parts {
		all = append(all, Share{Index: uint8(i + 1), Value: p})
	}
	return secret, all
}

// bundleFor builds holder's bundle of generation gen from the plan's indices.
func bundleFor(t testing.TB, holder string, gen uint64, all []Share, idx []uint8) *Bundle {
	t.Helper()
	m := NewManifest(gen, DefaultThreshold, all)
	b := &Bundle{HolderID: holder, Generation: gen, Manifest: m}
	for _, i := range idx {
		b.Shares = append(b.Shares, all[i-1].Clone())
	}
	return b
}

func rawKeyT(t testing.TB) SealKey {
	t.Helper()
	b := make([]byte, KeyLen)
	_, _ = rand.Read(b)
	k, err := KeyFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
