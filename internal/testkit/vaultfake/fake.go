// Package vaultfake is an in-process stand-in for a Vault server's seal
// endpoints, for unit tests of the holder and the coordinator. It models
// what matters for unsealing: initialized, sealed, threshold t of n,
// progress, the nonce of an unseal attempt, duplicate shares (ignored, as
// Vault does), and the reset of all collected parts when the threshold is
// reached with a wrong share. It counts such wasted attempts, so tests can
// assert that a coordinator never wastes one.
//
// It serves sys/seal-status, sys/unseal and sys/health over TLS with a
// certificate the test supplies, and can be stopped and restarted on the
// same address to model a node that goes down and comes back sealed.
// The e2e suite uses the real Vault server instead.
package vaultfake

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/hashicorp/vault/shamir"
)

// Vault is one fake Vault node.
type Vault struct {
	mu          sync.Mutex
	addr        string
	tlsConfig   *tls.Config
	srv         *http.Server
	key         []byte
	t, n        int
	initialized bool
	sealed      bool
	standby     bool // see SetStandby
	apiCalls    int  // see APICalls
	parts       [][]byte
	nonce       string
	rekey       *rekeyState // in memory only, as in Vault: lost on restart
	root        string
	life        LifecycleStats
	transit     *transitState // transit.go

	stats Stats
	idle  map[net.Conn]bool
}

// Stats counts what happened to a fake node.
type Stats struct {
	// Submitted counts unseal calls that carried a key.
	Submitted int
	// Duplicates counts submitted shares that were already collected.
	Duplicates int
	// Wasted counts attempts that reached the threshold with a wrong share:
	// Vault throws all collected parts away then. Keep it 0.
	Wasted int
	// Unseals counts transitions from sealed to unsealed.
	Unseals int
	// Resets counts explicit resets of unseal progress.
	Resets int
}

// New makes an initialized, sealed fake with a fresh key split into n shares
// with threshold t, and returns the shares (Vault's byte layout).
func New(addr string, tlsConfig *tls.Config, n, t int) (*Vault, [][]byte, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	shares, err := shamir.Split(key, n, t)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to split fake key: %w", err)
	}
	v := &Vault{addr: addr, tlsConfig: tlsConfig, key: key, t: t, n: n, initialized: true, sealed: true}
	return v, shares, nil
}

// Start serves on the configured address (again, after Stop). A restarted
// node comes back sealed with no progress, as Vault does.
func (v *Vault) Start() error {
	ln, err := net.Listen("tcp", v.addr)
	if err != nil {
		return fmt.Errorf("fake vault %s: %w", v.addr, err)
	}
	v.mu.Lock()
	v.addr = ln.Addr().String()
	v.sealed = true
	v.parts, v.nonce = nil, ""
	v.rekey = nil
	mux := http.NewServeMux()
	v.lifecycleRoutes(mux)
	v.transitRoutes(mux)
	mux.HandleFunc("GET /v1/sys/seal-status", v.handleStatus)
	mux.HandleFunc("PUT /v1/sys/unseal", v.handleUnseal)
	mux.HandleFunc("POST /v1/sys/unseal", v.handleUnseal)
	mux.HandleFunc("GET /v1/sys/health", v.handleHealth)
	v.srv = &http.Server{Handler: mux, TLSConfig: v.tlsConfig, ConnState: v.trackConn}
	srv := v.srv
	v.mu.Unlock()
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return nil
}

// trackConn counts connections that are open and idle between requests.
func (v *Vault) trackConn(c net.Conn, st http.ConnState) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.idle == nil {
		v.idle = map[net.Conn]bool{}
	}
	switch st {
	case http.StateIdle:
		v.idle[c] = true
	default:
		delete(v.idle, c)
	}
}

// IdleConns is how many client connections are open and idle right now.
func (v *Vault) IdleConns() int { v.mu.Lock(); defer v.mu.Unlock(); return len(v.idle) }

// Stop closes the listener and every connection: the node is unreachable.
func (v *Vault) Stop() {
	v.mu.Lock()
	srv := v.srv
	v.srv = nil
	v.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Addr returns host:port; URL returns https://host:port.
func (v *Vault) Addr() string { v.mu.Lock(); defer v.mu.Unlock(); return v.addr }

// URL returns the node's API address.
func (v *Vault) URL() string { return "https://" + v.Addr() }

// Seal seals the node, as `vault operator seal` would.
func (v *Vault) Seal() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.sealed, v.parts, v.nonce = true, nil, ""
}

// SetInitialized marks the node initialized or not.
func (v *Vault) SetInitialized(b bool) { v.mu.Lock(); v.initialized = b; v.mu.Unlock() }

// Sealed reports whether the node is sealed.
func (v *Vault) Sealed() bool { v.mu.Lock(); defer v.mu.Unlock(); return v.sealed }

// Stats returns the counters so far.
func (v *Vault) Stats() Stats { v.mu.Lock(); defer v.mu.Unlock(); return v.stats }

// Progress returns the collected share count and the attempt's nonce.
func (v *Vault) Progress() (int, string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.parts), v.nonce
}

// status is the seal-status JSON body, under v.mu.
func (v *Vault) status() map[string]any {
	return map[string]any{
		"type": "shamir", "initialized": v.initialized, "sealed": v.sealed,
		"t": v.t, "n": v.n, "progress": len(v.parts), "nonce": v.nonce,
		"version": "1.21.0-fake", "storage_type": "raft",
	}
}

func (v *Vault) handleStatus(w http.ResponseWriter, _ *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	writeJSON(w, http.StatusOK, v.status())
}

func (v *Vault) handleHealth(w http.ResponseWriter, _ *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	code := http.StatusOK
	switch {
	case !v.initialized:
		code = 501
	case v.sealed:
		code = 503
	case v.standby:
		code = 429
	}
	writeJSON(w, code, map[string]any{"initialized": v.initialized, "sealed": v.sealed, "standby": v.standby && !v.sealed})
}

// SetStandby makes the node an HA standby (not a performance standby), as Vault's
// other raft nodes are: while unsealed, sys/health answers 429 instead of
// 200 (vaultcontract.Roles asserts both against the real Vault). Its other
// answers do not change: a real standby forwards them to the active node.
func (v *Vault) SetStandby(standby bool) { v.mu.Lock(); v.standby = standby; v.mu.Unlock() }

func (v *Vault) handleUnseal(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key   string `json:"key"`
		Reset bool   `json:"reset"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.initialized {
		writeErr(w, http.StatusBadRequest, "Vault is not initialized")
		return
	}
	if req.Reset {
		v.stats.Resets++
		v.parts, v.nonce = nil, ""
		writeJSON(w, http.StatusOK, v.status())
		return
	}
	if !v.sealed {
		writeJSON(w, http.StatusOK, v.status())
		return
	}
	part, err := decodeKey(req.Key)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "'key' must be a valid hex or base64 string")
		return
	}
	v.stats.Submitted++
	for _, p := range v.parts {
		if bytes.Equal(p, part) {
			v.stats.Duplicates++
			writeJSON(w, http.StatusOK, v.status())
			return
		}
	}
	if len(v.parts) == 0 {
		v.nonce = newNonce()
	}
	v.parts = append(v.parts, part)
	if len(v.parts) < v.t {
		writeJSON(w, http.StatusOK, v.status())
		return
	}
	got, err := shamir.Combine(v.parts)
	v.parts, v.nonce = nil, ""
	if err != nil || !bytes.Equal(got, v.key) {
		v.stats.Wasted++
		writeErr(w, http.StatusBadRequest, "Error unsealing: cipher: message authentication failed")
		return
	}
	v.sealed = false
	v.stats.Unseals++
	writeJSON(w, http.StatusOK, v.status())
}

func decodeKey(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("bad key")
	}
	return b, nil
}

func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// decodeBody reads a JSON request body of at most 64 KiB into v, answering
// 400 as Vault does when it cannot.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, "failed to parse JSON input")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string][]string{"errors": {msg}})
}
