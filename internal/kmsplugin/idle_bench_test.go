package kmsplugin

import (
	"context"
	"slices"
	"testing"
	"time"

	kmsservice "k8s.io/kms/pkg/service"
)

// idleWait is about what one transit call to Vault takes on the dev
// machine: long enough for both processes' threads to fall asleep.
const idleWait = 700 * time.Microsecond

// sleepService waits idleWait in Encrypt, as the plugin waits for Vault.
type sleepService struct{ echoService }

func (sleepService) Encrypt(_ context.Context, _ string, data []byte) (*kmsservice.EncryptResponse, error) {
	time.Sleep(idleWait)
	return &kmsservice.EncryptResponse{Ciphertext: data, KeyID: "k"}, nil
}

// BenchmarkSocketIdle is BenchmarkSocketOnly with a wait inside the call:
// it measures the KMS v2 hop (the apiserver's client, the unix socket,
// gRPC) when every thread on both ends has gone to sleep while the call
// waited, as they do while Vault answers. Each socket call is paired with
// the same wait made directly; the metric is the difference of the
// medians. On a quiet VM a sleeping thread's wake-up costs far more than on
// a busy one, which is why the plugin's ratio to its floor is worse on a
// quiet machine (BENCHMARKS.md, "KMS plugin").
func BenchmarkSocketIdle(b *testing.B) {
	c := serveOnSocket(b, sleepService{})
	seed := make([]byte, 32)
	var hop, direct []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := c.Encrypt(context.Background(), "u", seed); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		time.Sleep(idleWait)
		hop, direct = append(hop, t1.Sub(t0)), append(direct, time.Since(t1))
	}
	slices.Sort(hop)
	slices.Sort(direct)
	b.ReportMetric(float64(hop[len(hop)/2].Microseconds()), "socket-p50-us")
	b.ReportMetric(float64(direct[len(direct)/2].Microseconds()), "direct-p50-us")
	b.ReportMetric(float64((hop[len(hop)/2] - direct[len(direct)/2]).Microseconds()), "hop-p50-us")
}
