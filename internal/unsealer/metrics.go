package unsealer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/keyshare/keyshare/internal/coordinator"
	"github.com/keyshare/keyshare/internal/metricsrv"
	"github.com/keyshare/keyshare/internal/version"
)

// Registry is what `unsealer run` serves on metrics_listen: the
// coordinator's metrics m, the Go runtime's and the process's, the build
// info, and the NotAfter of tls.cert_file. configs/monitoring_test.go reads
// it to check that the alerts and the dashboard use only these names.
func Registry(c Config, m *coordinator.Metrics) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := m.Register(reg); err != nil {
		return nil, err
	}
	if err := reg.Register(metricsrv.CertExpiry("keyshare_unsealer_cert_expiry_timestamp_seconds", c.TLS.CertFile)); err != nil {
		return nil, err
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), version.Collector())
	return reg, nil
}
