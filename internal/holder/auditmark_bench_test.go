package holder

import (
	"log/slog"
	"testing"

	"github.com/keyshare/keyshare/internal/audit"
)

// BenchmarkAuditAppend is one fsynced audit append as a release makes it,
// with the sealed store's high-water mark (the daemon's OpenAudit) and
// without it (audit.Open): the mark is written behind the head file, off
// the append path, so the two should cost the same per append.
func BenchmarkAuditAppend(b *testing.B) {
	for _, marked := range []bool{false, true} {
		name := "unmarked"
		if marked {
			name = "marked"
		}
		b.Run(name, func(b *testing.B) {
			c := auditedConfig(b)
			store, key, err := OpenStore(c)
			if err != nil {
				b.Fatal(err)
			}
			defer key.Destroy()
			var l *audit.Log
			if marked {
				l, err = OpenAudit(c, key, store, slog.New(slog.DiscardHandler))
			} else {
				ck, kerr := audit.KeyFromSeal(key)
				if kerr != nil {
					b.Fatal(kerr)
				}
				l, err = audit.Open(c.Audit.File, ck)
			}
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := l.Append(audit.Entry{Event: audit.EventRelease, Peer: "spiffe://ks.test/unsealer/u1", Target: "vault-1", Decision: "allow"}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
