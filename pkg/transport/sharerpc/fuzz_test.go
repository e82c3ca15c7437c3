package sharerpc

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/keyshare/keyshare/pkg/transport/sharerpc/sharepb"
	"google.golang.org/protobuf/proto"
)

// The fuzz targets below feed arbitrary wire bytes through the same path a
// request takes on the holder: protobuf decoding, then the checks in
// convert.go. They must never panic; what passes the checks must honour the
// documented invariants and survive a round trip unchanged.

func mustMarshal(f *testing.F, m proto.Message) []byte {
	f.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func FuzzReleaseRequest(f *testing.F) {
	f.Add(mustMarshal(f, &sharepb.ReleaseRequest{VaultNode: "vault-1", Generation: 1}))
	f.Add(mustMarshal(f, &sharepb.ReleaseRequest{VaultNode: "v\x00", Generation: 1 << 63}))
	f.Add(mustMarshal(f, &sharepb.ReleaseRequest{VaultNode: strings.Repeat("v", MaxVaultNodeBytes+1)}))
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}) // length far beyond the buffer
	f.Add([]byte{0x0a, 0x02, 0xc3, 0x28})             // invalid UTF-8
	f.Add([]byte{0x10, 0x80, 0x80, 0x80})             // truncated varint
	f.Fuzz(func(t *testing.T, wire []byte) {
		var m sharepb.ReleaseRequest
		if err := proto.Unmarshal(wire, &m); err != nil {
			return
		}
		req, err := releaseFromPB(&m)
		if err != nil {
			return
		}
		n := req.VaultNode
		if n == "" || len(n) > MaxVaultNodeBytes || !utf8.ValidString(n) || strings.IndexFunc(n, unicode.IsControl) >= 0 {
			t.Fatalf("accepted vault_node %q", n)
		}
		back, err := releaseFromPB(roundTrip(t, &sharepb.ReleaseRequest{VaultNode: req.VaultNode, Generation: req.Generation}))
		if err != nil || back != req {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, req)
		}
	})
}

func FuzzStageRequest(f *testing.F) {
	man := manifestToPB(testManifest(2))
	f.Add(mustMarshal(f, stageToPB(StageRequest{Generation: 2, Shares: testShares, Manifest: testManifest(2)})))
	f.Add(mustMarshal(f, &sharepb.StageRequest{Generation: 2, Manifest: man,
		Shares: []*sharepb.Share{{Index: 1, Value: []byte{1}}, {Index: 1, Value: []byte{2}}}}))
	f.Add(mustMarshal(f, &sharepb.StageRequest{Generation: 0, Manifest: &sharepb.Manifest{}, Shares: []*sharepb.Share{{Index: 256, Value: []byte{1}}}}))
	f.Add(mustMarshal(f, &sharepb.StageRequest{Generation: 2, Manifest: &sharepb.Manifest{Generation: 2, Threshold: 1, TotalShares: 1,
		Digests: []*sharepb.ShareDigest{{Index: 1, Sha256: make([]byte, 31)}}}, Shares: []*sharepb.Share{{Index: 1, Value: []byte{1}}}}))
	f.Fuzz(func(t *testing.T, wire []byte) {
		var m sharepb.StageRequest
		if err := proto.Unmarshal(wire, &m); err != nil {
			return
		}
		req, err := stageFromPB(&m)
		if err != nil {
			return
		}
		checkManifest(t, req.Manifest)
		if req.Manifest.Generation != req.Generation || req.Generation == 0 || len(req.Shares) == 0 {
			t.Fatalf("accepted stage of generation %d with manifest %d and %d shares", req.Generation, req.Manifest.Generation, len(req.Shares))
		}
		listed := map[uint8]bool{}
		for _, d := range req.Manifest.Digests {
			listed[d.Index] = true
		}
		seen := map[uint8]bool{}
		for _, s := range req.Shares {
			if s.Index == 0 || seen[s.Index] || !listed[s.Index] || len(s.Value) == 0 || len(s.Value) > MaxShareBytes {
				t.Fatalf("accepted share %d of %d bytes (seen %v, listed %v)", s.Index, len(s.Value), seen[s.Index], listed[s.Index])
			}
			seen[s.Index] = true
		}
		// The request owns its share bytes: zeroing the message (as the
		// service does when the call ends) must not change them.
		before := cloneShares(req.Shares)
		zeroShares(m.GetShares())
		if !reflect.DeepEqual(before, req.Shares) {
			t.Fatal("zeroing the message changed the converted shares")
		}
		back, err := stageFromPB(roundTrip(t, stageToPB(req)))
		if err != nil {
			t.Fatalf("re-encoded stage refused: %v", err)
		}
		if !reflect.DeepEqual(back, req) {
			t.Fatalf("round trip changed the stage request:\n got %+v\nwant %+v", back, req)
		}
	})
}

func FuzzManifest(f *testing.F) {
	f.Add(mustMarshal(f, manifestToPB(testManifest(7))))
	f.Add(mustMarshal(f, &sharepb.Manifest{HolderId: "spiffe://ks.test/holder/a"}))
	f.Add(mustMarshal(f, &sharepb.Manifest{Generation: 1, Threshold: 2, TotalShares: 1}))
	f.Add(mustMarshal(f, &sharepb.Manifest{Generation: 1, Threshold: 1, TotalShares: 2,
		Digests: []*sharepb.ShareDigest{{Index: 3, Sha256: make([]byte, 32)}, {Index: 3, Sha256: make([]byte, 32)}}}))
	f.Fuzz(func(t *testing.T, wire []byte) {
		var m sharepb.Manifest
		if err := proto.Unmarshal(wire, &m); err != nil {
			return
		}
		man, err := manifestFromPB(&m)
		if err != nil {
			return
		}
		checkManifest(t, man)
		back, err := manifestFromPB(roundTrip(t, manifestToPB(man)))
		if err != nil {
			t.Fatalf("re-encoded manifest refused: %v", err)
		}
		if !reflect.DeepEqual(back, man) {
			t.Fatalf("round trip changed the manifest:\n got %+v\nwant %+v", back, man)
		}
	})
}

// checkManifest asserts the invariants documented on Manifest.
func checkManifest(t *testing.T, m Manifest) {
	t.Helper()
	if m.Generation == 0 {
		if m.Total != 0 || m.Threshold != 0 || len(m.Digests) != 0 {
			t.Fatalf("accepted a non-empty manifest of generation 0: %+v", m)
		}
		return
	}
	if m.Total < 1 || m.Total > 255 || m.Threshold < 1 || m.Threshold > m.Total || len(m.Digests) != m.Total {
		t.Fatalf("accepted manifest t=%d n=%d with %d digests", m.Threshold, m.Total, len(m.Digests))
	}
	seen := map[uint8]bool{}
	for _, d := range m.Digests {
		if d.Index == 0 || seen[d.Index] {
			t.Fatalf("accepted digest index %d twice or zero", d.Index)
		}
		seen[d.Index] = true
	}
}

// roundTrip marshals m and unmarshals it into a fresh message of its type.
func roundTrip[M proto.Message](t *testing.T, m M) M {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("failed to marshal %T: %v", m, err)
	}
	out := m.ProtoReflect().New().Interface().(M)
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatalf("failed to unmarshal %T: %v", m, err)
	}
	return out
}

func cloneShares(ss []Share) []Share {
	out := make([]Share, len(ss))
	for i, s := range ss {
		out[i] = Share{Index: s.Index, Value: bytes.Clone(s.Value)}
	}
	return out
}
