package kmsplugin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyshare/keyshare/internal/version"
)

// Metrics are the plugin's Prometheus series.
type Metrics struct {
	// Requests counts Encrypt, Decrypt and Status calls by result (ok or
	// the error kind).
	Requests *prometheus.CounterVec
	// Latency is the duration of Encrypt and Decrypt, Vault included.
	Latency *prometheus.HistogramVec
	// VaultErrors counts failed Vault calls by kind (sealed, denied, ...).
	VaultErrors *prometheus.CounterVec
	// TokenTTL is the Vault token's time to live left, in seconds.
	TokenTTL prometheus.Gauge
	// KeyVersion is the transit key's latest version, as last checked.
	KeyVersion prometheus.Gauge
	// Healthy is 1 while Status answers ok.
	Healthy prometheus.Gauge
	// TokenReloads counts token files read (at start and on change).
	TokenReloads prometheus.Counter
	// Renewals counts token renewals by result.
	Renewals *prometheus.CounterVec
	// ActiveNode is 1 while calls go to the active Vault node, 0 while
	// no listed node answers as active (calls then go to any node that
	// answers, through a standby's forwarding if need be).
	ActiveNode prometheus.Gauge
}

// NewMetrics registers the series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyshare_kms_requests_total", Help: "KMS v2 calls by operation and result.",
		}, []string{"op", "result"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keyshare_kms_request_duration_seconds", Help: "KMS v2 Encrypt and Decrypt latency, Vault included.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 3},
		}, []string{"op"}),
		VaultErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyshare_kms_vault_errors_total", Help: "Failed Vault calls by kind.",
		}, []string{"kind"}),
		TokenTTL: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyshare_kms_token_ttl_seconds", Help: "Time to live left on the Vault token (0: unknown or none).",
		}),
		KeyVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyshare_kms_key_version", Help: "Latest version of the transit key, as last checked.",
		}),
		Healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyshare_kms_healthy", Help: "1 while Status answers ok.",
		}),
		TokenReloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyshare_kms_token_reloads_total", Help: "Token files read, at start and on change.",
		}),
		Renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyshare_kms_token_renewals_total", Help: "Vault token renewals by result.",
		}, []string{"result"}),
		ActiveNode: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyshare_kms_vault_active_node", Help: "1 while calls go to the active Vault node, 0 while none answers as active.",
		}),
	}
	reg.MustRegister(version.Collector(), m.Requests, m.Latency, m.VaultErrors, m.TokenTTL, m.KeyVersion, m.Healthy, m.TokenReloads, m.Renewals, m.ActiveNode)
	return m
}
