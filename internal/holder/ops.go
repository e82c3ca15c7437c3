package holder

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keyshare/keyshare/internal/audit"
	"github.com/keyshare/keyshare/pkg/shares"
)

// ErrNotConfirmed is returned by Export without its confirmation flag.
var ErrNotConfirmed = errors.New("export not confirmed")

// Keygen writes a new random seal key file at path: created exclusively
// (never overwriting a key that may seal a store), mode 0600.
func Keygen(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("seal key %s already exists: it may seal a store, so it is never overwritten; pick another path", path)
		}
		return fmt.Errorf("failed to create seal key %s: %w", path, err)
	}
	k := shares.NewKeyFileBytes()
	defer shares.Zero(k)
	if _, err := f.Write(k); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("failed to write seal key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("failed to fsync seal key %s: %w", path, err)
	}
	return f.Close()
}

// StatusReport is what `holder status` prints.
type StatusReport struct {
	ID           string         `json:"id"`
	StoreDir     string         `json:"store_dir"`
	Current      uint64         `json:"current_generation"`
	Staged       uint64         `json:"staged_generation,omitempty"`
	Kept         []uint64       `json:"kept_generations,omitempty"`
	Proven       uint64         `json:"proven_generation,omitempty"`
	Indices      shares.Indices `json:"indices"`
	Threshold    int            `json:"threshold,omitempty"`
	TotalShares  int            `json:"total_shares,omitempty"`
	ManifestHash string         `json:"manifest_hash,omitempty"`
	StoreOpens   bool           `json:"store_opens"`
	StoreError   string         `json:"store_error,omitempty"`
	// Peers is the running holder's gossip view, from its metrics
	// listener; PeersError says why it is missing.
	Peers        []Peer `json:"peers"`
	PeersError   string `json:"peers_error,omitempty"`
	AuditEntries int    `json:"audit_entries"`
	AuditError   string `json:"audit_error,omitempty"`
	Policy       string `json:"policy"`
}

// Status opens the store (read only) and checks the audit chain.
func Status(c Config) StatusReport {
	r := StatusReport{ID: c.ID, StoreDir: c.Store.Dir}
	if e, err := NewEngine(c); err == nil {
		r.Policy = e.Summary()
	}
	n, err := VerifyAudit(c, "")
	r.AuditEntries = n
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		r.AuditError = err.Error()
	}
	r.Peers, err = runningPeers(c)
	if err != nil {
		r.PeersError = err.Error()
	}
	b, st, err := openCurrent(c)
	r.Current, r.Staged, r.Kept, r.Proven = st.Current, st.Staged, st.Kept, st.Proven
	if err != nil {
		r.StoreError = err.Error()
		return r
	}
	defer b.Destroy()
	r.StoreOpens = true
	r.Indices = b.Indices()
	r.Threshold, r.TotalShares = b.Manifest.Threshold, len(b.Manifest.Digests)
	h := b.Manifest.Hash()
	r.ManifestHash = fmt.Sprintf("%x", h[:8])
	return r
}

// Healthy reports whether the store opens and the audit chain holds: what
// `holder status` exits 0 for.
func (r StatusReport) Healthy() bool { return r.StoreOpens && r.AuditError == "" }

// Print writes the report as a table.
func (r StatusReport) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "holder\t%s\n", r.ID)
	fmt.Fprintf(tw, "store\t%s\n", r.StoreDir)
	fmt.Fprintf(tw, "generation\t%d (staged: %d)\n", r.Current, r.Staged)
	fmt.Fprintf(tw, "kept\t%v (proven: %d; older generations go once a newer one has unsealed vault)\n", r.Kept, r.Proven)
	if r.StoreOpens {
		fmt.Fprintf(tw, "shares\t%v of %d, threshold %d\n", r.Indices, r.TotalShares, r.Threshold)
		fmt.Fprintf(tw, "manifest\t%s\n", r.ManifestHash)
	} else {
		fmt.Fprintf(tw, "store error\t%s\n", r.StoreError)
	}
	if r.AuditError != "" {
		fmt.Fprintf(tw, "audit\tBROKEN: %s\n", r.AuditError)
	} else {
		fmt.Fprintf(tw, "audit\t%d entries, chain ok\n", r.AuditEntries)
	}
	fmt.Fprintf(tw, "policy\t%s\n", r.Policy)
	if r.PeersError != "" {
		fmt.Fprintf(tw, "peers\tunknown: %s\n", r.PeersError)
	}
	for _, p := range r.Peers {
		fmt.Fprintf(tw, "peer\t%s %s generation %d\n", p.ID, p.State, p.Generation)
	}
	tw.Flush()
}

// runningPeers asks the running holder's metrics listener for its gossip
// view.
func runningPeers(c Config) ([]Peer, error) {
	if c.MetricsListen == "" {
		return nil, errors.New("metrics_listen is off, so the running holder cannot be asked")
	}
	host, port, err := net.SplitHostPort(c.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen %q: %w", c.MetricsListen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	cl := &http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + net.JoinHostPort(host, port) + "/members")
	if err != nil {
		return nil, fmt.Errorf("holder not running? %w", err)
	}
	defer resp.Body.Close()
	var out []Peer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("bad /members answer: %w", err)
	}
	return out, nil
}

func openCurrent(c Config) (*shares.Bundle, shares.State, error) {
	store, key, err := OpenStore(c)
	if err != nil {
		return nil, shares.State{}, err
	}
	defer key.Destroy()
	st, err := store.State()
	if err != nil {
		return nil, st, err
	}
	b, err := store.LoadCurrent()
	return b, st, err
}

// Verify opens the current generation and checks every share against the
// manifest (Open does that) and the manifest's shape.
func Verify(c Config) (string, error) {
	b, _, err := openCurrent(c)
	if err != nil {
		return "", err
	}
	defer b.Destroy()
	return fmt.Sprintf("holder %s: generation %d opens, shares %v match the manifest (threshold %d of %d)",
		c.ID, b.Generation, b.Indices(), b.Manifest.Threshold, len(b.Manifest.Digests)), nil
}

// Export writes the current shares for a paper backup, one per line as
// "index<TAB>hex". It refuses without confirm.
func Export(c Config, w io.Writer, confirm bool) error {
	if !confirm {
		return fmt.Errorf("%w: exporting prints secret shares; rerun with --i-understand-this-prints-secrets", ErrNotConfirmed)
	}
	b, _, err := openCurrent(c)
	if err != nil {
		return err
	}
	defer b.Destroy()
	fmt.Fprintf(w, "# keyshare holder %s generation %d, threshold %d of %d: KEEP OFFLINE\n",
		c.ID, b.Generation, b.Manifest.Threshold, len(b.Manifest.Digests))
	for _, s := range b.Shares {
		fmt.Fprintf(w, "%d\t%s\n", s.Index, s.Hex())
	}
	return nil
}

// ErrNotConfirmedGeneration is returned by ConfirmGeneration without its
// confirmation flag.
var ErrNotConfirmedGeneration = errors.New("generation not confirmed")

// ConfirmGeneration records, on the operator's word, that generation gen
// unseals Vault: the same proof the holder records when it sees a node it
// released gen for come up unsealed. Older generations then go, except the
// last two committed. Run it with the holder stopped, or send it SIGHUP
// after.
func ConfirmGeneration(c Config, gen uint64, confirm bool) (string, error) {
	if !confirm {
		return "", fmt.Errorf("%w: this lets the holder delete generations older than %d (the last two are kept); "+
			"check first that Vault unseals with generation %d, then rerun with --vault-unseals-with-it", ErrNotConfirmedGeneration, gen, gen)
	}
	store, key, err := OpenStore(c)
	if err != nil {
		return "", err
	}
	defer key.Destroy()
	if err := store.Prove(gen); err != nil {
		return "", err
	}
	st, err := store.State()
	if err != nil {
		return "", err
	}
	msg := fmt.Sprintf("holder %s: generation %d confirmed; holds current %d, staged %d, kept %v", c.ID, gen, st.Current, st.Staged, st.Kept)
	a, err := OpenAudit(c, key, store, slog.Default())
	if err == nil {
		err = errors.Join(a.Append(audit.Entry{Event: "prove", Peer: "operator (holder confirm-generation)", Generation: gen, Decision: "ok", Reason: "operator confirmed"}), a.Close())
	}
	if err != nil {
		return msg, fmt.Errorf("%s, but the audit log %s did not record it: %w", msg, c.Audit.File, err)
	}
	return msg, nil
}

// ImportInput is what `holder import` reads: a manifest file (the JSON of
// shares.Manifest: generation, threshold and the digest of every share, as
// shares.NewManifest makes it; no keyshare command writes one) and one share
// per line, "index<TAB or space>hex-or-base64" (what `holder export` prints).
// It is a by-hand path for restoring a holder. An existing Vault is not
// imported: it is adopted with `unsealer rekey --old-shares-file ...`, which
// deals new shares and their manifest to the holders itself.
type ImportInput struct {
	Manifest shares.Manifest
	Lines    io.Reader
}

// Import stages and commits the shares read from in as the current
// generation. It checks every share against the manifest first; nothing is
// written unless all of them match.
func Import(c Config, in ImportInput) (string, error) {
	var got []shares.Share
	defer func() { shares.ZeroShares(got) }()
	sc := bufio.NewScanner(in.Lines)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		idxStr, val, ok := strings.Cut(strings.Join(strings.Fields(line), " "), " ")
		var idx int
		if _, err := fmt.Sscanf(idxStr, "%d", &idx); !ok || err != nil || idx < 1 || idx > 255 {
			return "", fmt.Errorf("line %d: want '<index> <share>', e.g. '3 a1b2…'", n)
		}
		v, err := shares.ParseShare(fmt.Sprintf("line %d", n), val)
		if err != nil {
			return "", err
		}
		s := shares.Share{Index: uint8(idx), Value: v}
		if err := in.Manifest.Verify(s); err != nil {
			shares.Zero(v)
			return "", fmt.Errorf("line %d: %w: is it a share of generation %d?", n, err, in.Manifest.Generation)
		}
		got = append(got, s)
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("failed to read shares: %w", err)
	}
	if len(got) == 0 {
		return "", errors.New("no shares read: give one '<index> <share>' per line")
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Index < got[j].Index })
	store, key, err := OpenStore(c)
	if err != nil {
		return "", err
	}
	defer key.Destroy()
	b := &shares.Bundle{HolderID: c.ID, Generation: in.Manifest.Generation, Shares: got, Manifest: in.Manifest}
	if err := store.Stage(b); err != nil {
		return "", err
	}
	if err := store.Commit(b.Generation); err != nil {
		return "", err
	}
	return fmt.Sprintf("holder %s: imported shares %v of generation %d", c.ID, b.Indices(), b.Generation), nil
}
