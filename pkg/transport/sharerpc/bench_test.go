package sharerpc

import (
	"context"
	"testing"
)

// BenchmarkRelease measures a Release round trip over mutual TLS on
// loopback: on an open connection, and with a new connection (TCP, full TLS
// 1.3 handshake with client certificate, HTTP/2 setup) each time.
func BenchmarkRelease(b *testing.B) {
	ctx := context.Background()
	b.Run("open-connection", func(b *testing.B) {
		f := newFixture(b)
		c := f.unsealerClient(b)
		if _, err := c.Release(ctx, "vault-1", 1); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Release(ctx, "vault-1", 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fresh-handshake", func(b *testing.B) {
		f := newFixture(b)
		cfg := f.unsealer.ClientConfig(expectHolder())
		b.ReportAllocs()
		for b.Loop() {
			c, err := Dial(f.addr, cfg, f.id("holder", "h1"), ClientOptions{CallTimeout: callTimeout})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Release(ctx, "vault-1", 1); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
}
