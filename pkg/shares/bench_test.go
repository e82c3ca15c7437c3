package shares

import (
	"path/filepath"
	"testing"
)

// BenchmarkSealOpen measures sealing and opening one holder's two shares.
// The argon2id case derives the key afresh each time (no cache), which is
// what a holder pays once per start.
//
//	go test -run '^$' -bench SealOpen -benchtime 20x ./pkg/shares/
func BenchmarkSealOpen(b *testing.B) {
	_, all := split(b)
	bundle := bundleFor(b, "a", 1, all, []uint8{1, 2})
	b.Run("keyfile", func(b *testing.B) {
		key := rawKeyT(b)
		for b.Loop() {
			data, err := Seal(key, bundle)
			if err != nil {
				b.Fatal(err)
			}
			got, err := Open(key, data, Expect{HolderID: "a", Generation: 1})
			if err != nil {
				b.Fatal(err)
			}
			got.Destroy()
		}
	})
	b.Run("argon2id-default", func(b *testing.B) {
		for b.Loop() {
			key, err := KeyFromPassphrase([]byte("correct horse battery staple"), DefaultArgon2)
			if err != nil {
				b.Fatal(err)
			}
			data, err := Seal(key, bundle) // derives once
			if err != nil {
				b.Fatal(err)
			}
			fresh, _ := KeyFromPassphrase([]byte("correct horse battery staple"), DefaultArgon2)
			got, err := Open(fresh, data, Expect{HolderID: "a", Generation: 1}) // derives again
			if err != nil {
				b.Fatal(err)
			}
			got.Destroy()
			key.Destroy()
			fresh.Destroy()
		}
	})
}

// BenchmarkArgon2idDerive is one key derivation at the default cost.
func BenchmarkArgon2idDerive(b *testing.B) {
	salt := make([]byte, saltLen)
	for b.Loop() {
		key, _ := KeyFromPassphrase([]byte("correct horse battery staple"), DefaultArgon2)
		if _, err := key.derive(kdfArgon2id, DefaultArgon2, salt); err != nil {
			b.Fatal(err)
		}
		key.Destroy()
	}
}

// BenchmarkStoreLoad is what a release costs the store: read and
// authenticate state.json and generation.mark, then open the generation.
func BenchmarkStoreLoad(b *testing.B) {
	_, all := split(b)
	s, err := OpenStore(filepath.Join(b.TempDir(), "store"), "a", rawKeyT(b))
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Stage(bundleFor(b, "a", 1, all, []uint8{1, 2})); err != nil {
		b.Fatal(err)
	}
	if err := s.Commit(1); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		bd, err := s.Load(1)
		if err != nil {
			b.Fatal(err)
		}
		bd.Destroy()
	}
}
