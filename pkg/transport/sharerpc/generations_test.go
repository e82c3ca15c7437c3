package sharerpc

import (
	"context"
	"testing"
)

// TestManifestReportsStagedAndPrevious: a Manifest answer carries the
// staged and previous generations and the proven one, and a Stage carries
// its rekey nonce, across the wire.
func TestManifestReportsStagedAndPrevious(t *testing.T) {
	f := newFixture(t)
	c := f.unsealerClient(t)
	ctx := context.Background()

	staged, prev := testManifest(8), testManifest(6)
	staged.HolderID, prev.HolderID = "", ""
	answer := testManifest(7)
	answer.Staged, answer.Previous, answer.Proven = &staged, &prev, 6
	f.h.mu.Lock()
	f.h.answer = &answer
	f.h.mu.Unlock()
	m, err := c.Manifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Generation != 7 || m.Staged == nil || m.Staged.Generation != 8 || m.Previous == nil || m.Previous.Generation != 6 || m.Proven != 6 {
		t.Fatalf("Manifest = %+v", m)
	}
	if !m.Staged.Shares().Equal(staged.Shares()) || !m.Previous.Shares().Equal(prev.Shares()) {
		t.Fatal("staged or previous manifest changed on the wire")
	}
	if m.Staged.HolderID != answer.HolderID {
		t.Fatalf("staged manifest names holder %q, want %q", m.Staged.HolderID, answer.HolderID)
	}

	// A holder with neither answers with nil ones.
	bare := testManifest(7)
	f.h.mu.Lock()
	f.h.answer = &bare
	f.h.mu.Unlock()
	m, err = c.Manifest(ctx)
	if err != nil || m.Staged != nil || m.Previous != nil {
		t.Fatalf("Manifest = %+v, %v: want no staged or previous", m, err)
	}

	req := StageRequest{Generation: 8, Shares: []Share{{Index: 3, Value: []byte{3}}}, Manifest: testManifest(8), RekeyNonce: "3f1a-nonce"}
	if err := c.Stage(ctx, req); err != nil {
		t.Fatal(err)
	}
	f.h.mu.Lock()
	got := f.h.stage.RekeyNonce
	f.h.mu.Unlock()
	if got != "3f1a-nonce" {
		t.Fatalf("handler saw rekey nonce %q", got)
	}
	req.Shares = []Share{{Index: 3, Value: []byte{3}}}
	req.RekeyNonce = "bad\nnonce"
	if err := c.Stage(ctx, req); !errContains(err, "rekey_nonce holds a control character") {
		t.Fatalf("stage with a control character in the nonce: err = %v", err)
	}
}
