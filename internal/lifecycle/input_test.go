package lifecycle_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/vault/shamir"

	"github.com/keyshare/keyshare/internal/lifecycle"
	"github.com/keyshare/keyshare/pkg/shares"
)

func split(t *testing.T) []shares.Share {
	t.Helper()
	raw, err := shamir.Split(make([]byte, 32), 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	var out []shares.Share
	for i, r := range raw {
		out = append(out, shares.Share{Index: uint8(i + 1), Value: r})
	}
	return out
}

func TestCollector(t *testing.T) {
	cur, old := split(t), split(t)
	m := shares.NewManifest(2, 3, cur)
	// A Vault share's x-coordinate is its last byte, and random: pick an
	// old share whose x differs from cur[0]'s, else the collector rightly
	// reports a duplicate x instead (1 run in 255 before).
	other := old[3]
	for _, o := range old {
		if o.Value[len(o.Value)-1] != cur[0].Value[len(cur[0].Value)-1] {
			other = o
			break
		}
	}
	typo := []byte(cur[1].Hex())
	typo[7] = 'g'
	type tc struct {
		name     string
		manifest bool
		inputs   []string
		wantErr  error  // of the last input
		wantText string // in the error
	}
	run := func(t *testing.T, c tc) {
		col := &lifecycle.Collector{Threshold: 3}
		if c.manifest {
			col.Manifest = m
		}
		defer col.Zero()
		var err error
		for i, in := range c.inputs {
			if err = col.Add("share "+string(rune('1'+i)), in); err != nil {
				break
			}
		}
		if c.wantErr == nil {
			if err != nil || !col.Done() {
				t.Fatalf("err %v, done %v", err, col.Done())
			}
			return
		}
		if !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), c.wantText) {
			t.Fatalf("err = %v, want %v mentioning %q", err, c.wantErr, c.wantText)
		}
		for _, in := range c.inputs {
			if strings.Contains(err.Error(), strings.TrimSpace(in)) {
				t.Fatal("error echoes the input")
			}
		}
	}
	for _, c := range []tc{
		{name: "ok/hex-and-base64-with-manifest", manifest: true, inputs: []string{cur[4].Hex(), cur[0].Base64(), " " + cur[2].Hex() + "\n"}},
		{name: "ok/no-manifest", inputs: []string{old[0].Hex(), old[1].Hex(), old[2].Hex()}},
		{name: "fail/wrong-length", manifest: true, inputs: []string{cur[0].Hex()[:64]}, wantErr: shares.ErrShareLength, wantText: "share 1"},
		{name: "fail/duplicate", manifest: true, inputs: []string{cur[0].Hex(), cur[0].Base64()}, wantErr: shares.ErrDuplicateShare, wantText: "same as share 1"},
		{name: "fail/old-generation", manifest: true, inputs: []string{cur[0].Hex(), other.Hex()}, wantErr: lifecycle.ErrWrongGeneration, wantText: "share 2"},
		{name: "fail/hex-typo", manifest: true, inputs: []string{string(typo)}, wantErr: shares.ErrShareEncoding, wantText: "share 1"},
		{name: "fail/duplicate-without-manifest", inputs: []string{old[0].Hex(), old[0].Hex()}, wantErr: shares.ErrDuplicateShare},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}
