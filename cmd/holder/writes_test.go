package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/shamir"
	"google.golang.org/grpc/codes"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// junkGeneration makes a self-consistent generation gen of a key Vault
// never had: what a stolen coordinator credential would stage.
func junkGeneration(t *testing.T, gen uint64, nonce string) sharerpc.StageRequest {
	t.Helper()
	secret := make([]byte, shares.KeyLen)
	_, _ = rand.Read(secret)
	parts, err := shamir.Split(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	var all []shares.Share
	for i, p := range parts {
		all = append(all, shares.Share{Index: uint8(i + 1), Value: p})
	}
	req := sharerpc.StageRequest{Generation: gen, Manifest: sharerpc.ManifestFromShares(shares.NewManifest(gen, 3, all)), RekeyNonce: nonce}
	for _, s := range all[:2] {
		req.Shares = append(req.Shares, sharerpc.Share{Index: s.Index, Value: s.Value})
	}
	return req
}

// cancelFakeRekey cancels the rekey with nonce, as Vault requires.
func cancelFakeRekey(t *testing.T, s *holderSetup, nonce string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.w.vca.Pool()}}, Timeout: 5 * time.Second}
	req, _ := http.NewRequest(http.MethodDelete, s.fake.URL()+"/v1/sys/rekey/init", strings.NewReader(`{"nonce":"`+nonce+`"}`))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("cancel of the fake's rekey answered %s", resp.Status)
	}
}

// TestHolderRefusesJunkGeneration is Hardening finding 2: the coordinator's
// identity, with Vault unsealed and no rekey in progress, tries to stage
// and commit a junk generation. The holder refuses, by its own look at
// Vault. During a real rekey it accepts the stage, commits only once the
// rekey ended, keeps the generation it replaced, refuses to drop a staged
// generation whose fate it cannot know, and reports all of it in its
// Manifest answer. On the code before the fix the junk stage and commit
// succeeded and the commit deleted generation 1.
func TestHolderRefusesJunkGeneration(t *testing.T) {
	s := setupHolder(t)
	s.importGen1(t)
	_, coord := s.serve(t, "unsealer/u1", "127.0.0.20")
	ctx := context.Background()
	unsealFake(t, s)

	// The attack: no rekey anywhere, Vault unsealed.
	err := coord.Stage(ctx, junkGeneration(t, 2, ""))
	wantDenial(t, err, policy.ReasonWriteRefused, codes.FailedPrecondition)
	err = coord.Stage(ctx, junkGeneration(t, 2, "made-up-nonce"))
	wantDenial(t, err, policy.ReasonTargetNotRekeying, codes.FailedPrecondition)
	err = coord.Commit(ctx, 2)
	wantDenial(t, err, policy.ReasonGenerationMismatch, codes.FailedPrecondition)
	if err := coord.Abort(ctx, 2); err != nil {
		t.Fatalf("abort with nothing staged is a no-op: %v", err)
	}
	m, err := coord.Manifest(ctx)
	if err != nil || m.Generation != 1 || m.Staged != nil || m.Previous != nil {
		t.Fatalf("after the refused attack: manifest %+v, %v; want generation 1 alone", m, err)
	}

	// A real rekey: the stage names its nonce.
	nonce := startFakeRekey(t, s)
	if err := coord.Stage(ctx, junkGeneration(t, 2, nonce+"x")); err == nil {
		t.Fatal("stage with another rekey's nonce accepted")
	}
	if err := coord.Stage(ctx, junkGeneration(t, 2, nonce)); err != nil {
		t.Fatalf("stage during the rekey: %v", err)
	}
	err = coord.Commit(ctx, 2)
	wantDenial(t, err, policy.ReasonWriteRefused, codes.FailedPrecondition) // not verified yet
	m, err = coord.Manifest(ctx)
	if err != nil || m.Generation != 1 || m.Staged == nil || m.Staged.Generation != 2 {
		t.Fatalf("during the rekey: manifest %+v, %v; want 1 with 2 staged", m, err)
	}
	// The rekey ends (here: cancelled, which the holder cannot tell from
	// verified). Its staged generation may be what Vault uses now, so it
	// is never dropped; it may be committed, and generation 1 stays.
	cancelFakeRekey(t, s, nonce)
	err = coord.Abort(ctx, 2)
	wantDenial(t, err, policy.ReasonWriteRefused, codes.FailedPrecondition)
	// Issue 17's key loss: a second rekey must not replace (or drop) the
	// staged generation of the first, which Vault may be using.
	nonce2 := startFakeRekey(t, s)
	err = coord.Stage(ctx, junkGeneration(t, 2, nonce2))
	wantDenial(t, err, policy.ReasonWriteRefused, codes.FailedPrecondition)
	err = coord.Abort(ctx, 2)
	wantDenial(t, err, policy.ReasonWriteRefused, codes.FailedPrecondition)
	cancelFakeRekey(t, s, nonce2)
	if err := coord.Commit(ctx, 2); err != nil {
		t.Fatalf("commit after the rekey ended: %v", err)
	}
	m, err = coord.Manifest(ctx)
	if err != nil || m.Generation != 2 || m.Previous == nil || m.Previous.Generation != 1 || m.Proven != 0 {
		t.Fatalf("after the commit: manifest %+v, %v; want 2 with 1 kept", m, err)
	}
	if _, err := os.Stat(s.w.path("store/gen-1.sealed")); err != nil {
		t.Fatalf("generation 1 was deleted by the commit: %v", err)
	}

	// A restart: the coordinator tries generation 2, Vault refuses it,
	// it tries the kept generation 1, which unseals. The holder sees the
	// node unsealed after its last release and records generation 1 as
	// the one that works.
	s.fake.Seal()
	for _, gen := range []uint64{2, 1} {
		got, err := coord.Release(ctx, "vault-1", gen)
		if err != nil || len(got) != 2 {
			t.Fatalf("release of generation %d: %d shares, %v", gen, len(got), err)
		}
	}
	unsealFake(t, s)
	proctest.WaitFor(t, 30*time.Second, "the holder to record generation 1 as proven", func() bool {
		m, err := coord.Manifest(ctx)
		return err == nil && m.Proven == 1
	})

	out, code := runCLI(t, "", "status", "-c", s.cfg)
	if code != 0 || !strings.Contains(out, "generation  2 (staged: 0)") || !strings.Contains(out, "kept        [1] (proven: 1") {
		t.Fatalf("status: %d\n%s", code, out)
	}
	log := readFile(t, s.w.path("audit.log"))
	for _, want := range []string{`"event":"stage","peer":"spiffe://keyshare.test/unsealer/u1"`, `"write_refused"`, `"target_not_rekeying"`, `"rule":"rekey-ended:vault-1"`, `"event":"prove"`} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
}

// TestConfirmGeneration: the operator's explicit word that a generation
// unseals Vault, with its refusals.
func TestConfirmGeneration(t *testing.T) {
	s := setupHolder(t)
	s.importGen1(t)
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"fail/no-flag", []string{"confirm-generation", "1"}, 1, "--vault-unseals-with-it"},
		{"fail/not-a-number", []string{"confirm-generation", "one", "--vault-unseals-with-it"}, 2, "want a positive number"},
		{"fail/not-held", []string{"confirm-generation", "7", "--vault-unseals-with-it"}, 1, "generation 7 is not held"},
		{"ok/current", []string{"confirm-generation", "1", "--vault-unseals-with-it"}, 0, "generation 1 confirmed; holds current 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, code := runCLI(t, "", append(c.args, "-c", s.cfg)...)
			if code != c.code || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, c.code, c.want, out)
			}
		})
	}
	out, code := runCLI(t, "", "status", "-c", s.cfg, "--json")
	if code != 0 || !strings.Contains(out, `"proven_generation": 1`) {
		t.Fatalf("status after the confirmation: %d\n%s", code, out)
	}
	if log := readFile(t, s.w.path("audit.log")); !strings.Contains(log, `"event":"prove"`) || !strings.Contains(log, "operator confirmed") {
		t.Fatalf("audit log lacks the operator's proof:\n%s", log)
	}
}
