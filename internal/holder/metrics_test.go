package holder

import (
	"testing"

	"github.com/keyshare/keyshare/internal/version"
)

// TestMetricsCarryBuildInfo: the holder's registry exports
// keyshare_build_info with the running build's labels.
func TestMetricsCarryBuildInfo(t *testing.T) {
	mfs, err := NewMetrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := version.Get()
	for _, mf := range mfs {
		if mf.GetName() != "keyshare_build_info" {
			continue
		}
		labels := map[string]string{}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["version"] != want.Version || labels["commit"] != want.Commit || labels["goversion"] != want.GoVersion {
			t.Fatalf("keyshare_build_info labels %v; want %+v", labels, want)
		}
		return
	}
	t.Fatal("no keyshare_build_info in the holder's metrics")
}
