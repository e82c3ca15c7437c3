package sharerpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc/sharepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestPeerAndSharesReachHandler(t *testing.T) {
	f := newFixture(t)
	c := f.unsealerClient(t)
	ctx := context.Background()
	shares, err := c.Release(ctx, "vault-1", 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(shares) != 2 || shares[0].Index != 1 || !bytes.Equal(shares[1].Value, testShares[1].Value) {
		t.Fatalf("Release returned %d shares, not the handler's", len(shares))
	}
	p := f.h.lastPeer()
	if p.ID != f.unsealer.ID() || p.Role != "unsealer" {
		t.Fatalf("handler saw %s (%s), want %s (unsealer)", p.ID, p.Role, f.unsealer.ID())
	}
	if p.Addr.Addr() != netip.MustParseAddr(clientIP) || p.Addr.Port() == 0 {
		t.Fatalf("handler saw source %s, want %s:<port>", p.Addr, clientIP)
	}

	m, err := c.Manifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := testManifest(7); m.Generation != 7 || m.Threshold != 3 || m.Total != 5 || len(m.Digests) != 5 || m.Digests[4] != want.Digests[4] || m.HolderID != want.HolderID {
		t.Fatalf("Manifest = %+v, want %+v", m, want)
	}

	staged := []Share{{Index: 3, Value: []byte{3, 3, 3}}}
	if err := c.Stage(ctx, StageRequest{Generation: 8, Shares: staged, Manifest: testManifest(8)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(ctx, 8); err != nil {
		t.Fatal(err)
	}
	if err := c.Abort(ctx, 9); err != nil {
		t.Fatal(err)
	}
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if got := f.h.stage; got.Generation != 8 || len(got.Shares) != 1 || !bytes.Equal(got.Shares[0].Value, []byte{3, 3, 3}) || got.Manifest.Total != 5 {
		t.Fatalf("handler staged generation %d with %d shares", got.Generation, len(got.Shares))
	}
	if fmt.Sprint(f.h.gens) != "[8 9]" {
		t.Fatalf("commit/abort generations %v, want [8 9]", f.h.gens)
	}
}

func TestDenialCodes(t *testing.T) {
	f := newFixture(t)
	c := f.unsealerClient(t)
	type tc struct {
		err  error
		code codes.Code
		// reason is the denial the client must get back; "" = none.
		reason policy.Reason
	}
	run := func(t *testing.T, c2 tc) {
		f.h.setErr(c2.err)
		_, err := c.rpc.Release(context.Background(), &sharepb.ReleaseRequest{VaultNode: "vault-1", Generation: 1})
		if got := status.Code(err); got != c2.code {
			t.Fatalf("code %s, want %s (err %v)", got, c2.code, err)
		}
		d, ok := DenialFromError(err)
		if c2.reason == "" {
			if ok {
				t.Fatalf("DenialFromError found %v in a non-denial", d)
			}
			if msg := status.Convert(err).Message(); c2.code == codes.Internal && msg != internalMessage {
				t.Fatalf("internal error leaked %q", msg)
			}
			return
		}
		if !ok || d.Reason != c2.reason || d.Detail != "because of test" {
			t.Fatalf("DenialFromError = %v, %v; want reason %s with its detail", d, ok, c2.reason)
		}
		// The Client hands back a *policy.Denial.
		_, err = c.Release(context.Background(), "vault-1", 1)
		if d, ok := policy.AsDenial(err); !ok || d.Reason != c2.reason {
			t.Fatalf("Client.Release: %v; want a wrapped denial %s", err, c2.reason)
		}
	}
	deny := func(r policy.Reason) error { return policy.Deny(r, "because of test") }
	cases := map[string]tc{
		"fail/internal":         {err: errors.New("disk on fire at /var/lib/keyshare"), code: codes.Internal},
		"fail/deadline":         {err: fmt.Errorf("waiting: %w", context.DeadlineExceeded), code: codes.DeadlineExceeded},
		"ok/wrapped-denial":     {err: fmt.Errorf("policy: %w", deny(policy.ReasonRateLimited)), code: codes.ResourceExhausted, reason: policy.ReasonRateLimited},
		"ok/unknown-reason":     {err: deny("brand_new"), code: codes.PermissionDenied, reason: "brand_new"},
		"ok/peer_not_allowed":   {err: deny(policy.ReasonPeerNotAllowed), code: codes.PermissionDenied, reason: policy.ReasonPeerNotAllowed},
		"ok/source_not_allowed": {err: deny(policy.ReasonSourceNotAllowed), code: codes.PermissionDenied, reason: policy.ReasonSourceNotAllowed},
		"ok/operator_rule":      {err: deny(policy.ReasonOperatorRule), code: codes.PermissionDenied, reason: policy.ReasonOperatorRule},
		"ok/unauthenticated":    {err: deny(policy.ReasonUnauthenticated), code: codes.Unauthenticated, reason: policy.ReasonUnauthenticated},
		"ok/unknown_target":     {err: deny(policy.ReasonUnknownTarget), code: codes.FailedPrecondition, reason: policy.ReasonUnknownTarget},
		"ok/target_not_sealed":  {err: deny(policy.ReasonTargetNotSealed), code: codes.FailedPrecondition, reason: policy.ReasonTargetNotSealed},
		"ok/target_unchecked":   {err: deny(policy.ReasonTargetUnchecked), code: codes.FailedPrecondition, reason: policy.ReasonTargetUnchecked},
		"ok/generation_mismatch": {err: deny(policy.ReasonGenerationMismatch), code: codes.FailedPrecondition,
			reason: policy.ReasonGenerationMismatch},
		"ok/maintenance_hold": {err: deny(policy.ReasonMaintenanceHold), code: codes.FailedPrecondition, reason: policy.ReasonMaintenanceHold},
		"ok/rate_limited":     {err: deny(policy.ReasonRateLimited), code: codes.ResourceExhausted, reason: policy.ReasonRateLimited},
	}
	for name, c2 := range cases {
		t.Run(name, func(t *testing.T) { run(t, c2) })
	}
	if log := f.log.String(); !strings.Contains(log, "disk on fire") {
		t.Fatalf("internal error not logged on the holder:\n%s", log)
	}
}

func TestDenialFromMessage(t *testing.T) {
	type tc struct {
		err    error
		reason policy.Reason
		detail string
	}
	run := func(t *testing.T, c tc) {
		d, ok := DenialFromError(c.err)
		if c.reason == "" {
			if ok {
				t.Fatalf("DenialFromError(%v) = %v", c.err, d)
			}
			return
		}
		if !ok || d.Reason != c.reason || d.Detail != c.detail {
			t.Fatalf("DenialFromError(%v) = %v, %v", c.err, d, ok)
		}
	}
	for name, c := range map[string]tc{
		"ok/reason-only":   {err: status.Error(codes.FailedPrecondition, "denied: maintenance_hold"), reason: policy.ReasonMaintenanceHold},
		"ok/with-detail":   {err: status.Error(codes.PermissionDenied, "denied: operator_rule: a: b"), reason: policy.ReasonOperatorRule, detail: "a: b"},
		"fail/other-code":  {err: status.Error(codes.Internal, "denied: rate_limited")},
		"fail/no-prefix":   {err: status.Error(codes.ResourceExhausted, "grpc: received message larger than max")},
		"fail/not-grpc":    {err: errors.New("denied: rate_limited")},
		"fail/nil-error":   {err: nil},
		"ok/policy-denial": {err: fmt.Errorf("x: %w", policy.Deny(policy.ReasonRateLimited, "d")), reason: policy.ReasonRateLimited, detail: "d"},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}
