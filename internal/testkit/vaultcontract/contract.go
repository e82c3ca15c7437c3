// Package vaultcontract is one suite of assertions about the Vault HTTP
// API that keyshare calls: seal-status, unseal (with reset), init, the
// rekey with verification (init, update, verify, cancel with and without a
// nonce) and health. The same Run is called against the fake Vault
// (internal/testkit/vaultfake, a unit test) and against the real Vault v1.21.0
// (e2e/contract_test.go), so the fake cannot drift from the real one
// without a test failing: where they differ, the fake is fixed.
//
// It drives the node through vaultnode.Node, the client keyshare uses, and
// through raw requests where keyshare's client cannot send what is being
// asserted (a DELETE without a body). It never prints a key.
package vaultcontract

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/shamir"

	"github.com/keyshare/keyshare/internal/vaultnode"
)

// Target is one fresh, uninitialized, single Vault node.
type Target struct {
	// Node is keyshare's client for it.
	Node *vaultnode.Node
	// URL is its API address, and CACert (PEM) the CA its certificate
	// chains to: the suite's raw requests trust it alone.
	URL    string
	CACert []byte
	// Restart stops and starts the node: it comes back sealed, with any
	// rekey in progress forgotten. Run then waits until Node gets an
	// answer (a kept-alive connection may have been cut).
	Restart func(ctx context.Context) error
}

// Shares and Threshold of the seal the suite initializes.
const (
	Shares    = 5
	Threshold = 3
)

// suite is the state carried from one step to the next.
type suite struct {
	tg    Target
	http  *http.Client // trusts tg.CACert alone
	keys  [][]byte     // the unseal key in force
	token string
	nonce string // the rekey in progress
	vnone string // its verification nonce
	next  [][]byte
}

// Run runs every assertion in order, each as a subtest; it stops at the
// first step that fails, as later ones build on it.
func Run(t *testing.T, tg Target) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(tg.CACert) {
		t.Fatal("vaultcontract: Target.CACert holds no PEM certificate")
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(hc.CloseIdleConnections)
	s := &suite{tg: tg, http: hc}
	steps := []struct {
		name string
		fn   func(*testing.T, context.Context)
	}{
		{"uninitialized", s.uninitialized},
		{"init", s.init},
		{"sealed", s.sealed},
		{"unseal_progress_reset_and_duplicates", s.unsealProgress},
		{"unseal_wrong_key_discards_the_attempt", s.unsealWrongKey},
		{"unseal", s.unseal},
		{"rekey_status_idle", s.rekeyIdle},
		{"rekey_endpoints_need_no_token", s.rekeyUnauthenticated},
		{"rekey_cancel_without_body_or_nonce", s.cancelWithoutNonce},
		{"rekey_update_rejects_another_key", s.updateRejects},
		{"rekey_update_and_verify_nonces", s.updateAndVerifyNonces},
		{"rekey_cancel_while_verifying", s.cancelWhileVerifying},
		{"rekey_complete", s.rekeyComplete},
		{"restart_forgets_the_rekey_and_the_old_key_fails", s.restart},
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			st.fn(t, ctx)
		})
		if !ok {
			return
		}
	}
}

func (s *suite) uninitialized(t *testing.T, ctx context.Context) {
	s.notUnsealed(t, ctx, "an uninitialized node", 501, func(st vaultnode.Status) bool { return !st.Initialized && st.Sealed })
}

// notUnsealed asserts what a node that is not unsealed answers: a
// seal-status that want accepts, health, and a rekey status refused with
// 503 (it is sealed).
func (s *suite) notUnsealed(t *testing.T, ctx context.Context, what string, health int, want func(vaultnode.Status) bool) {
	t.Helper()
	st, err := s.tg.Node.SealStatus(ctx)
	if err != nil || !want(st) {
		t.Fatalf("seal-status of %s: %+v, %v", what, st, err)
	}
	if code := s.health(t, ctx); code != health {
		t.Fatalf("health of %s: %d, want %d", what, code, health)
	}
	if _, err := s.tg.Node.RekeyStatus(ctx); apiCode(err) != 503 {
		t.Fatalf("rekey status of %s: %v, want 503 (it is sealed)", what, err)
	}
}

func (s *suite) init(t *testing.T, ctx context.Context) {
	res, err := s.tg.Node.Init(ctx, vaultnode.InitRequest{Shares: Shares, Threshold: Threshold})
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	if len(res.Keys) != Shares || res.RootToken == "" {
		t.Fatalf("init returned %d keys, root token set %t", len(res.Keys), res.RootToken != "")
	}
	for i, k := range res.Keys {
		if len(k) != 33 {
			t.Fatalf("key %d is %d bytes, want 33", i+1, len(k))
		}
	}
	s.keys, s.token = res.Keys, res.RootToken
	s.tg.Node.SetToken(s.token)
	_, err = s.tg.Node.Init(ctx, vaultnode.InitRequest{Shares: Shares, Threshold: Threshold})
	if apiCode(err) != 400 || !strings.Contains(err.Error(), "already initialized") {
		t.Fatalf("second init: %v, want 400 already initialized", err)
	}
}

func (s *suite) sealed(t *testing.T, ctx context.Context) {
	s.notUnsealed(t, ctx, "a sealed node after init", 503, func(st vaultnode.Status) bool {
		return st.Initialized && st.Sealed && st.T == Threshold && st.N == Shares && st.Progress == 0
	})
}

func (s *suite) unsealProgress(t *testing.T, ctx context.Context) {
	st, err := s.tg.Node.Unseal(ctx, s.keys[0])
	if err != nil || !st.Sealed || st.Progress != 1 || st.Nonce == "" {
		t.Fatalf("first share: %+v, %v; want progress 1 with a nonce", st, err)
	}
	if st, err = s.tg.Node.Unseal(ctx, s.keys[0]); err != nil || st.Progress != 1 {
		t.Fatalf("the same share again: %+v, %v; want it ignored (progress 1)", st, err)
	}
	if st, err = s.tg.Node.ResetUnseal(ctx); err != nil || !st.Sealed || st.Progress != 0 {
		t.Fatalf("reset: %+v, %v; want progress 0", st, err)
	}
}

func (s *suite) unsealWrongKey(t *testing.T, ctx context.Context) {
	other := split(t, Shares, Threshold)
	for _, k := range [][]byte{s.keys[0], s.keys[1]} {
		if _, err := s.tg.Node.Unseal(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.tg.Node.Unseal(ctx, other[2]); err == nil {
		t.Fatal("a threshold with a share of another key was accepted")
	}
	st, err := s.tg.Node.SealStatus(ctx)
	if err != nil || !st.Sealed || st.Progress != 0 {
		t.Fatalf("after a wrong threshold: %+v, %v; want sealed with the attempt discarded", st, err)
	}
}

func (s *suite) unseal(t *testing.T, ctx context.Context) {
	s.unsealWith(t, ctx, s.keys)
}

func (s *suite) unsealWith(t *testing.T, ctx context.Context, keys [][]byte) {
	t.Helper()
	var st vaultnode.Status
	var err error
	for _, k := range keys[:Threshold] {
		if st, err = s.tg.Node.Unseal(ctx, k); err != nil {
			t.Fatalf("unseal: %v", err)
		}
	}
	if st.Sealed {
		t.Fatalf("still sealed after a threshold: %+v", st)
	}
	// A single raft node becomes active shortly after it unseals.
	if err := poll(ctx, func() bool { return s.health(t, ctx) == 200 }); err != nil {
		t.Fatalf("health never answered 200 (active) after the unseal: %v", err)
	}
}

func (s *suite) rekeyIdle(t *testing.T, ctx context.Context) {
	rk, err := s.tg.Node.RekeyStatus(ctx)
	if err != nil || rk.Started || rk.Nonce != "" || rk.Required != Threshold {
		t.Fatalf("rekey status with none in progress: %+v, %v", rk, err)
	}
	// No rekey in progress: a cancel with any nonce succeeds, one without
	// a body does not.
	if err := s.tg.Node.RekeyCancel(ctx, ""); err != nil {
		t.Fatalf("cancel with no rekey in progress: %v", err)
	}
	if code, body := s.raw(t, ctx, http.MethodDelete, "/v1/sys/rekey/init", nil); code != 400 {
		t.Fatalf("cancel without a body, no rekey in progress: %d %s, want 400", code, body)
	}
}

// rekeyUnauthenticated is the risk the holders' two-operator rekey rule
// answers (pkg/policy rekeyapproval.go): with no token at all, whoever
// reaches the listener starts a rekey on an unsealed node and reads its
// nonce, so an operator certificate alone could name a rekey of its own.
// The holder also reads the rekey status this way, without a token. The
// rekey is cancelled with its nonce, and the node is idle again.
func (s *suite) rekeyUnauthenticated(t *testing.T, ctx context.Context) {
	body := []byte(`{"secret_shares":5,"secret_threshold":3,"require_verification":true}`)
	if code, b := s.anon(t, ctx, http.MethodPut, "/v1/sys/rekey/init", body); code != http.StatusOK {
		t.Fatalf("rekey init without a token: %d %s, want 200", code, b)
	}
	code, b := s.anon(t, ctx, http.MethodGet, "/v1/sys/rekey/init", nil)
	var rk vaultnode.RekeyStatus
	if err := json.Unmarshal(b, &rk); code != http.StatusOK || err != nil || !rk.Started || rk.Nonce == "" {
		t.Fatalf("rekey status without a token: %d %+v %v, want 200 with the nonce", code, rk, err)
	}
	nb, _ := json.Marshal(map[string]string{"nonce": rk.Nonce})
	if code, b := s.anon(t, ctx, http.MethodDelete, "/v1/sys/rekey/init", nb); code/100 != 2 {
		t.Fatalf("rekey cancel without a token: %d %s, want 2xx", code, b)
	}
	if rk, err := s.tg.Node.RekeyStatus(ctx); err != nil || rk.Started {
		t.Fatalf("rekey status after the cancel: %+v, %v", rk, err)
	}
}

// anon sends a request without a token and returns the code and the body.
func (s *suite) anon(t *testing.T, ctx context.Context, method, path string, body []byte) (int, []byte) {
	t.Helper()
	return s.send(t, ctx, method, path, body, "")
}

// send sends a request with token (none if empty) and returns the code and
// the body.
func (s *suite) send(t *testing.T, ctx context.Context, method, path string, body []byte, token string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(s.tg.URL, "/")+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, b
}

func (s *suite) rekeyInit(t *testing.T, ctx context.Context) vaultnode.RekeyStatus {
	t.Helper()
	rk, err := s.tg.Node.RekeyInit(ctx, Shares, Threshold)
	if err != nil || !rk.Started || rk.Nonce == "" || !rk.VerificationRequired || rk.Progress != 0 {
		t.Fatalf("rekey init: %+v, %v", rk, err)
	}
	s.nonce = rk.Nonce
	return rk
}

func (s *suite) cancelWithoutNonce(t *testing.T, ctx context.Context) {
	s.rekeyInit(t, ctx)
	if _, err := s.tg.Node.RekeyInit(ctx, Shares, Threshold); apiCode(err) != 400 || !strings.Contains(err.Error(), "already in progress") {
		t.Fatalf("a second rekey init: %v, want 400 already in progress", err)
	}
	if code, body := s.raw(t, ctx, http.MethodDelete, "/v1/sys/rekey/init", nil); code != 400 || !strings.Contains(body, "EOF") {
		t.Fatalf("cancel without a body: %d %s, want 400 EOF", code, body)
	}
	for _, nonce := range []string{"", "00000000-0000-0000-0000-000000000000"} {
		if err := s.tg.Node.RekeyCancel(ctx, nonce); apiCode(err) != 400 {
			t.Fatalf("cancel with nonce %q: %v, want 400", nonce, err)
		}
	}
	rk, err := s.tg.Node.RekeyStatus(ctx)
	if err != nil || !rk.Started || rk.Nonce != s.nonce {
		t.Fatalf("after refused cancels: %+v, %v; want the rekey still in progress", rk, err)
	}
	if err := s.tg.Node.RekeyCancel(ctx, s.nonce); err != nil {
		t.Fatalf("cancel with the nonce: %v", err)
	}
	if rk, err := s.tg.Node.RekeyStatus(ctx); err != nil || rk.Started {
		t.Fatalf("after the cancel: %+v, %v", rk, err)
	}
}

func (s *suite) updateRejects(t *testing.T, ctx context.Context) {
	s.rekeyInit(t, ctx)
	if _, err := s.tg.Node.RekeyUpdate(ctx, "00000000-0000-0000-0000-000000000000", s.keys[0]); apiCode(err) != 400 {
		t.Fatalf("update with a wrong nonce: %v, want 400", err)
	}
	other := split(t, Shares, Threshold)
	var err error
	for i, k := range other[:Threshold] {
		var up vaultnode.RekeyUpdate
		up, err = s.tg.Node.RekeyUpdate(ctx, s.nonce, k)
		if i < Threshold-1 && (err != nil || up.Progress != i+1 || up.Complete) {
			t.Fatalf("update %d with another key: %+v, %v", i+1, up.RekeyStatus, err)
		}
	}
	if !vaultnode.IsKeyRejected(err) {
		t.Fatalf("a threshold of another key: %v; want a rejection vaultnode.IsKeyRejected recognizes", err)
	}
	rk, serr := s.tg.Node.RekeyStatus(ctx)
	if serr != nil || !rk.Started || rk.Nonce != s.nonce || rk.Progress != 0 || rk.VerificationNonce != "" {
		t.Fatalf("after the rejection: %+v, %v; want the same rekey, progress 0", rk, serr)
	}
	if err := s.tg.Node.RekeyCancel(ctx, s.nonce); err != nil {
		t.Fatal(err)
	}
}

func (s *suite) updateAndVerifyNonces(t *testing.T, ctx context.Context) {
	s.rekeyInit(t, ctx)
	s.update(t, ctx)
	if _, err := s.tg.Node.RekeyUpdate(ctx, s.nonce, s.keys[0]); apiCode(err) != 400 {
		t.Fatalf("update while awaiting verification: %v, want 400", err)
	}
	vs, err := s.tg.Node.RekeyVerifyStatus(ctx)
	if err != nil || vs.Nonce != s.vnone || vs.Progress != 0 || vs.T != Threshold || vs.N != Shares {
		t.Fatalf("verify status: %+v, %v", vs, err)
	}
	if _, err := s.tg.Node.RekeyVerify(ctx, s.nonce, s.next[0]); apiCode(err) != 400 {
		t.Fatalf("verify with the rekey's nonce instead of the verification nonce: %v, want 400", err)
	}
	// A wrong threshold is refused and the verification nonce changes.
	other := split(t, Shares, Threshold)
	for i, k := range other[:Threshold] {
		_, err = s.tg.Node.RekeyVerify(ctx, s.vnone, k)
		if i < Threshold-1 && err != nil {
			t.Fatalf("verify %d: %v", i+1, err)
		}
	}
	if apiCode(err) != 400 {
		t.Fatalf("verify with another key: %v, want 400", err)
	}
	rk, err := s.tg.Node.RekeyStatus(ctx)
	if err != nil || !rk.Started || rk.Nonce != s.nonce || rk.VerificationNonce == "" || rk.VerificationNonce == s.vnone {
		t.Fatalf("after a failed verification: %+v, %v; want the same rekey with a new verification nonce", rk, err)
	}
	s.vnone = rk.VerificationNonce
}

// update gives the current keys to the rekey in progress and keeps the new
// keys and the verification nonce.
func (s *suite) update(t *testing.T, ctx context.Context) {
	t.Helper()
	for i, k := range s.keys[:Threshold] {
		up, err := s.tg.Node.RekeyUpdate(ctx, s.nonce, k)
		if err != nil {
			t.Fatalf("update %d: %v", i+1, err)
		}
		if i < Threshold-1 {
			if up.Complete || up.Progress != i+1 {
				t.Fatalf("update %d: %+v", i+1, up.RekeyStatus)
			}
			if i == 0 {
				if _, err := s.tg.Node.RekeyUpdate(ctx, s.nonce, k); apiCode(err) != 400 {
					t.Fatalf("the same key twice: %v, want 400", err)
				}
			}
			continue
		}
		if !up.Complete || len(up.Keys) != Shares || up.VerificationNonce == "" {
			t.Fatalf("last update: complete %t, %d keys, verification nonce set %t", up.Complete, len(up.Keys), up.VerificationNonce != "")
		}
		s.next, s.vnone = up.Keys, up.VerificationNonce
	}
	rk, err := s.tg.Node.RekeyStatus(ctx)
	if err != nil || !rk.Started || rk.Nonce != s.nonce || rk.VerificationNonce != s.vnone {
		t.Fatalf("rekey status awaiting verification: %+v, %v", rk, err)
	}
}

func (s *suite) cancelWhileVerifying(t *testing.T, ctx context.Context) {
	if err := s.tg.Node.RekeyCancel(ctx, s.vnone); apiCode(err) != 400 {
		t.Fatalf("cancel with the verification nonce: %v, want 400 (only the rekey's nonce cancels)", err)
	}
	if err := s.tg.Node.RekeyCancel(ctx, s.nonce); err != nil {
		t.Fatalf("cancel while verifying, with the nonce: %v", err)
	}
	if rk, err := s.tg.Node.RekeyStatus(ctx); err != nil || rk.Started {
		t.Fatalf("after the cancel: %+v, %v", rk, err)
	}
	if _, err := s.tg.Node.RekeyVerify(ctx, s.vnone, s.next[0]); apiCode(err) != 400 {
		t.Fatalf("verify after the cancel: %v, want 400", err)
	}
}

func (s *suite) rekeyComplete(t *testing.T, ctx context.Context) {
	s.rekeyInit(t, ctx)
	s.update(t, ctx)
	for i, k := range s.next[:Threshold] {
		vs, err := s.tg.Node.RekeyVerify(ctx, s.vnone, k)
		if err != nil {
			t.Fatalf("verify %d: %v", i+1, err)
		}
		if vs.Complete != (i == Threshold-1) {
			t.Fatalf("verify %d: complete %t", i+1, vs.Complete)
		}
	}
	if rk, err := s.tg.Node.RekeyStatus(ctx); err != nil || rk.Started {
		t.Fatalf("after the verification: %+v, %v", rk, err)
	}
	// The old key is now rejected by a rekey, the new one accepted.
	s.rekeyInit(t, ctx)
	var err error
	for _, k := range s.keys[:Threshold] {
		_, err = s.tg.Node.RekeyUpdate(ctx, s.nonce, k)
	}
	if !vaultnode.IsKeyRejected(err) {
		t.Fatalf("old key after the rekey: %v, want a rejection", err)
	}
	if err := s.tg.Node.RekeyCancel(ctx, s.nonce); err != nil {
		t.Fatal(err)
	}
	s.keys = s.next
}

func (s *suite) restart(t *testing.T, ctx context.Context) {
	old := split(t, Shares, Threshold)
	s.rekeyInit(t, ctx)
	if err := s.tg.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	answers := func() bool { _, err := s.tg.Node.SealStatus(ctx); return err == nil }
	if err := poll(ctx, answers); err != nil {
		t.Fatalf("seal-status never answered after the restart: %v", err)
	}
	st, err := s.tg.Node.SealStatus(ctx)
	if err != nil || !st.Sealed || st.Progress != 0 {
		t.Fatalf("after a restart: %+v, %v; want sealed", st, err)
	}
	for _, k := range old[:Threshold] {
		_, err = s.tg.Node.Unseal(ctx, k)
	}
	if err == nil {
		t.Fatal("another key's threshold unsealed the node")
	}
	s.unsealWith(t, ctx, s.keys)
	if rk, err := s.tg.Node.RekeyStatus(ctx); err != nil || rk.Started {
		t.Fatalf("rekey status after a restart: %+v, %v; want none in progress", rk, err)
	}
}

func (s *suite) health(t *testing.T, ctx context.Context) int {
	t.Helper()
	code, err := s.tg.Node.Health(ctx)
	if err != nil {
		t.Fatalf("health: %v", err)
	}
	return code
}

// raw sends a request keyshare's client cannot, and returns the code and
// the errors in the answer.
func (s *suite) raw(t *testing.T, ctx context.Context, method, path string, body []byte) (int, string) {
	t.Helper()
	code, b := s.send(t, ctx, method, path, body, s.token)
	var e struct {
		Errors []string `json:"errors"`
	}
	_ = json.Unmarshal(b, &e)
	return code, strings.Join(e.Errors, "; ")
}

// apiCode is the HTTP status of a *vaultnode.APIError, or 0.
func apiCode(err error) int {
	var ae *vaultnode.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// split makes the shares of a random key that no Vault uses.
func split(t *testing.T, n, k int) [][]byte {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	out, err := shamir.Split(key, n, k)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// poll calls ok every 20 ms until it is true or ctx ends.
func poll(ctx context.Context, ok func() bool) error {
	for !ok() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
