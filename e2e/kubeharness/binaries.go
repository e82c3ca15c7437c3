package kubeharness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
)

// Versions of the binaries the suite runs, built by e2e/tools/kube/build.sh.
const (
	KubeVersion = "1.34.4"
	EtcdVersion = "3.6.4"
)

// The variables build.sh prints, and that name prebuilt binaries instead.
const (
	EnvAPIServerBin = "KEYSHARE_KUBE_APISERVER_BIN"
	EnvEtcdBin      = "KEYSHARE_ETCD_BIN"
	EnvEtcdctlBin   = "KEYSHARE_ETCDCTL_BIN"
)

// DefaultBuildTimeout bounds a cold build of kube-apiserver, etcd and
// etcdctl (README.md has the measured figures).
const DefaultBuildTimeout = 40 * time.Minute

const buildScript = "e2e/tools/kube/build.sh"

// Binaries are the real Kubernetes control-plane programs.
type Binaries struct {
	APIServer, Etcd, Etcdctl string
}

// FindBinaries returns the binaries named by $KEYSHARE_KUBE_APISERVER_BIN,
// $KEYSHARE_ETCD_BIN and $KEYSHARE_ETCDCTL_BIN when all three are set, and
// otherwise runs e2e/tools/kube/build.sh, which reuses its cache or builds
// what is missing (minutes when cold; progress goes to stderr).
func FindBinaries(ctx context.Context) (Binaries, error) {
	b := Binaries{APIServer: os.Getenv(EnvAPIServerBin), Etcd: os.Getenv(EnvEtcdBin), Etcdctl: os.Getenv(EnvEtcdctlBin)}
	if b.APIServer == "" || b.Etcd == "" || b.Etcdctl == "" {
		script, err := harness.FindBuildScript(buildScript, "set $"+EnvAPIServerBin+", $"+EnvEtcdBin+" and $"+EnvEtcdctlBin)
		if err != nil {
			return Binaries{}, err
		}
		out, err := harness.RunBuildScript(ctx, script)
		if err != nil {
			return Binaries{}, fmt.Errorf("failed to build kube-apiserver and etcd with %s: %w", script, err)
		}
		if b, err = parseBuildOutput(out); err != nil {
			return Binaries{}, fmt.Errorf("%s: %w", script, err)
		}
	}
	for name, p := range map[string]string{EnvAPIServerBin: b.APIServer, EnvEtcdBin: b.Etcd, EnvEtcdctlBin: b.Etcdctl} {
		if err := harness.CheckExecutable(p); err != nil {
			return Binaries{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	return b, nil
}

// parseBuildOutput reads build.sh's NAME=path lines.
func parseBuildOutput(out []byte) (Binaries, error) {
	var b Binaries
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch k {
		case EnvAPIServerBin:
			b.APIServer = v
		case EnvEtcdBin:
			b.Etcd = v
		case EnvEtcdctlBin:
			b.Etcdctl = v
		}
	}
	if b.APIServer == "" || b.Etcd == "" || b.Etcdctl == "" {
		return Binaries{}, fmt.Errorf("printed no %s, %s and %s lines: %q", EnvAPIServerBin, EnvEtcdBin, EnvEtcdctlBin, out)
	}
	return b, nil
}

// RequireBinaries is FindBinaries for tests and benchmarks: it bounds the
// build by DefaultBuildTimeout and fails (never skips) when there is no
// binary, saying how to get one.
func RequireBinaries(tb testing.TB) Binaries {
	tb.Helper()
	return harness.RequireBuilt(tb, "kube-apiserver/etcd binaries", DefaultBuildTimeout, func(ctx context.Context) (Binaries, error) {
		b, err := FindBinaries(ctx)
		if err != nil {
			return b, fmt.Errorf("%w (build them with %s, or set $%s, $%s and $%s)",
				err, buildScript, EnvAPIServerBin, EnvEtcdBin, EnvEtcdctlBin)
		}
		return b, nil
	})
}
