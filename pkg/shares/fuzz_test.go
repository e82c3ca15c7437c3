package shares

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to the sealed file parser: it must never
// panic, and a file that opens must re-seal and open to the same shares.
func FuzzOpen(f *testing.F) {
	_, all := split(f)
	key, _ := KeyFromBytes(bytes.Repeat([]byte{1}, KeyLen))
	good, err := Seal(key, bundleFor(f, "a", 1, all, []uint8{1, 2}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:headerLen])
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Open(key, data, Expect{HolderID: "a", Generation: 1})
		if err != nil {
			if b != nil {
				t.Fatal("bundle returned with an error")
			}
			return
		}
		again, err := Seal(key, b)
		if err != nil {
			t.Fatalf("opened bundle does not re-seal: %v", err)
		}
		b2, err := Open(key, again, Expect{HolderID: "a", Generation: 1})
		if err != nil {
			t.Fatalf("re-sealed file does not open: %v", err)
		}
		for i := range b.Shares {
			if !bytes.Equal(b.Shares[i].Value, b2.Shares[i].Value) || b.Shares[i].Index != b2.Shares[i].Index {
				t.Fatal("round trip changed a share")
			}
		}
		_, _, _, _, _ = Inspect(data)
	})
}

// FuzzParseShare: never panics; what parses has the right length and
// round-trips through the hex form.
func FuzzParseShare(f *testing.F) {
	_, all := split(f)
	f.Add(all[0].Hex())
	f.Add(all[0].Base64())
	f.Add("")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, in string) {
		b, err := ParseShare("input", in)
		if err != nil {
			if b != nil {
				t.Fatal("bytes returned with an error")
			}
			return
		}
		if len(b) != ShareLen {
			t.Fatalf("parsed %d bytes", len(b))
		}
		again, err := ParseShare("again", hex.EncodeToString(b))
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("hex round trip failed: %v", err)
		}
	})
}

// FuzzParseManifest: never panics; a manifest that parses re-encodes to one
// that parses equal.
func FuzzParseManifest(f *testing.F) {
	_, all := split(f)
	good, _ := json.Marshal(NewManifest(2, 3, all))
	f.Add(good)
	f.Add([]byte(`{"generation":1,"threshold":2,"digests":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseManifest(b)
		if err != nil || !m2.Equal(m) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzStoreState feeds arbitrary bytes to the authenticated state parser:
// it must never panic, and what it accepts must carry the MAC of a state
// this store wrote, so it re-seals to the same State.
func FuzzStoreState(f *testing.F) {
	key, _ := KeyFromBytes(bytes.Repeat([]byte{2}, KeyLen))
	s := &Store{dir: f.TempDir(), holder: "a", key: key}
	want := State{Current: 3, Staged: 4, StagedNonce: "n4", Kept: []uint64{2, 1}, Proven: 3, LastProof: 3, Mark: 3}
	good, err := s.seal(kindState, want)
	if err != nil {
		f.Fatal(err)
	}
	mk, err := s.seal(kindMark, mark{High: 3, Floor: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(mk)
	f.Add([]byte(`{"current":1,"staged":0}`))
	f.Add([]byte(`{"format":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var st State
		if err := s.open("state.json", kindState, data, &st); err != nil {
			return
		}
		again, err := s.seal(kindState, st)
		if err != nil {
			t.Fatalf("accepted state does not re-seal: %v", err)
		}
		var st2 State
		if err := s.open("state.json", kindState, again, &st2); err != nil {
			t.Fatalf("re-sealed state does not open: %v", err)
		}
		a, _ := json.Marshal(st)
		b, _ := json.Marshal(st2)
		if !bytes.Equal(a, b) {
			t.Fatalf("round trip changed the state: %s != %s", a, b)
		}
	})
}
