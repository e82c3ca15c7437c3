package vaultnode

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The operator lifecycle calls: sys/init, and the rekey with verification
// (sys/rekey/init, sys/rekey/update, sys/rekey/verify). Keys leave and
// enter through byte buffers that are zeroed after use; JSON answers that
// carry keys are decoded from keys_base64 straight into byte slices.

// InitRequest is the body of sys/init for a Shamir seal.
type InitRequest struct {
	Shares    int `json:"secret_shares"`
	Threshold int `json:"secret_threshold"`
	// RootTokenPGPKey, if set, is a base64 PGP public key: Vault returns
	// the root token encrypted to it (base64), never in the clear.
	RootTokenPGPKey string `json:"root_token_pgp_key,omitempty"`
}

// InitResult is Vault's answer to sys/init. Keys are in Vault's order
// (index i+1 is Keys[i]); the caller must zero them.
type InitResult struct {
	Keys      [][]byte `json:"keys_base64"`
	RootToken string   `json:"root_token"`
}

// RekeyStatus is sys/rekey/init (GET) and the progress part of updates.
type RekeyStatus struct {
	Started              bool   `json:"started"`
	Nonce                string `json:"nonce"`
	T                    int    `json:"t"`
	N                    int    `json:"n"`
	Progress             int    `json:"progress"`
	Required             int    `json:"required"`
	VerificationRequired bool   `json:"verification_required"`
	VerificationNonce    string `json:"verification_nonce"`
}

// RekeyUpdate is the answer to one sys/rekey/update. When Complete, Keys
// holds the new shares (Vault's order; the caller zeroes them) and
// VerificationNonce starts the verify step: until it completes, Vault keeps
// the old keys.
type RekeyUpdate struct {
	RekeyStatus
	Complete bool     `json:"complete"`
	Keys     [][]byte `json:"keys_base64"`
}

// VerifyStatus is sys/rekey/verify: the progress of the verification.
type VerifyStatus struct {
	Started  bool   `json:"started"`
	Nonce    string `json:"nonce"`
	T        int    `json:"t"`
	N        int    `json:"n"`
	Progress int    `json:"progress"`
	// Complete is set once Vault switched to the new keys.
	Complete bool `json:"complete"`
}

// SetToken sets the Vault token sent with lifecycle calls, for listeners
// that disable the unauthenticated rekey endpoints. Empty sends none.
func (n *Node) SetToken(token string) { n.api.SetToken(token) }

// Init initializes the node. It fails if the node is initialized already.
func (n *Node) Init(ctx context.Context, req InitRequest) (InitResult, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return InitResult{}, err
	}
	var out InitResult
	if err := n.call(ctx, http.MethodPut, "/v1/sys/init", body, &out); err != nil {
		return InitResult{}, err
	}
	if len(out.Keys) != req.Shares {
		zeroAll(out.Keys)
		return InitResult{}, fmt.Errorf("vault node %s: init returned %d keys, want %d", n.Name, len(out.Keys), req.Shares)
	}
	return out, nil
}

// RekeyStatus reads the progress of the current rekey.
func (n *Node) RekeyStatus(ctx context.Context) (RekeyStatus, error) {
	var st RekeyStatus
	return st, n.call(ctx, http.MethodGet, "/v1/sys/rekey/init", nil, &st)
}

// RekeyInit starts a rekey to shares/threshold with require_verification,
// so the new keys take effect only after RekeyVerify completes.
func (n *Node) RekeyInit(ctx context.Context, shares, threshold int) (RekeyStatus, error) {
	body, _ := json.Marshal(map[string]any{"secret_shares": shares, "secret_threshold": threshold, "require_verification": true})
	var st RekeyStatus
	return st, n.call(ctx, http.MethodPut, "/v1/sys/rekey/init", body, &st)
}

// RekeyCancel cancels the rekey in progress with the given nonce; the old
// keys stay in force. Vault (1.21) refuses a DELETE without a JSON body
// (400 "EOF") and, while a rekey younger than ten minutes is in progress,
// one whose nonce is not that rekey's (400 "invalid request"). With no
// rekey in progress it succeeds whatever the nonce.
func (n *Node) RekeyCancel(ctx context.Context, nonce string) error {
	body, _ := json.Marshal(map[string]string{"nonce": nonce})
	return n.call(ctx, http.MethodDelete, "/v1/sys/rekey/init", body, nil)
}

// RekeyUpdate submits one current share to the rekey with the given nonce.
func (n *Node) RekeyUpdate(ctx context.Context, nonce string, share []byte) (RekeyUpdate, error) {
	body := keyBody(nonce, share)
	defer clear(body)
	var out RekeyUpdate
	return out, n.call(ctx, http.MethodPut, "/v1/sys/rekey/update", body, &out)
}

// RekeyVerifyStatus reads the progress of the verification step.
func (n *Node) RekeyVerifyStatus(ctx context.Context) (VerifyStatus, error) {
	var st VerifyStatus
	return st, n.call(ctx, http.MethodGet, "/v1/sys/rekey/verify", nil, &st)
}

// RekeyVerify submits one new share to the verification step.
func (n *Node) RekeyVerify(ctx context.Context, nonce string, share []byte) (VerifyStatus, error) {
	body := keyBody(nonce, share)
	defer clear(body)
	var out VerifyStatus
	return out, n.call(ctx, http.MethodPut, "/v1/sys/rekey/verify", body, &out)
}

// keyBody is {"nonce":"…","key":"<hex>"} in a buffer the caller zeroes.
func keyBody(nonce string, share []byte) []byte {
	nb, _ := json.Marshal(nonce)
	body := make([]byte, 0, 32+len(nb)+2*len(share))
	body = append(body, `{"nonce":`...)
	body = append(body, nb...)
	body = append(body, `,"key":"`...)
	body = hex.AppendEncode(body, share)
	return append(body, `"}`...)
}

// call makes one request; the answer body is zeroed after decoding, since
// it may carry keys.
func (n *Node) call(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(n.Addr, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("vault node %s: %w", n.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tok := n.api.Token(); tok != "" {
		req.Header.Set("X-Vault-Token", tok)
	}
	what := strings.TrimPrefix(path, "/v1/")
	resp, err := n.lifecycle.Do(req)
	if err != nil {
		return fmt.Errorf("vault node %s (%s): %s: %w", n.Name, n.Addr, what, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	defer clear(b)
	if err != nil {
		return fmt.Errorf("vault node %s: failed to read %s answer: %w", n.Name, what, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(b, &e)
		return &APIError{Node: n.Name, Path: what, Code: resp.StatusCode, Errors: e.Errors}
	}
	if out == nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("vault node %s: bad %s answer: %w", n.Name, what, err)
	}
	return nil
}

// APIError is a Vault answer other than 2xx to a lifecycle call.
type APIError struct {
	Node, Path string
	Code       int
	Errors     []string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("vault node %s: %s answered %d: %s", e.Node, e.Path, e.Code, strings.Join(e.Errors, "; "))
}

// IsKeyRejected reports whether err is Vault refusing a full threshold of
// keys given to sys/rekey/update because they do not combine to the key it
// uses ("failed to read root key: ... message authentication failed" in
// Vault 1.21, "root key verification failed" in older ones). That proves
// Vault does not use the generation those keys belong to. Vault gives no
// code for it, so its message is all there is to go by; this is the one
// place that reads it.
func IsKeyRejected(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) || ae.Path != "sys/rekey/update" {
		return false
	}
	for _, e := range ae.Errors {
		for _, m := range keyRejectedMessages {
			if strings.Contains(e, m) {
				return true
			}
		}
	}
	return false
}

// keyRejectedMessages are Vault's words for keys that do not open its
// barrier (vault/rekey.go, BarrierRekeyUpdate).
var keyRejectedMessages = []string{"failed to read root key", "root key verification failed", "rootter key verification failed", "message authentication failed"}

func zeroAll(keys [][]byte) {
	for _, k := range keys {
		clear(k)
	}
}
