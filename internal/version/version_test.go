package version

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestResolve(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	type tc struct {
		version, commit string
		bi              *debug.BuildInfo
		want            Info
	}
	run := func(t *testing.T, c tc) {
		if got := resolve(c.version, c.commit, c.bi); got != c.want {
			t.Fatalf("resolve = %+v; want %+v", got, c.want)
		}
	}
	for name, c := range map[string]tc{
		"ok/ldflags-win-over-build-info": {version: "v1.2.3", commit: "abc", bi: vcs("def", "false"),
			want: Info{Version: "v1.2.3", Commit: "abc", GoVersion: "go1.99.1"}},
		"ok/vcs-fallback": {bi: vcs("0123456789abcdef", "false"),
			want: Info{Version: DevVersion, Commit: "0123456789abcdef", GoVersion: "go1.99.1"}},
		"ok/vcs-dirty": {bi: vcs("0123", "true"),
			want: Info{Version: DevVersion, Commit: "0123-dirty", GoVersion: "go1.99.1"}},
		"ok/go-install-module-version": {bi: &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v0.4.0"}},
			want: Info{Version: "v0.4.0", Commit: Unknown, GoVersion: "go1.99.1"}},
		"ok/only-commit-set": {commit: "feed", bi: vcs("def", "true"),
			want: Info{Version: DevVersion, Commit: "feed", GoVersion: "go1.99.1"}},
		"ok/no-build-info": {want: Info{Version: DevVersion, Commit: Unknown, GoVersion: runtime.Version()}},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}

func TestString(t *testing.T) {
	got := Info{Version: "v1.2.3", Commit: "abc", GoVersion: "go1.26.8"}.String("holder")
	if want := "holder v1.2.3 (commit abc, go1.26.8)"; got != want {
		t.Fatalf("String = %q; want %q", got, want)
	}
}

func TestBuildInfoGauge(t *testing.T) {
	r := prometheus.NewRegistry()
	r.MustRegister(BuildInfoGauge(Info{Version: "v1.2.3", Commit: "abc", GoVersion: "go1.26.8"}))
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "keyshare_build_info" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v; want one keyshare_build_info series", mfs)
	}
	m := mfs[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	want := map[string]string{"version": "v1.2.3", "commit": "abc", "goversion": "go1.26.8"}
	if len(labels) != len(want) {
		t.Fatalf("labels %v; want %v", labels, want)
	}
	for k, v := range want {
		if labels[k] != v {
			t.Fatalf("labels %v; want %v", labels, want)
		}
	}
	if m.GetGauge().GetValue() != 1 {
		t.Fatalf("value %v; want 1", m.GetGauge().GetValue())
	}
}

func TestGetNeverEmpty(t *testing.T) {
	i := Get()
	if i.Version == "" || i.Commit == "" || i.GoVersion == "" {
		t.Fatalf("Get() = %+v; want every field set", i)
	}
}
