package sharerpc

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keyshare/keyshare/pkg/transport/sharerpc/sharepb"
)

func TestManifestFromPB(t *testing.T) {
	type tc struct {
		name string
		in   *sharepb.Manifest
		want string // error substring; "" for ok
	}
	digest := &sharepb.ShareDigest{Index: 1, Sha256: make([]byte, 32)}
	run := func(t *testing.T, tc tc) {
		m, err := manifestFromPB(tc.in)
		if tc.want == "" {
			if err != nil {
				t.Fatal(err)
			}
			if m.HolderID != tc.in.GetHolderId() || m.Generation != tc.in.GetGeneration() {
				t.Fatalf("converted %+v", m)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("err = %v, want %q", err, tc.want)
		}
	}
	for _, c := range []tc{
		{name: "ok/empty-holder", in: &sharepb.Manifest{HolderId: "spiffe://ks/holder/a"}},
		{name: "ok/one-share", in: &sharepb.Manifest{Generation: 1, Threshold: 1, TotalShares: 1, Digests: []*sharepb.ShareDigest{digest}}},
		{name: "fail/generation-0-with-digests", in: &sharepb.Manifest{TotalShares: 1, Threshold: 1, Digests: []*sharepb.ShareDigest{digest}}, want: "must be empty"},
		{name: "fail/no-shares", in: &sharepb.Manifest{Generation: 2}, want: "total_shares is 0"},
		{name: "fail/missing", in: nil, want: "missing"},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

// TestWrapCancelled: a call its caller cancelled is an error errors.Is
// finds context.Canceled in, as in one process; other codes are not.
func TestWrapCancelled(t *testing.T) {
	c := &Client{addr: "127.0.0.1:1"}
	if err := c.wrap("release", status.Error(codes.Canceled, "context canceled")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v does not wrap context.Canceled", err)
	}
	if err := c.wrap("release", status.Error(codes.Internal, "sealed file failed authentication")); errors.Is(err, context.Canceled) {
		t.Fatalf("refusal: %v wraps context.Canceled", err)
	}
}
