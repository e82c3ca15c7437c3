// Package version tells what build of keyshare is running: the release
// version, the VCS commit and the Go version. Release builds set the first
// two at link time:
//
//	go build -ldflags "-X github.com/keyshare/keyshare/internal/version.Version=v1.2.3 \
//	  -X github.com/keyshare/keyshare/internal/version.Commit=$(git rev-parse HEAD)" ./cmd/...
//
// Without them, Get falls back to what the Go toolchain records in the
// binary (runtime/debug.ReadBuildInfo): the module version when built with
// `go install module@version`, and vcs.revision / vcs.modified when built
// from a git checkout. The daemons print Info on --version, report it in
// `status --json`, gossip Version in their metadata, and export it as the
// keyshare_build_info gauge.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Set at link time with -ldflags -X (see the package comment). Empty means
// "not set": Get falls back to the build info.
var (
	// Version is the release version, e.g. v1.2.3.
	Version = ""
	// Commit is the full VCS revision the binary was built from.
	Commit = ""
)

// Unknown stands for a version or commit nobody recorded.
const Unknown = "unknown"

// DevVersion is the version of a build from a checkout without -ldflags.
const DevVersion = "dev"

// Info is one build's identity.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
}

// Get returns the running binary's Info.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(Version, Commit, bi)
}

// resolve prefers the link-time values, then the build info, then the
// Unknown / DevVersion placeholders. It never returns an empty field.
func resolve(version, commit string, bi *debug.BuildInfo) Info {
	i := Info{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi != nil {
		if bi.GoVersion != "" {
			i.GoVersion = bi.GoVersion
		}
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		if i.Commit == "" {
			var rev string
			var modified bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if rev != "" && modified {
				rev += "-dirty"
			}
			i.Commit = rev
		}
	}
	if i.Version == "" {
		i.Version = DevVersion
	}
	if i.Commit == "" {
		i.Commit = Unknown
	}
	return i
}

// String is the --version line: "<name> <version> (commit <c>, <go>)".
func (i Info) String(name string) string {
	return strings.TrimSpace(name + " " + i.Version + " (commit " + i.Commit + ", " + i.GoVersion + ")")
}

// BuildInfoGauge returns the keyshare_build_info gauge of i: always 1, with
// the version, commit and Go version as labels, so that a dashboard can
// join it to any other series of the same process.
func BuildInfoGauge(i Info) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "keyshare_build_info",
		Help:        "Always 1; labels name the running build (version, commit, Go version).",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": i.Commit, "goversion": i.GoVersion},
	})
	g.Set(1)
	return g
}

// Collector is BuildInfoGauge of the running binary.
func Collector() prometheus.Collector { return BuildInfoGauge(Get()) }
