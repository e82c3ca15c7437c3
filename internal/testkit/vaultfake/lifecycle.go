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
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/vault/shamir"
)

// The lifecycle half of the fake: sys/init, and the rekey with
// verification as Vault runs it. A rekey lives in memory only, as in
// Vault: a restart (Stop, Start) forgets it and the old keys stay. With
// require_verification, the new keys replace the old ones only when a
// threshold of them has been given back to sys/rekey/verify.

// LifecycleStats counts init and rekey calls.
type LifecycleStats struct {
	// Inits counts successful sys/init calls.
	Inits int
	// RekeySubmitted and VerifySubmitted count keys given to
	// sys/rekey/update and sys/rekey/verify.
	RekeySubmitted, VerifySubmitted int
	// RekeyFailed counts rekey or verify attempts that reached the
	// threshold with a wrong key.
	RekeyFailed int
	// Rekeys counts completed (verified) rekeys.
	Rekeys int
	// Cancels counts DELETE sys/rekey/init.
	Cancels int
}

type rekeyState struct {
	nonce, verifyNonce string
	t, n               int
	created            time.Time
	parts              [][]byte // old keys given so far
	newKey             []byte   // set once the old keys were verified
	verifyParts        [][]byte
}

// NewUninitialized makes a fake that answers as a fresh, uninitialized
// Vault: sys/init deals its keys.
func NewUninitialized(addr string, tlsConfig *tls.Config) *Vault {
	return &Vault{addr: addr, tlsConfig: tlsConfig, sealed: true}
}

// LifecycleStats returns the init and rekey counters so far.
func (v *Vault) LifecycleStats() LifecycleStats { v.mu.Lock(); defer v.mu.Unlock(); return v.life }

// RootToken is the token sys/init returned, for tests.
func (v *Vault) RootToken() string { v.mu.Lock(); defer v.mu.Unlock(); return v.root }

// Unseal unseals the node directly, as if an operator had, for tests.
func (v *Vault) Unseal() { v.mu.Lock(); v.sealed, v.parts, v.nonce = false, nil, ""; v.mu.Unlock() }

func (v *Vault) lifecycleRoutes(mux *http.ServeMux) {
	mux.HandleFunc("PUT /v1/sys/init", v.handleInit)
	mux.HandleFunc("POST /v1/sys/init", v.handleInit)
	mux.HandleFunc("GET /v1/sys/rekey/init", v.handleRekeyStatus)
	mux.HandleFunc("PUT /v1/sys/rekey/init", v.handleRekeyInit)
	mux.HandleFunc("DELETE /v1/sys/rekey/init", v.handleRekeyCancel)
	mux.HandleFunc("PUT /v1/sys/rekey/update", v.handleRekeyUpdate)
	mux.HandleFunc("GET /v1/sys/rekey/verify", v.handleVerifyStatus)
	mux.HandleFunc("PUT /v1/sys/rekey/verify", v.handleVerify)
}

func (v *Vault) handleInit(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Shares    int    `json:"secret_shares"`
		Threshold int    `json:"secret_threshold"`
		PGP       string `json:"root_token_pgp_key"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.initialized {
		writeErr(w, http.StatusBadRequest, "Vault is already initialized")
		return
	}
	if req.Threshold < 2 || req.Shares < req.Threshold || req.Shares > 255 {
		writeErr(w, http.StatusBadRequest, "invalid seal configuration: threshold must be 2 to secret_shares")
		return
	}
	if req.PGP != "" {
		if _, err := base64.StdEncoding.DecodeString(req.PGP); err != nil {
			writeErr(w, http.StatusBadRequest, "error parsing PGP key: illegal base64 data")
			return
		}
	}
	key := randBytes(32)
	parts, err := shamir.Split(key, req.Shares, req.Threshold)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	v.key, v.t, v.n, v.initialized, v.sealed = key, req.Threshold, req.Shares, true, true
	v.root = "hvs.fake" + hex.EncodeToString(randBytes(10))
	tok := v.root
	if req.PGP != "" {
		// The fake does not speak PGP: it marks the token as encrypted.
		tok = base64.StdEncoding.EncodeToString([]byte("fake-pgp-encrypted:" + v.root))
	}
	v.life.Inits++
	writeJSON(w, http.StatusOK, map[string]any{"keys": hexAll(parts), "keys_base64": parts, "root_token": tok})
}

// RekeyNonce returns the nonce of the rekey in progress, or "".
func (v *Vault) RekeyNonce() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.rekey == nil {
		return ""
	}
	return v.rekey.nonce
}

func (v *Vault) rekeyStatus() map[string]any {
	rk := v.rekey
	if rk == nil {
		return map[string]any{"started": false, "t": 0, "n": 0, "progress": 0, "required": v.t, "nonce": ""}
	}
	return map[string]any{"started": true, "nonce": rk.nonce, "t": rk.t, "n": rk.n, "progress": len(rk.parts),
		"required": v.t, "verification_required": true, "verification_nonce": rk.verifyNonce}
}

func (v *Vault) handleRekeyStatus(w http.ResponseWriter, _ *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.usable(w) {
		return
	}
	writeJSON(w, http.StatusOK, v.rekeyStatus())
}

// usable answers as Vault does on a sealed or uninitialized node, under
// v.mu: an uninitialized Vault is sealed too, and the rekey endpoints say
// so (503) before anything else.
func (v *Vault) usable(w http.ResponseWriter) bool {
	switch {
	case v.sealed:
		writeErr(w, http.StatusServiceUnavailable, "Vault is sealed")
	case !v.initialized:
		writeErr(w, http.StatusBadRequest, "Vault is not initialized")
	default:
		return true
	}
	return false
}

func (v *Vault) handleRekeyInit(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Shares    int  `json:"secret_shares"`
		Threshold int  `json:"secret_threshold"`
		Verify    bool `json:"require_verification"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case !v.usable(w):
		return
	case v.rekey != nil:
		writeErr(w, http.StatusBadRequest, "rekey already in progress")
		return
	case !req.Verify:
		writeErr(w, http.StatusBadRequest, "this fake models only rekeys with require_verification")
		return
	case req.Threshold < 2 || req.Shares < req.Threshold || req.Shares > 255:
		writeErr(w, http.StatusBadRequest, "invalid rekey configuration")
		return
	}
	v.rekey = &rekeyState{nonce: newNonce(), t: req.Threshold, n: req.Shares, created: v.now()}
	writeJSON(w, http.StatusOK, v.rekeyStatus())
}

// RekeyCancelDeadline is how old a rekey must be before Vault cancels it
// without its nonce (vault/rekey.go, RekeyCancel's requiresNonceDeadline).
const RekeyCancelDeadline = 10 * time.Minute

// handleRekeyCancel is DELETE sys/rekey/init as Vault 1.21 answers it: the
// body must be JSON (none at all is 400 "EOF"), and a rekey in progress is
// cancelled only with its nonce, or by anyone once it is
// RekeyCancelDeadline old. With no rekey in progress any nonce succeeds.
func (v *Vault) handleRekeyCancel(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Nonce string `json:"nonce"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		msg := "failed to parse JSON input: " + err.Error()
		if errors.Is(err, io.EOF) {
			msg = "EOF"
		}
		writeErr(w, http.StatusBadRequest, msg)
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.sealed {
		writeErr(w, http.StatusServiceUnavailable, "Vault is sealed")
		return
	}
	if rk := v.rekey; rk != nil && req.Nonce != rk.nonce && v.now().Sub(rk.created) < RekeyCancelDeadline {
		writeErr(w, http.StatusBadRequest, "invalid request")
		return
	}
	if v.rekey != nil {
		v.life.Cancels++
	}
	v.rekey = nil
	w.WriteHeader(http.StatusNoContent)
}

// AgeRekey makes the rekey in progress d older, so that tests can reach
// RekeyCancelDeadline without waiting.
func (v *Vault) AgeRekey(d time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.rekey != nil {
		v.rekey.created = v.rekey.created.Add(-d)
	}
}

func (v *Vault) now() time.Time { return time.Now() }

// keyRequest decodes {"key","nonce"}; it writes the error and returns
// false when the body is bad.
func keyRequest(w http.ResponseWriter, r *http.Request) ([]byte, string, bool) {
	var req struct {
		Key   string `json:"key"`
		Nonce string `json:"nonce"`
	}
	if !decodeBody(w, r, &req) {
		return nil, "", false
	}
	k, err := decodeKey(req.Key)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "'key' must be a valid hex or base64 string")
		return nil, "", false
	}
	return k, req.Nonce, true
}

// rekeyInProgress returns the rekey in progress, or nil once it has
// answered that the node is not usable or that there is none (none is
// Vault's message for that, which differs by endpoint). v.mu is held.
func (v *Vault) rekeyInProgress(w http.ResponseWriter, none string) *rekeyState {
	if !v.usable(w) {
		return nil
	}
	if v.rekey == nil {
		writeErr(w, http.StatusBadRequest, none)
	}
	return v.rekey
}

func (v *Vault) handleRekeyUpdate(w http.ResponseWriter, r *http.Request) {
	k, nonce, ok := keyRequest(w, r)
	if !ok {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	rk := v.rekeyInProgress(w, "no barrier rekey in progress")
	switch {
	case rk == nil:
		return
	case rk.newKey != nil:
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("rekey operation already finished; verification must be performed; nonce for the verification operation is %q", rk.verifyNonce))
		return
	case nonce != rk.nonce:
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("incorrect nonce supplied; nonce for this rekey operation is %q", rk.nonce))
		return
	}
	v.life.RekeySubmitted++
	done, match := gather(w, &rk.parts, k, v.t, "generation", v.key, func() any { return v.rekeyStatus() })
	switch {
	case !done:
		return
	case !match:
		// Vault 1.21 opens its stored root key with the combined key; a
		// wrong one fails there, with a 500.
		v.life.RekeyFailed++
		writeErr(w, http.StatusInternalServerError, "failed to read root key: failed to decrypt keys from storage: cipher: message authentication failed")
		return
	}
	rk.newKey = randBytes(32)
	parts, _ := shamir.Split(rk.newKey, rk.n, rk.t)
	rk.verifyNonce = newNonce()
	writeJSON(w, http.StatusOK, map[string]any{"complete": true, "nonce": rk.nonce, "keys": hexAll(parts), "keys_base64": parts,
		"verification_required": true, "verification_nonce": rk.verifyNonce})
}

// verifyStatus is sys/rekey/verify's answer while keys are given to it.
func (rk *rekeyState) verifyStatus() map[string]any {
	return map[string]any{"started": true, "nonce": rk.verifyNonce, "t": rk.t, "n": rk.n, "progress": len(rk.verifyParts)}
}

func (v *Vault) handleVerifyStatus(w http.ResponseWriter, _ *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	rk := v.rekeyInProgress(w, "no rekey configuration found")
	switch {
	case rk == nil:
	case rk.newKey == nil:
		writeJSON(w, http.StatusOK, map[string]any{"started": false, "nonce": "", "t": rk.t, "n": rk.n, "progress": 0})
	default:
		writeJSON(w, http.StatusOK, rk.verifyStatus())
	}
}

func (v *Vault) handleVerify(w http.ResponseWriter, r *http.Request) {
	k, nonce, ok := keyRequest(w, r)
	if !ok {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	rk := v.rekeyInProgress(w, "no rekey in progress")
	switch {
	case rk == nil:
		return
	case rk.newKey == nil:
		writeErr(w, http.StatusBadRequest, "no rekey verification in progress")
		return
	case nonce != rk.verifyNonce:
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("incorrect nonce supplied; nonce for this verify operation is %q", rk.verifyNonce))
		return
	}
	v.life.VerifySubmitted++
	done, match := gather(w, &rk.verifyParts, k, rk.t, "verify", rk.newKey, func() any { return rk.verifyStatus() })
	switch {
	case !done:
		return
	case !match:
		v.life.RekeyFailed++
		rk.verifyNonce = newNonce()
		writeErr(w, http.StatusBadRequest, "rekey verification failed; incorrect key shares supplied")
		return
	}
	v.key, v.t, v.n = rk.newKey, rk.t, rk.n
	v.rekey = nil
	v.life.Rekeys++
	writeJSON(w, http.StatusOK, map[string]any{"nonce": nonce, "complete": true})
}

// gather adds k to one of the rekey's two rounds of keys (the old keys to
// update, the new ones to verify; op names the round in Vault's message).
// It answers a duplicate, or progress while fewer than t were given, and
// returns done false. With t given it empties parts and returns done, and
// match if they combine to want.
func gather(w http.ResponseWriter, parts *[][]byte, k []byte, t int, op string, want []byte, progress func() any) (done, match bool) {
	if !collect(parts, k) {
		writeErr(w, http.StatusBadRequest, "given key has already been provided during this "+op+" operation")
		return false, false
	}
	if len(*parts) < t {
		writeJSON(w, http.StatusOK, progress())
		return false, false
	}
	got, err := shamir.Combine(*parts)
	*parts = nil
	return true, err == nil && bytes.Equal(got, want)
}

// collect appends k to parts unless it is there already.
func collect(parts *[][]byte, k []byte) bool {
	for _, p := range *parts {
		if bytes.Equal(p, k) {
			return false
		}
	}
	*parts = append(*parts, k)
	return true
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func hexAll(parts [][]byte) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = hex.EncodeToString(p)
	}
	return out
}
