package kubeharness

import (
	"context"
	"io"
	"os"
	"strings"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
)

// startAttempts bounds how often a first start picks new ports because one
// was taken between harness.FreePort and the program binding it. Neither
// etcd nor kube-apiserver can listen on port 0 and say which port it got
// (kube-apiserver's --secure-port=0 turns HTTPS off), so the harness picks
// ports ahead and retries with fresh ones, as harness.VaultCluster does.
const startAttempts = 3

// pollInterval is how often readiness is asked; attemptTimeout bounds one
// ask.
const (
	pollInterval   = 50 * time.Millisecond
	attemptTimeout = 3 * time.Second
)

// startPicking starts p after pick chose its ports and wrote its arguments,
// and waits for ready. When p exits saying a port is taken, it picks again,
// at most startAttempts times in all.
func startPicking(ctx context.Context, p *harness.Process, pick func() error, ready func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		if err := pick(); err != nil {
			return err
		}
		off := topology.LogOffset(p)
		if err := p.Start(); err != nil {
			return err
		}
		err := waitReady(ctx, p, ready)
		if err == nil {
			return nil
		}
		if attempt >= startAttempts || !portTaken(p, off) {
			return err
		}
		if kerr := p.KillIfRunning(); kerr != nil {
			return kerr
		}
	}
}

// waitReady polls ready until it returns nil, p exits, or ctx ends.
func waitReady(ctx context.Context, p *harness.Process, ready func(context.Context) error) error {
	return harness.PollProcess(ctx, p, pollInterval, p.Name+" to be ready", func() (bool, error) {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		err := ready(actx)
		return err == nil, err
	})
}

// portTaken reports whether p's log after off says a port was taken.
func portTaken(p *harness.Process, off int64) bool {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, off, 1<<20))
	if err != nil {
		return false
	}
	return strings.Contains(string(b), "address already in use")
}
