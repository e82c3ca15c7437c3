package holder

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/keyshare/keyshare/internal/version"
)

// Metrics are the holder's Prometheus metrics, on a private registry.
type Metrics struct {
	Registry    *prometheus.Registry
	releases    *prometheus.CounterVec
	members     *prometheus.GaugeVec
	generation  prometheus.Gauge
	storeShares prometheus.Gauge
	storeOK     prometheus.Gauge
	certExpiry  prometheus.Gauge
	hold        prometheus.Gauge
}

// NewMetrics registers the holder's metrics and the Go runtime's.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyshare_holder_releases_total",
			Help: "Release requests by decision (allow, deny, error) and denial reason.",
		}, []string{"decision", "reason"}),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keyshare_holder_members",
			Help: "Gossip members this holder sees, by state.",
		}, []string{"state"}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyshare_holder_generation",
			Help: "Committed share generation (0 if none).",
		}),
		storeShares: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyshare_holder_store_shares",
			Help: "Shares held in the committed generation.",
		}),
		storeOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyshare_holder_store_ok",
			Help: "1 if the sealed store opened and matched its manifest at the last check.",
		}),
		certExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyshare_holder_cert_expiry_timestamp_seconds",
			Help: "NotAfter of the holder's TLS certificate, as a Unix time.",
		}),
		hold: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyshare_holder_hold",
			Help: "1 while the holder is on maintenance hold.",
		}),
	}
	r.MustRegister(m.releases, m.members, m.generation, m.storeShares, m.storeOK, m.certExpiry, m.hold,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), version.Collector())
	return m
}
