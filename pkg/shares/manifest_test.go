package shares

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestManifestVerify(t *testing.T) {
	_, all := split(t)
	m := NewManifest(7, 3, all)
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if err := m.Verify(s); err != nil {
			t.Fatalf("share %d: %v", s.Index, err)
		}
	}
	type tc struct {
		name  string
		share Share
		err   error
	}
	flipped := all[0].Clone()
	flipped.Value[3] ^= 1
	_, other := split(t)
	run := func(t *testing.T, tc tc) {
		if err := m.Verify(tc.share); !errors.Is(err, tc.err) {
			t.Fatalf("err = %v, want %v", err, tc.err)
		}
	}
	for _, c := range []tc{
		{name: "fail/bit-flip", share: flipped, err: ErrDigestMismatch},
		{name: "fail/other-key", share: other[0], err: ErrDigestMismatch},
		{name: "fail/wrong-index", share: Share{Index: 2, Value: all[0].Value}, err: ErrDigestMismatch},
		{name: "fail/unknown-index", share: Share{Index: 6, Value: all[0].Value}, err: ErrUnknownIndex},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}

	// The same share under another generation's manifest does not verify.
	if err := NewManifest(8, 3, all).Verify(all[0]); err != nil {
		t.Fatal(err)
	}
	if NewManifest(8, 3, all).Hash() == m.Hash() {
		t.Fatal("manifests of different generations hash the same")
	}
	old := NewManifest(6, 3, all)
	if old.Digests[1] == m.Digests[1] {
		t.Fatal("digest does not bind the generation")
	}
}

func TestManifestJSONRoundTrip(t *testing.T) {
	_, all := split(t)
	m := NewManifest(3, 3, all)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) || !got.Equal(m) {
		t.Fatalf("round trip changed the manifest")
	}
	for _, bad := range []string{`{}`, `{"generation":1,"threshold":3,"digests":{"1":"00"}}`, `{"generation":0}`, `nope`} {
		if _, err := ParseManifest([]byte(bad)); !errors.Is(err, ErrBadManifest) {
			t.Errorf("ParseManifest(%s) err = %v, want ErrBadManifest", bad, err)
		}
	}
}

func TestCheckConsistent(t *testing.T) {
	_, all := split(t)
	corrupt := func(ss []Share, i int) []Share {
		out := make([]Share, len(ss))
		for j, s := range ss {
			out[j] = s.Clone()
		}
		out[i].Value[0] ^= 0x80
		return out
	}
	type tc struct {
		name   string
		shares []Share
		bad    []uint8
		err    error
	}
	run := func(t *testing.T, tc tc) {
		bad, err := CheckConsistent(tc.shares, 3)
		if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Fatalf("err = %v, want %v", err, tc.err)
		}
		if !reflect.DeepEqual(bad, tc.bad) {
			t.Fatalf("bad = %v, want %v", bad, tc.bad)
		}
	}
	for _, c := range []tc{
		{name: "ok/all-five", shares: all},
		{name: "ok/four", shares: all[1:]},
		{name: "fail/one-bad-of-five-located", shares: corrupt(all, 3), bad: []uint8{4}, err: ErrInconsistent},
		{name: "fail/one-bad-of-four-detected", shares: corrupt(all[:4], 0), err: ErrInconsistent},
		{name: "fail/too-few", shares: all[:3], err: ErrTooFewShares},
		{name: "fail/duplicate", shares: append(append([]Share{}, all[:3]...), all[0]), err: ErrDuplicateShare},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}
