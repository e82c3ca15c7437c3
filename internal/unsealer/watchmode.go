package unsealer

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// watchModeMetric is the coordinator's gauge of how each node is watched
// (internal/coordinator: held, poll or fast).
const watchModeMetric = "keyshare_unsealer_watch_mode"

// WatchModes asks the running `unsealer run` at metricsAddr (its
// metrics_listen) how it watches each Vault node: node name to mode. The
// one-shot status command has no other way to know, since the modes live
// in the daemon.
func WatchModes(ctx context.Context, metricsAddr string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen %q: %w", metricsAddr, err)
	}
	cl := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the running unsealer's metrics at %s: %w", metricsAddr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the running unsealer's metrics at %s answered %s", metricsAddr, resp.Status)
	}
	return parseWatchModes(bufio.NewScanner(resp.Body))
}

// parseWatchModes reads Prometheus text lines such as
// keyshare_unsealer_watch_mode{mode="held",node="vault-1"} 1.
func parseWatchModes(sc *bufio.Scanner) (map[string]string, error) {
	out := map[string]string{}
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), watchModeMetric+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok || strings.TrimSpace(value) != "1" {
			continue
		}
		var node, mode string
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, `"`)
			switch k {
			case "node":
				node = v
			case "mode":
				mode = v
			}
		}
		if node != "" && mode != "" {
			out[node] = mode
		}
	}
	return out, sc.Err()
}

// SetWatchModes fills each node's WatchMode from modes (WatchModes).
func (r *Report) SetWatchModes(modes map[string]string) {
	for i := range r.Nodes {
		r.Nodes[i].WatchMode = modes[r.Nodes[i].Name]
	}
}
