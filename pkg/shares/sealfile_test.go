package shares

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	_, all := split(t)
	pass, err := KeyFromPassphrase([]byte("correct horse battery staple"), Argon2Params{Time: 1, MemoryKiB: 1024, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]SealKey{"raw": rawKeyT(t), "passphrase": pass} {
		t.Run(name, func(t *testing.T) {
			b := bundleFor(t, "spiffe://ks/holder/a", 4, all, []uint8{1, 2})
			data, err := Seal(key, b)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range all[:2] {
				if bytes.Contains(data, s.Value) {
					t.Fatal("sealed file contains a share in the clear")
				}
			}
			got, err := Open(key, data, Expect{HolderID: "spiffe://ks/holder/a", Generation: 4})
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Shares) != 2 || !bytes.Equal(got.Shares[1].Value, all[1].Value) || got.Shares[1].Index != 2 {
				t.Fatalf("opened bundle differs: %v", got.Shares)
			}
			if !got.Manifest.Equal(b.Manifest) {
				t.Fatal("manifest differs")
			}
			holder, gen, idx, m, err := Inspect(data)
			if err != nil || holder != "spiffe://ks/holder/a" || gen != 4 || len(idx) != 2 || !m.Equal(b.Manifest) {
				t.Fatalf("Inspect = %q %d %v, %v", holder, gen, idx, err)
			}
		})
	}
}

// TestOpenTampered: every way a file can be wrong yields its own documented
// error and no plaintext.
func TestOpenTampered(t *testing.T) {
	_, all := split(t)
	key := rawKeyT(t)
	seal := func(holder string, gen uint64, idx ...uint8) []byte {
		data, err := Seal(key, bundleFor(t, holder, gen, all, idx))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	good := seal("a", 2, 1, 2)
	fileB := seal("b", 2, 3, 4)
	gen1 := seal("a", 1, 1, 2)
	want := Expect{HolderID: "a", Generation: 2}
	flip := func(i int) []byte {
		d := bytes.Clone(good)
		d[i] ^= 0x01
		return d
	}
	passKey, _ := KeyFromPassphrase([]byte("a long enough passphrase"), Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1})

	type tc struct {
		name string
		data []byte
		key  SealKey
		err  error
	}
	run := func(t *testing.T, tc tc) {
		k := tc.key
		if k == nil {
			k = key
		}
		b, err := Open(k, tc.data, want)
		if !errors.Is(err, tc.err) {
			t.Fatalf("err = %v, want %v", err, tc.err)
		}
		if b != nil {
			t.Fatal("returned a bundle on error")
		}
	}
	for _, c := range []tc{
		{name: "fail/bit-flip-ciphertext", data: flip(len(good) - 20), err: ErrTampered},
		{name: "fail/bit-flip-tag", data: flip(len(good) - 1), err: ErrTampered},
		{name: "fail/bit-flip-nonce", data: flip(40), err: ErrTampered},
		{name: "fail/bit-flip-salt-looks-like-wrong-key", data: flip(20), err: ErrWrongKey},
		{name: "fail/truncated-ciphertext", data: good[:len(good)-1], err: ErrTruncated},
		{name: "fail/truncated-binding", data: good[:headerLen+5], err: ErrTruncated},
		{name: "fail/truncated-header", data: good[:10], err: ErrTruncated},
		{name: "fail/empty", data: nil, err: ErrTruncated},
		{name: "fail/swapped-between-holders", data: fileB, err: ErrWrongHolder},
		{name: "fail/swapped-between-generations", data: gen1, err: ErrWrongGeneration},
		{name: "fail/wrong-key", data: good, key: rawKeyT(t), err: ErrWrongKey},
		{name: "fail/passphrase-for-key-file", data: good, key: passKey, err: ErrKDFMismatch},
		{name: "fail/not-a-sealed-file", data: []byte("-----BEGIN CERTIFICATE-----"), err: ErrNotSealedFile},
		{name: "fail/future-version", data: func() []byte { d := bytes.Clone(good); d[6] = 9; return d }(), err: ErrUnsupportedVersion},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

// TestOpenEveryBitFlip flips each byte of a sealed file in turn: none may
// open.
func TestOpenEveryBitFlip(t *testing.T) {
	_, all := split(t)
	key := rawKeyT(t)
	good, err := Seal(key, bundleFor(t, "a", 2, all, []uint8{5}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range good {
		d := bytes.Clone(good)
		d[i] ^= 0x04
		if b, err := Open(key, d, Expect{HolderID: "a", Generation: 2}); err == nil || b != nil {
			t.Fatalf("byte %d flipped: file still opens", i)
		}
	}
}
