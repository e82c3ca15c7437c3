package topology

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
)

// LogEntry is one JSON line of a keyshare daemon's log.
type LogEntry map[string]any

// Get returns field k as text ("" if absent).
func (e LogEntry) Get(k string) string {
	v, ok := e[k]
	if !ok {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// LogOffset is the current size of p's log: pass it to WaitLog and
// FindLog to look only at what comes after.
func LogOffset(p *harness.Process) int64 {
	st, err := os.Stat(p.LogPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

// FindLog returns every JSON line of p's log after offset whose fields
// equal want (compared as text).
func FindLog(p *harness.Process, offset int64, want map[string]string) ([]LogEntry, error) {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return nil, fmt.Errorf("failed to open log of %s: %w", p.Name, err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, fmt.Errorf("failed to seek in log of %s: %w", p.Name, err)
	}
	var out []LogEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var e LogEntry
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		if matches(e, want) {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

func matches(e LogEntry, want map[string]string) bool {
	for k, v := range want {
		if e.Get(k) != v {
			return false
		}
	}
	return true
}

// WaitLog polls p's log after offset until a line matches want, and
// returns the first such line.
func WaitLog(ctx context.Context, p *harness.Process, offset int64, want map[string]string) (LogEntry, error) {
	var found LogEntry
	err := harness.Poll(ctx, fmt.Sprintf("a log line %v from %s (%s)", want, p.Name, p.LogPath), func() (bool, error) {
		es, err := FindLog(p, offset, want)
		if err != nil || len(es) == 0 {
			return false, err
		}
		found = es[0]
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

// Metrics fetches the Prometheus text exposition at addr (host:port).
func Metrics(ctx context.Context, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("failed to fetch metrics from %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("failed to read metrics from %s: %w", addr, err)
	}
	return string(b), nil
}

// MetricValue finds series (a metric name with its labels exactly as
// exposed, e.g. `keyshare_unsealer_shares_submitted_total{node="vault-1"}`)
// in a text exposition. A series not exposed yet reads as 0.
func MetricValue(text, series string) float64 {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return 0
}

// CoordinatorMetric reads one series from the coordinator's metrics.
func (t *Topology) CoordinatorMetric(ctx context.Context, series string) (float64, error) {
	text, err := Metrics(ctx, t.CoordinatorMetrics)
	if err != nil {
		return 0, err
	}
	return MetricValue(text, series), nil
}

// Status runs `unsealer status` with the coordinator's config. It exits 3
// when something stands between the cluster and an unseal; that is not an
// error here.
func (t *Topology) Status(ctx context.Context, args ...string) (Result, error) {
	return t.Run(ctx, CLI{AllowFail: true}, t.Bins.Unsealer, append([]string{"status", "-c", t.UnsealerConfig}, args...)...)
}

// Indices reads a list of share indices from field k: a JSON array of
// numbers (shares.Indices), or base64, the way encoding/json writes a bare
// []uint8 ("AQID" is 1, 2, 3).
func (e LogEntry) Indices(k string) ([]int, error) {
	var out []int
	switch v := e[k].(type) {
	case string:
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("log field %s=%q is not a base64 index list: %w", k, v, err)
		}
		for _, x := range b {
			out = append(out, int(x))
		}
	case []any:
		for _, x := range v {
			f, ok := x.(float64)
			if !ok {
				return nil, fmt.Errorf("log field %s holds %v, not an index", k, x)
			}
			out = append(out, int(f))
		}
	default:
		return nil, fmt.Errorf("log line has no index list %s", k)
	}
	return out, nil
}
