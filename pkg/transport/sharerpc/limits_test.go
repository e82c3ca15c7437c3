package sharerpc

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/pkg/transport/sharerpc/sharepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestOversizedMessageRejected(t *testing.T) {
	f := newFixture(t)
	big := StageRequest{Generation: 1, Manifest: testManifest(1),
		Shares: []Share{{Index: 1, Value: bytes.Repeat([]byte{7}, 100<<10)}}}

	// A client allowed to send more than the holder accepts.
	loose := f.dial(t, f.unsealer.ClientConfig(expectHolder()), ClientOptions{MaxMessageBytes: 1 << 20})
	err := loose.Stage(context.Background(), big)
	if status.Code(errorsUnwrapStatus(err)) != codes.ResourceExhausted {
		t.Fatalf("Stage of 100 KiB: %v; want ResourceExhausted from the holder", err)
	}
	if strings.Contains(err.Error(), "\x07\x07\x07") {
		t.Fatal("error carries message bytes")
	}
	// The default client refuses to send it at all.
	if err := f.unsealerClient(t).Stage(context.Background(), big); status.Code(errorsUnwrapStatus(err)) != codes.ResourceExhausted {
		t.Fatalf("Stage of 100 KiB with default limits: %v; want ResourceExhausted", err)
	}
	if n := f.h.calls.Load(); n != 0 {
		t.Fatalf("handler called %d times for oversized messages", n)
	}
	// The connection is still usable for normal calls.
	if _, err := loose.Release(context.Background(), "vault-1", 1); err != nil {
		t.Fatalf("Release after an oversized message: %v", err)
	}
}

func TestInvalidInputNeverReachesHandler(t *testing.T) {
	f := newFixture(t)
	c := f.unsealerClient(t)
	man := testManifest(2)
	dupDigest := testManifest(2)
	dupDigest.Digests[1].Index = 1
	type tc struct {
		call func() error
		want string
	}
	run := func(t *testing.T, c tc) {
		err := c.call()
		if status.Code(errorsUnwrapStatus(err)) != codes.InvalidArgument || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("got %v; want InvalidArgument mentioning %q", err, c.want)
		}
	}
	ctx := context.Background()
	stage := func(r StageRequest) func() error { return func() error { return c.Stage(ctx, r) } }
	share := func(i uint8, n int) Share { return Share{Index: i, Value: bytes.Repeat([]byte{1}, n)} }
	for name, c := range map[string]tc{
		"fail/empty-vault-node": {call: func() error { _, err := c.Release(ctx, "", 1); return err }, want: "vault_node is empty"},
		"fail/control-char":     {call: func() error { _, err := c.Release(ctx, "v\n1", 1); return err }, want: "control character"},
		"fail/long-vault-node":  {call: func() error { _, err := c.Release(ctx, strings.Repeat("v", 300), 1); return err }, want: "more than"},
		"fail/no-shares":        {call: stage(StageRequest{Generation: 2, Manifest: man}), want: "no shares"},
		"fail/index-zero":       {call: stage(StageRequest{Generation: 2, Manifest: man, Shares: []Share{share(0, 33)}}), want: "index 0"},
		"fail/dup-share":        {call: stage(StageRequest{Generation: 2, Manifest: man, Shares: []Share{share(1, 33), share(1, 33)}}), want: "twice"},
		"fail/empty-share":      {call: stage(StageRequest{Generation: 2, Manifest: man, Shares: []Share{share(1, 0)}}), want: "0 bytes"},
		"fail/huge-share":       {call: stage(StageRequest{Generation: 2, Manifest: man, Shares: []Share{share(1, MaxShareBytes+1)}}), want: "bytes, want 1 to"},
		"fail/unlisted-share":   {call: stage(StageRequest{Generation: 2, Manifest: man, Shares: []Share{share(9, 33)}}), want: "not in the manifest"},
		"fail/generation":       {call: stage(StageRequest{Generation: 3, Manifest: man, Shares: []Share{share(1, 33)}}), want: "generation 2, request for 3"},
		"fail/dup-digest":       {call: stage(StageRequest{Generation: 2, Manifest: dupDigest, Shares: []Share{share(1, 33)}}), want: "digest index 1 appears twice"},
		"fail/threshold": {call: stage(StageRequest{Generation: 2, Manifest: Manifest{Generation: 2, Threshold: 6, Total: 5, Digests: man.Digests},
			Shares: []Share{share(1, 33)}}), want: "threshold is 6"},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
	if n := f.h.calls.Load(); n != 0 {
		t.Fatalf("handler called %d times for invalid input", n)
	}
	// A manifest without its message is refused too (generated stub).
	if _, err := c.rpc.Stage(ctx, &sharepb.StageRequest{Generation: 1}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Stage without manifest: %v", err)
	}
}

func TestServerBoundsCalls(t *testing.T) {
	f := newFixture(t, func(o *ServerOptions) { o.CallTimeout = 200 * time.Millisecond })
	c := f.unsealerClient(t)
	f.h.setErr(errBlock)
	start := time.Now()
	_, err := c.Release(context.Background(), "vault-1", 1)
	if status.Code(errorsUnwrapStatus(err)) != codes.DeadlineExceeded {
		t.Fatalf("Release on a stuck handler: %v; want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > callTimeout {
		t.Fatalf("server-side deadline took %s", d)
	}

	f.h.setErr(errPanic)
	_, err = c.Release(context.Background(), "vault-1", 1)
	if status.Code(errorsUnwrapStatus(err)) != codes.Internal {
		t.Fatalf("Release on a panicking handler: %v; want Internal", err)
	}
	if log := f.log.String(); !strings.Contains(log, "panicked") || strings.Contains(log, "a1a1a1") {
		t.Fatalf("panic not logged, or logged with its value:\n%s", log)
	}
	f.h.setErr(nil)
	if _, err := c.Release(context.Background(), "vault-1", 1); err != nil {
		t.Fatalf("Release after a panic: %v", err)
	}
}

func TestNewServerRefusesBadOptions(t *testing.T) {
	f := newFixture(t)
	type tc struct {
		opts ServerOptions
		want string
	}
	run := func(t *testing.T, c tc) {
		if _, err := NewServer(c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("NewServer: %v; want %q", err, c.want)
		}
	}
	noClientAuth := f.holder.ServerConfig(expectHolder())
	noClientAuth.ClientAuth = 0
	for name, c := range map[string]tc{
		"fail/no-tls":         {opts: ServerOptions{Handler: f.h}, want: "TLS config is not set"},
		"fail/no-client-auth": {opts: ServerOptions{TLS: noClientAuth, Handler: f.h}, want: "client certificates"},
		"fail/no-handler":     {opts: ServerOptions{TLS: f.holder.ServerConfig(expectHolder())}, want: "handler"},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}
