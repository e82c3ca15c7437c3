package topology

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/internal/holder"
	"github.com/keyshare/keyshare/pkg/shares"
)

// Holder is one holder host: its addresses, files and process.
type Holder struct {
	Name   string // a, b or c
	ID     string // spiffe://keyshare.test/holder/<name>
	IP     string
	Shares int // how many shares init deals it

	Listen      string // share service host:port
	GossipAddr  string
	MetricsAddr string

	Dir         string
	ConfigPath  string
	StoreDir    string
	SealKeyPath string
	AuditPath   string
	certPath    string
	keyPath     string

	// Process runs `holder run -c ConfigPath`.
	Process *harness.Process

	t *Topology
}

func (t *Topology) newHolder(s HolderSpec) (*Holder, error) {
	h := &Holder{Name: s.Name, ID: "spiffe://" + TrustDomain + "/holder/" + s.Name, IP: s.IP, Shares: s.Shares,
		Dir: t.path("holder-" + s.Name), t: t}
	var err error
	// Ports the kernel picks when the holder first binds them, read back
	// from its log (bound): never a port picked free and bound later.
	h.Listen, h.GossipAddr, h.MetricsAddr = anyAddr(s.IP), anyAddr(s.IP), anyAddr(s.IP)
	h.ConfigPath = filepath.Join(h.Dir, "holder.yaml")
	h.StoreDir = filepath.Join(h.Dir, "store")
	h.SealKeyPath = filepath.Join(h.Dir, "seal.key")
	h.AuditPath = filepath.Join(h.Dir, "audit.log")
	if err := mkdirs(h.Dir); err != nil {
		return nil, err
	}
	if h.certPath, h.keyPath, err = t.issue("holder", s.Name, s.IP); err != nil {
		return nil, err
	}
	h.Process = &harness.Process{Name: "holder-" + s.Name, Path: t.Bins.Holder, Args: []string{"run", "-c", h.ConfigPath},
		LogPath: filepath.Join(t.LogDir, "holder-"+s.Name+".log")}
	return h, nil
}

// String names the holder in messages.
func (h *Holder) String() string { return "holder " + h.Name + " (" + h.Listen + ")" }

// WaitServing waits until the holder accepts connections on its share
// service (it listens only once its store opened), or its process exits.
func (h *Holder) WaitServing(ctx context.Context) error {
	return harness.PollProcess(ctx, h.Process, harness.DefaultPollInterval, h.String()+" to serve", func() (bool, error) {
		d := net.Dialer{Timeout: 200 * time.Millisecond}
		c, err := d.DialContext(ctx, "tcp", h.Listen)
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	})
}

// Status runs `holder status --json`.
func (h *Holder) Status(ctx context.Context) (holder.StatusReport, error) {
	var r holder.StatusReport
	res, err := h.t.Run(ctx, CLI{AllowFail: true}, h.t.Bins.Holder, "status", "--json", "-c", h.ConfigPath)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
		return r, fmt.Errorf("holder %s: failed to parse 'holder status --json' (exit %d): %w", h.Name, res.Code, err)
	}
	return r, nil
}

// SealedPath is the store file of generation gen.
func (h *Holder) SealedPath(gen uint64) string {
	return filepath.Join(h.StoreDir, fmt.Sprintf("gen-%d.sealed", gen))
}

// Export runs the break-glass paper backup, `holder export
// --i-understand-this-prints-secrets`, and returns the generation and
// shares it printed. Its stdout is never saved.
func (h *Holder) Export(ctx context.Context) (uint64, []shares.Share, error) {
	res, err := h.t.Run(ctx, CLI{SecretStdout: true}, h.t.Bins.Holder, "export", "--i-understand-this-prints-secrets", "-c", h.ConfigPath)
	if err != nil {
		return 0, nil, err
	}
	return parseExport(h.Name, res.Stdout)
}

// parseExport reads "# ... generation N, ..." and "index<TAB>hex" lines.
func parseExport(name, out string) (uint64, []shares.Share, error) {
	var gen uint64
	var ss []shares.Share
	sc := bufio.NewScanner(strings.NewReader(out))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		if strings.HasPrefix(text, "#") {
			if _, after, ok := strings.Cut(text, " generation "); ok {
				f := strings.FieldsFunc(after, func(r rune) bool { return r == ',' || r == ' ' })
				if len(f) > 0 {
					gen, _ = strconv.ParseUint(f[0], 10, 64)
				}
			}
			continue
		}
		idx, val, ok := strings.Cut(text, "\t")
		i, err := strconv.ParseUint(idx, 10, 8)
		if !ok || err != nil {
			return 0, nil, fmt.Errorf("holder %s: export line %d is not 'index<TAB>hex'", name, line)
		}
		b, err := hex.DecodeString(val)
		if err != nil {
			return 0, nil, fmt.Errorf("holder %s: export line %d: share is not hex", name, line)
		}
		ss = append(ss, shares.Share{Index: uint8(i), Value: b})
	}
	if gen == 0 || len(ss) == 0 {
		return 0, nil, fmt.Errorf("holder %s: export printed no generation or no shares", name)
	}
	return gen, ss, nil
}
