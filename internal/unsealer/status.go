package unsealer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/internal/version"
	"github.com/keyshare/keyshare/pkg/shares"
)

// NodeReport is one Vault node in `unsealer status`.
type NodeReport struct {
	Name        string `json:"name"`
	Address     string `json:"address"`
	Reachable   bool   `json:"reachable"`
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Progress    int    `json:"progress"`
	Threshold   int    `json:"threshold"`
	Version     string `json:"version,omitempty"`
	HARole      string `json:"ha_role,omitempty"`
	// WatchMode is how the running coordinator watches the node (held,
	// poll or fast); empty when it could not be asked.
	WatchMode string `json:"watch_mode,omitempty"`
	Error     string `json:"error,omitempty"`
}

// HolderReport is one holder in `unsealer status`.
type HolderReport struct {
	ID         string `json:"id"`
	Address    string `json:"address"`
	Alive      bool   `json:"alive"`
	Generation uint64 `json:"generation"`
	// Staged is the generation the holder has staged (0 if none): an
	// interrupted init, rekey or adoption.
	Staged uint64  `json:"staged,omitempty"`
	Shares []uint8 `json:"shares"`
	Agrees bool    `json:"agrees_with_majority"`
	Error  string  `json:"error,omitempty"`
}

// Report is the whole `unsealer status`.
type Report struct {
	// Version is the build of the unsealer that made the report.
	Version    version.Info   `json:"version"`
	Nodes      []NodeReport   `json:"nodes"`
	Holders    []HolderReport `json:"holders"`
	Generation uint64         `json:"generation"`
	Threshold  int            `json:"threshold"`
	// Confirmed is true when a majority of all holders hold the manifest
	// that Generation and Threshold come from; only then does the
	// coordinator use it.
	Confirmed       bool `json:"confirmed"`
	SharesReachable int  `json:"shares_reachable"`
	// SharesUnconfirmed are held by answering holders whose manifest no
	// majority confirms.
	SharesUnconfirmed int `json:"shares_unconfirmed,omitempty"`
	// Missing says what stands between the cluster and an unseal; empty
	// when the holders can unseal every sealed node.
	Missing string `json:"missing,omitempty"`
}

// Status asks every node and holder, in parallel, and sums it up.
func Status(ctx context.Context, nodes []*vaultnode.Node, hs *HolderSet) Report {
	r := Report{Version: version.Get()}
	r.Nodes = make([]NodeReport, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Nodes[i] = nodeReport(ctx, n)
		}()
	}
	r.Holders = make([]HolderReport, len(hs.cfgs))
	manifests := make([]shares.Manifest, len(hs.cfgs))
	for i, h := range hs.cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Holders[i], manifests[i] = hs.holderReport(ctx, h.ID, h.Address)
		}()
	}
	wg.Wait()

	// The majority manifest (unseal.Tally, the rule the coordinator uses),
	// and the shares the agreeing live holders have. Without a majority,
	// the leading manifest says what an unconfirmed generation holds.
	tally := unseal.NewTally(len(hs.cfgs))
	for i, m := range manifests {
		tally.Add(hs.cfgs[i].ID, m)
	}
	best, agreeing := tally.Leading()
	_, _, confirmed := tally.Majority()
	need := tally.Need()
	r.Confirmed = confirmed
	r.Generation, r.Threshold = best.Generation, best.Threshold
	held := map[uint8]bool{}
	for i, h := range hs.cfgs {
		if slices.Contains(agreeing, h.ID) {
			r.Holders[i].Agrees = r.Confirmed
			r.Holders[i].Shares = hs.cfgShares(h.ID, manifests[i])
			for _, x := range r.Holders[i].Shares {
				held[x] = true
			}
		}
	}
	if r.Confirmed {
		r.SharesReachable = len(held)
	} else {
		// Shares a coordinator would not use: no majority vouches for them.
		r.SharesUnconfirmed = len(held)
	}
	r.Missing = r.missing(need, len(hs.cfgs))
	return r
}

// nodeReport is one Vault node's seal status and HA role.
func nodeReport(ctx context.Context, n *vaultnode.Node) NodeReport {
	nr := NodeReport{Name: n.Name, Address: n.Addr}
	st, err := n.SealStatus(ctx)
	if err != nil {
		nr.Error = err.Error()
		return nr
	}
	nr.Reachable, nr.Initialized, nr.Sealed = true, st.Initialized, st.Sealed
	nr.Progress, nr.Threshold, nr.Version = st.Progress, st.T, st.Version
	if code, err := n.Health(ctx); err == nil {
		nr.HARole = vaultnode.HARole(code)
	}
	return nr
}

// holderReport is one holder's answer to Manifest at its configured
// address, and the manifest of its committed generation (zero if none).
func (hs *HolderSet) holderReport(ctx context.Context, id, addr string) (HolderReport, shares.Manifest) {
	hr := HolderReport{ID: id, Address: addr}
	c, err := hs.client(id, addr)
	if err != nil {
		hr.Error = err.Error()
		return hr, shares.Manifest{}
	}
	w, err := c.Manifest(ctx)
	if err != nil {
		hr.Error = err.Error()
		return hr, shares.Manifest{}
	}
	m := w.Shares()
	hr.Alive, hr.Generation = true, m.Generation
	if w.Staged != nil {
		hr.Staged = w.Staged.Generation
	}
	return hr, m
}

// cfgShares is what a holder reports holding: the metadata of the
// manifest does not say which indices are whose, so the plan decides.
func (hs *HolderSet) cfgShares(id string, m shares.Manifest) []uint8 {
	p := shares.Plan{Shares: len(m.Digests), Threshold: m.Threshold}
	for _, h := range hs.cfgs {
		p.Holders = append(p.Holders, shares.Allotment{Holder: h.ID, Count: h.Shares})
	}
	return p.Indices()[id]
}

// adoptCommand adopts an initialized Vault into empty holders
// (lifecycle.Rekey from the operators' shares).
const adoptCommand = "'unsealer rekey -c <operator config> --old-shares-file F1 --old-shares-file F2 ...' with a threshold of its current shares in the files (or --old-shares-prompt) and VAULT_TOKEN set"

// adoptAdvice is the verdict for an initialized Vault and empty holders.
const adoptAdvice = "vault is initialized and every holder is empty: adopt it (rekey it to the holders' plan with a threshold of the operators' current shares): " + adoptCommand

func (r Report) missing(need, total int) string {
	var sealedNodes, uninit []string
	for _, n := range r.Nodes {
		switch {
		case n.Reachable && !n.Initialized:
			uninit = append(uninit, n.Name)
		case n.Reachable && n.Sealed:
			sealedNodes = append(sealedNodes, n.Name)
		}
	}
	var parts []string
	if len(uninit) > 0 {
		parts = append(parts, fmt.Sprintf("%s not initialized: run 'unsealer init'", strings.Join(uninit, ", ")))
	}
	answering, holding, staged := 0, 0, uint64(0)
	for _, h := range r.Holders {
		if h.Alive {
			answering++
		}
		if h.Generation != 0 {
			holding++
		}
		staged = max(staged, h.Staged)
	}
	initialized := false
	for _, n := range r.Nodes {
		initialized = initialized || n.Reachable && n.Initialized
	}
	switch {
	case staged != 0 && holding == 0:
		parts = append(parts, fmt.Sprintf("generation %d is staged on the holders and nothing is committed (an interrupted init or adoption): run 'unsealer rekey --recover' (for an adoption, with the operators' shares: --old-shares-file F...)", staged))
	case initialized && holding == 0 && answering == total:
		parts = append(parts, adoptAdvice)
	case initialized && holding == 0:
		parts = append(parts, fmt.Sprintf("vault is initialized and the %d of %d holders that answer hold nothing: start every holder, then adopt this vault: %s", answering, total, adoptCommand))
	case r.Generation == 0 && answering >= need:
		parts = append(parts, "the holders hold no shares yet: run 'unsealer init'")
	case !r.Confirmed && r.Generation == 0:
		parts = append(parts, fmt.Sprintf("%d of %d holders answer, %d needed to agree on a manifest: start more holders, or use 'unsealer unseal' (break-glass)",
			answering, total, need))
	case !r.Confirmed:
		parts = append(parts, fmt.Sprintf("%d of %d holders answer, %d needed to agree on a manifest; they hold %d of %d shares (generation %d): start more holders, or use 'unsealer unseal' (break-glass)",
			answering, total, need, r.SharesUnconfirmed, r.Threshold, r.Generation))
	case r.SharesReachable < r.Threshold:
		parts = append(parts, fmt.Sprintf("%d of %d shares reachable: start the holders of %d more share(s), or use 'unsealer unseal' (break-glass)",
			r.SharesReachable, r.Threshold, r.Threshold-r.SharesReachable))
	}
	if len(sealedNodes) > 0 && len(parts) > 0 {
		parts = append(parts, "sealed: "+strings.Join(sealedNodes, ", "))
	}
	return strings.Join(parts, "; ")
}

// Print writes the report as two tables and a verdict.
func (r Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tINITIALIZED\tSEALED\tPROGRESS\tVERSION\tHA ROLE\tWATCHED")
	for _, n := range r.Nodes {
		watch := n.WatchMode
		if watch == "" {
			watch = "-"
		}
		if !n.Reachable {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\tunreachable\t%s\n", n.Name, n.Address, watch)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%t\t%t\t%d/%d\t%s\t%s\t%s\n", n.Name, n.Address, n.Initialized, n.Sealed, n.Progress, n.Threshold, n.Version, n.HARole, watch)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "HOLDER\tADDRESS\tALIVE\tGENERATION\tSHARES\tAGREES")
	hs := append([]HolderReport(nil), r.Holders...)
	sort.Slice(hs, func(i, j int) bool { return hs[i].ID < hs[j].ID })
	for _, h := range hs {
		if !h.Alive {
			fmt.Fprintf(tw, "%s\t%s\tno\t-\t-\t-\n", h.ID, h.Address)
			continue
		}
		gen := fmt.Sprint(h.Generation)
		if h.Staged != 0 {
			gen += fmt.Sprintf(" (staged %d)", h.Staged)
		}
		fmt.Fprintf(tw, "%s\t%s\tyes\t%s\t%v\t%t\n", h.ID, h.Address, gen, h.Shares, h.Agrees)
	}
	tw.Flush()
	switch {
	case r.Confirmed:
		fmt.Fprintf(w, "\nshares reachable: %d of threshold %d (generation %d)\n", r.SharesReachable, r.Threshold, r.Generation)
	case r.Generation == 0:
		fmt.Fprintf(w, "\nshares reachable: none (no holder answered with a generation)\n")
	default:
		fmt.Fprintf(w, "\nshares reachable: 0 of threshold %d (generation %d unconfirmed: %d share(s) held by too few holders)\n", r.Threshold, r.Generation, r.SharesUnconfirmed)
	}
	if r.Missing != "" {
		fmt.Fprintf(w, "missing: %s\n", r.Missing)
	} else {
		fmt.Fprintln(w, "ok: the live holders can unseal every node")
	}
}

// StatusFromConfig builds the identity, the Vault clients and the holder
// set from c, and reports (`unsealer status`). With metrics_listen set, it
// also asks the running coordinator how it watches each node.
func StatusFromConfig(ctx context.Context, c Config, log *slog.Logger) (Report, error) {
	src, err := Identity(c, log)
	if err != nil {
		return Report{}, err
	}
	nodes, err := VaultNodes(c)
	if err != nil {
		return Report{}, err
	}
	hs := NewHolderSet(src, c, nil)
	defer hs.Close()
	r := Status(ctx, nodes, hs)
	if c.MetricsListen != "" {
		// How the running coordinator watches each node, if one runs with
		// this config; "-" otherwise.
		if modes, err := WatchModes(ctx, c.MetricsListen); err == nil {
			r.SetWatchModes(modes)
		}
	}
	return r, nil
}
