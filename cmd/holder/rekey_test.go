package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/keyshare/keyshare/pkg/policy"
)

// TestHolderRekeyRelease: the holder gives its current shares for Vault's
// rekey only to an operator, only while the (unsealed) node reports a rekey
// with the nonce asked for, only once two distinct operator identities have
// asked for that nonce, and audits it.
func TestHolderRekeyRelease(t *testing.T) {
	s := setupHolder(t)
	s.importGen1(t)
	_, op := s.serve(t, "operator/oncall", "127.0.0.30")
	ctx := context.Background()

	unsealFake(t, s)
	_, err := op.ReleaseForRekey(ctx, "vault-1", 1, "no-such-rekey")
	wantDenial(t, err, policy.ReasonTargetNotRekeying, codes.FailedPrecondition)

	// One operator credential is not enough (a leaked one could start a
	// rekey itself, through Vault's unauthenticated rekey endpoints): a
	// second operator identity must ask for the same nonce.
	nonce := startFakeRekey(t, s)
	_, err = op.ReleaseForRekey(ctx, "vault-1", 1, nonce)
	wantDenial(t, err, policy.ReasonApprovalPending, codes.PermissionDenied)
	if err == nil || !strings.Contains(err.Error(), "needs 2 distinct operator identities") {
		t.Fatalf("first operator alone: %v; want the approval rule named", err)
	}
	for _, who := range []struct{ id, src string }{{"operator/backup", "127.0.0.32"}, {"operator/oncall", "127.0.0.30"}} {
		got, err := s.client(t, who.id, who.src).ReleaseForRekey(ctx, "vault-1", 1, nonce)
		if err != nil || len(got) != 2 {
			t.Fatalf("%s's rekey release after two operators asked: %d shares, %v", who.id, len(got), err)
		}
	}
	_, err = op.ReleaseForRekey(ctx, "vault-1", 1, nonce+"x")
	wantDenial(t, err, policy.ReasonTargetNotRekeying, codes.FailedPrecondition)
	_, err = s.client(t, "unsealer/u1", "127.0.0.20").ReleaseForRekey(ctx, "vault-1", 1, nonce)
	wantDenial(t, err, policy.ReasonOperatorRule, codes.PermissionDenied)

	out, code := runCLI(t, "", "audit", "verify", "-c", s.cfg)
	if code != 0 {
		t.Fatalf("audit verify: %d %s", code, out)
	}
	if log := readFile(t, s.w.path("audit.log")); !strings.Contains(log, `"event":"rekey_release"`) || !strings.Contains(log, "target_not_rekeying") {
		t.Fatal("audit log lacks the rekey releases")
	}
}

// startFakeRekey starts a rekey with verification on the fake and returns
// its nonce.
func startFakeRekey(t *testing.T, s *holderSetup) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.w.vca.Pool()}}, Timeout: 5 * time.Second}
	req, _ := http.NewRequest(http.MethodPut, s.fake.URL()+"/v1/sys/rekey/init",
		strings.NewReader(`{"secret_shares":5,"secret_threshold":3,"require_verification":true}`))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Nonce string `json:"nonce"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Nonce == "" {
		t.Fatalf("rekey init: %v (status %d)", err, resp.StatusCode)
	}
	return st.Nonce
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
