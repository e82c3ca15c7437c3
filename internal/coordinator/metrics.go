package coordinator

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the coordinator's Prometheus metrics.
type Metrics struct {
	sealed          *prometheus.GaugeVec
	reachable       *prometheus.GaugeVec
	polls           *prometheus.CounterVec
	mode            *prometheus.GaugeVec
	losses          *prometheus.CounterVec
	attempts        *prometheus.CounterVec
	submitted       *prometheus.CounterVec
	resets          *prometheus.CounterVec
	badShares       *prometheus.CounterVec
	duration        prometheus.Histogram
	holdersAlive    prometheus.Gauge
	sharesReachable prometheus.Gauge
	threshold       prometheus.Gauge
}

// NewMetrics makes the metrics; Register adds them to a registry.
func NewMetrics() *Metrics {
	return &Metrics{
		sealed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keyshare_unsealer_node_sealed", Help: "1 while the Vault node reports sealed.",
		}, []string{"node"}),
		reachable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keyshare_unsealer_node_reachable", Help: "1 while the Vault node answers seal-status.",
		}, []string{"node"}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyshare_unsealer_polls_total", Help: "Seal-status polls per node.",
		}, []string{"node"}),
		mode: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keyshare_unsealer_watch_mode",
			Help: "1 for the way the node is watched now: held (held connection, safety-net polls), poll (no connection lasts: regular polls), fast (down, sealed or just lost).",
		}, []string{"node", "mode"}),
		losses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyshare_unsealer_held_connection_losses_total", Help: "Ends of the connection held open to the node (restarts, idle timeouts).",
		}, []string{"node"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyshare_unsealer_attempts_total", Help: "Unseal attempts by result (unsealed, cannot, retry, error).",
		}, []string{"node", "result"}),
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyshare_unsealer_shares_submitted_total", Help: "Verified shares submitted to Vault.",
		}, []string{"node"}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyshare_unsealer_stale_resets_total", Help: "Stale foreign unseal progress reset.",
		}, []string{"node"}),
		badShares: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyshare_unsealer_bad_shares_total", Help: "Shares that failed the manifest, by holder. Never submitted.",
		}, []string{"holder"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keyshare_unsealer_unseal_duration_seconds",
			Help:    "From the poll that saw a node sealed to its confirmed unseal.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		holdersAlive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyshare_unsealer_holders_alive", Help: "Holders that answered with the committed generation at the last attempt.",
		}),
		sharesReachable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyshare_unsealer_shares_reachable", Help: "Verified shares reachable at the last attempt.",
		}),
		threshold: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyshare_unsealer_threshold", Help: "Threshold of the agreed manifest.",
		}),
	}
}

// Register adds the metrics to r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.sealed, m.reachable, m.polls, m.mode, m.losses, m.attempts, m.submitted, m.resets,
		m.badShares, m.duration, m.holdersAlive, m.sharesReachable, m.threshold} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
