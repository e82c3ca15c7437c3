//go:build e2e

package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
)

// TestCoordinatorMetricsScraped scrapes the real `unsealer run` process:
// its certificate's NotAfter is exported for the certificate alert
// (configs/prometheus), and the coordinator series the alerts and the
// dashboard read without labels are there from the start. Names and labels
// of the rest are checked against the registries in configs/monitoring_test.go.
func TestCoordinatorMetricsScraped(t *testing.T) {
	topo := newFaultTopology(t, requireBinaries(t), "info")
	if err := topo.StartCoordinator(); err != nil {
		t.Fatal(err)
	}
	ctx := scenarioCtx(t, 2*time.Minute)

	certFile, _ := topo.CoordinatorCert()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	want := float64(cert.NotAfter.Unix())

	var text string
	err = harness.PollEvery(ctx, 100*time.Millisecond, "the coordinator's metrics at "+topo.CoordinatorMetrics+" to show the certificate expiry", func() (bool, error) {
		var err error
		text, err = topology.Metrics(ctx, topo.CoordinatorMetrics)
		return err == nil && strings.Contains(text, "keyshare_unsealer_cert_expiry_timestamp_seconds "), err
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if got := topology.MetricValue(text, "keyshare_unsealer_cert_expiry_timestamp_seconds"); got != want {
		t.Errorf("keyshare_unsealer_cert_expiry_timestamp_seconds = %v, want the NotAfter of %s, %v", got, certFile, want)
	}
	for _, name := range []string{"keyshare_unsealer_shares_reachable", "keyshare_unsealer_threshold",
		"keyshare_unsealer_holders_alive", "keyshare_unsealer_unseal_duration_seconds_count", "keyshare_build_info{"} {
		if !strings.Contains(text, "\n"+name) {
			t.Errorf("the coordinator does not export %s", name)
		}
	}
}
