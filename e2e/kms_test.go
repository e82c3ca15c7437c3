//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/storage/value"
	"k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2"
	kmsservice "k8s.io/kms/pkg/service"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// kmsStory is the KMS plugin's life against the real Vault cluster that
// keyshare unseals: provisioning from nothing, a host's plugin serving the
// apiserver's KMS v2 client over its socket, key rotation, a token bound
// to another host, revocation, a sealed cluster healed by keyshare, a node
// down, and no secret in any log.
type kmsStory struct {
	*kmsRun
	a  *topology.KMSPlugin // host A, 127.0.0.41
	ka kmsservice.Service  // the apiserver's KMS v2 client on a's socket

	// old is a ciphertext and its seed from before the key rotation.
	old       *kmsservice.EncryptResponse
	oldSeed   []byte
	keyIDs    []string
	envelope  []byte // a value stored by the apiserver's envelope transformer
	envSecret []byte
	stateFunc kmsv2.StateFunc
}

func TestKMSPlugin(t *testing.T) {
	run, _ := newKMSRun(t)
	s := &kmsStory{kmsRun: run}

	t.Run("01_provision_from_nothing", s.provision)
	t.Run("02_encrypt_decrypt_through_the_socket", s.roundTrip)
	t.Run("03_key_rotate_new_key_id_old_ciphertexts_decrypt", s.keyRotate)
	t.Run("04_token_bound_to_another_address_is_refused", s.otherAddress)
	t.Run("05_revoked_token_then_new_file_recovers_without_restart", s.revoke)
	t.Run("06_sealed_vault_then_keyshare_unseals_plugin_recovers", s.sealed)
	t.Run("07_one_vault_node_down_changes_nothing", s.oneNodeDown)
	t.Run("08_cert_auth_login_and_login_again_after_revocation", s.certAuth)
	t.Run("09_no_plaintext_seed_or_token_in_any_log", s.noLeaks)
}

// rememberToken adds the token in p's file to the leak check.
func (s *kmsStory) rememberToken(t *testing.T, p *topology.KMSPlugin) {
	t.Helper()
	s.rememberTokenFile(t, "token of "+p.Name, p.TokenFile)
}

// startPlugin starts p and dials its socket with the apiserver's client;
// both live until the whole story ends.
func (s *kmsStory) startPlugin(t *testing.T, ctx context.Context, p *topology.KMSPlugin) kmsservice.Service {
	t.Helper()
	off := topology.LogOffset(p.Process)
	if err := p.Process.Start(); err != nil {
		t.Fatal(err)
	}
	s.parent.Cleanup(func() {
		if p.Process.Running() {
			_ = p.Process.Stop()
		}
	})
	if _, err := p.WaitServing(ctx, off); err != nil {
		t.Fatal(err)
	}
	return s.dialKMS(t, p.Socket, "keyshare")
}

// waitKMS polls Status over the socket until cond holds.
func waitKMS(t *testing.T, ctx context.Context, c kmsservice.Service, what string, cond func(*kmsservice.StatusResponse) bool) *kmsservice.StatusResponse {
	t.Helper()
	var st *kmsservice.StatusResponse
	err := harness.Poll(ctx, "kms status "+what, func() (bool, error) {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		var err error
		st, err = c.Status(sctx)
		if err != nil {
			return false, err
		}
		if cond(st) {
			return true, nil
		}
		return false, errors.New("healthz " + st.Healthz + ", key_id " + st.KeyID)
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// need fails a step whose prerequisites (a plugin serving on host A)
// failed.
func (s *kmsStory) need(t *testing.T) {
	t.Helper()
	if s.a == nil || s.ka == nil {
		t.Fatal("plugin a is not serving: step 01 failed")
	}
}

func kmsOK(st *kmsservice.StatusResponse) bool { return st.Healthz == "ok" && st.Version == "v2" }

func healthz(prefix string) func(*kmsservice.StatusResponse) bool {
	return func(st *kmsservice.StatusResponse) bool { return strings.HasPrefix(st.Healthz, prefix) }
}

// 1. From nothing: setup enables transit, makes the key and the policy
// (twice: nothing changes the second time), a token for host A is written
// 0600, and A's plugin serves with Status ok.
func (s *kmsStory) provision(t *testing.T) {
	ctx := scenarioCtx(t, 2*time.Minute)
	var err error
	s.a, err = s.topo.NewKMSPlugin(s.bin, "a", topology.KMSHostA, topology.KMSPluginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.topo.KMSAdmin(ctx, s.bin, s.a.Config, "vault", "setup")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Stdout, "enabled transit at transit/") || !strings.Contains(res.Stdout, "created transit key transit/kubernetes") {
		t.Fatalf("first setup:\n%s", res.Stdout)
	}
	res, err = s.topo.KMSAdmin(ctx, s.bin, s.a.Config, "vault", "setup")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Stdout, "transit already enabled") || !strings.Contains(res.Stdout, "exists (version 1)") {
		t.Fatalf("second setup is not a no-op:\n%s", res.Stdout)
	}
	res, err = s.topo.KMSAdmin(ctx, s.bin, s.a.Config, "token", "create", "--host", topology.KMSHostA, "--out", s.a.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(s.a.TokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v, want mode 0600", fi, err)
	}
	s.rememberToken(t, s.a)
	if !strings.Contains(res.Stdout, "bound to "+topology.KMSHostA+"/32") {
		t.Fatalf("token create:\n%s", res.Stdout)
	}
	res, err = s.topo.KMSAdmin(ctx, s.bin, s.a.Config, "token", "create", "--host", topology.KMSHostA, "--out", s.a.TokenFile)
	if err == nil || !strings.Contains(res.Stderr, "token rotate") {
		t.Fatalf("second token create over the file: %v\n%s", err, res.Stderr)
	}

	start := time.Now()
	s.ka = s.startPlugin(t, ctx, s.a)
	st := waitKMS(t, ctx, s.ka, "ok", kmsOK)
	s.timing(t, "kmsplugin start to Status ok (real vault)", time.Since(start))
	if !regexp.MustCompile(`^vault-transit:transit/kubernetes:v1:\d+$`).MatchString(st.KeyID) {
		t.Fatalf("key_id %q", st.KeyID)
	}
	s.keyIDs = append(s.keyIDs, st.KeyID)
	fi, err := os.Lstat(s.a.Socket)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v (%v), want a 0600 socket", fi, err)
	}
}

// 2. The apiserver's KMS v2 client: Encrypt gives a vault:v1: ciphertext
// with Status's key_id, Decrypt gives the seed back, and the apiserver's
// envelope transformer stores a value a cold reader reads back.
func (s *kmsStory) roundTrip(t *testing.T) {
	s.need(t)
	ctx := scenarioCtx(t, time.Minute)
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	s.secret("seed before rotation", seed)
	enc, err := s.ka.Encrypt(ctx, "e2e-1", seed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(enc.Ciphertext, []byte("vault:v1:")) || enc.KeyID != s.keyIDs[0] || len(enc.Ciphertext) > 1024 {
		t.Fatalf("encrypt: %d bytes, prefix %q, key_id %q; want vault:v1: and %s", len(enc.Ciphertext), enc.Ciphertext[:min(9, len(enc.Ciphertext))], enc.KeyID, s.keyIDs[0])
	}
	s.secret("ciphertext before rotation", enc.Ciphertext)
	got, err := s.ka.Decrypt(ctx, "e2e-2", &kmsservice.DecryptRequest{Ciphertext: enc.Ciphertext, KeyID: enc.KeyID})
	if err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("decrypt: %v", err)
	}
	s.old, s.oldSeed = enc, seed

	tr, obj, cacheKey, err := kmsv2.GenerateTransformer(ctx, "e2e-3", s.ka, true)
	if err != nil {
		t.Fatal(err)
	}
	state := kmsv2.State{Transformer: tr, EncryptedObjectKeyID: obj.KeyID, EncryptedObjectEncryptedDEKSource: obj.EncryptedDEKSource,
		EncryptedObjectAnnotations: obj.Annotations, EncryptedObjectEncryptedDEKSourceType: obj.EncryptedDEKSourceType,
		UID: "e2e-3", ExpirationTimestamp: time.Now().Add(time.Hour), CacheKey: cacheKey, KMSProviderName: "keyshare"}
	s.stateFunc = func() (kmsv2.State, error) { return state, nil }
	s.envSecret = []byte("e2e secret value 5b1d0c")
	s.secret("secret value", s.envSecret)
	dctx := value.DefaultContext("/registry/secrets/default/e2e")
	s.envelope, err = kmsv2.NewEnvelopeTransformer(s.ka, "keyshare", s.stateFunc, "apiserver-a").TransformToStorage(ctx, s.envSecret, dctx)
	if err != nil {
		t.Fatal(err)
	}
	back, _, err := kmsv2.NewEnvelopeTransformer(s.ka, "keyshare", s.stateFunc, "apiserver-cold").TransformFromStorage(ctx, s.envelope, dctx)
	if err != nil || !bytes.Equal(back, s.envSecret) {
		t.Fatalf("envelope read back: %v", err)
	}
}

// 3. key rotate: Status reports a new key_id, Encrypt uses it (vault:v2:),
// and the ciphertexts and the stored value from before still decrypt.
func (s *kmsStory) keyRotate(t *testing.T) {
	s.need(t)
	if s.old == nil {
		t.Fatal("no ciphertext from step 02")
	}
	ctx := scenarioCtx(t, time.Minute)
	res, err := s.topo.KMSAdmin(ctx, s.bin, s.a.Config, "key", "rotate")
	if err != nil {
		t.Fatal(err)
	}
	st := waitKMS(t, ctx, s.ka, "a new key_id", func(st *kmsservice.StatusResponse) bool { return kmsOK(st) && st.KeyID != s.keyIDs[0] })
	if !strings.Contains(res.Stdout, "key_id "+st.KeyID) || !strings.Contains(st.KeyID, ":v2:") {
		t.Fatalf("status key_id %s; key rotate said:\n%s", st.KeyID, res.Stdout)
	}
	s.keyIDs = append(s.keyIDs, st.KeyID)
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	s.secret("seed after rotation", seed)
	enc, err := s.ka.Encrypt(ctx, "e2e-4", seed)
	if err != nil || enc.KeyID != st.KeyID || !bytes.HasPrefix(enc.Ciphertext, []byte("vault:v2:")) {
		t.Fatalf("encrypt after rotation: key_id %v, err %v", enc, err)
	}
	got, err := s.ka.Decrypt(ctx, "e2e-5", &kmsservice.DecryptRequest{Ciphertext: s.old.Ciphertext, KeyID: s.old.KeyID})
	if err != nil || !bytes.Equal(got, s.oldSeed) {
		t.Fatalf("old ciphertext after rotation: %v", err)
	}
	dctx := value.DefaultContext("/registry/secrets/default/e2e")
	back, _, err := kmsv2.NewEnvelopeTransformer(s.ka, "keyshare", s.stateFunc, "apiserver-cold-2").TransformFromStorage(ctx, s.envelope, dctx)
	if err != nil || !bytes.Equal(back, s.envSecret) {
		t.Fatalf("stored value after rotation: %v", err)
	}
}

// 4. Host B's plugin given host A's (valid, live) token: Vault refuses it
// from B's address and B says so; a token for B, swapped in without a
// restart, works.
func (s *kmsStory) otherAddress(t *testing.T) {
	s.need(t)
	ctx := scenarioCtx(t, 2*time.Minute)
	b, err := s.topo.NewKMSPlugin(s.bin, "b", topology.KMSHostB, topology.KMSPluginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tokA, err := os.ReadFile(s.a.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.TokenFile, tokA, 0o600); err != nil {
		t.Fatal(err)
	}
	kb := s.startPlugin(t, ctx, b)
	waitKMS(t, ctx, kb, "refused", healthz("token revoked or not allowed from "+topology.KMSHostB))
	if _, err := kb.Encrypt(ctx, "e2e-6", []byte("0123456789abcdef")); err == nil {
		t.Fatal("encrypt with another host's token succeeded")
	}
	// A is unaffected: the token works from A's address.
	waitKMS(t, ctx, s.ka, "ok", kmsOK)

	pid := b.Process.PID()
	if _, err := s.topo.KMSAdmin(ctx, s.bin, b.Config, "token", "rotate", "--host", topology.KMSHostB, "--out", b.TokenFile, "--grace", "0s"); err != nil {
		t.Fatal(err)
	}
	s.rememberToken(t, b)
	waitKMS(t, ctx, kb, "ok with its own token", kmsOK)
	if b.Process.PID() != pid {
		t.Fatal("plugin b was restarted")
	}
	if err := b.Process.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(b.Socket); !os.IsNotExist(err) {
		t.Fatalf("socket of b left after a graceful stop: %v", err)
	}
	waitKMS(t, ctx, s.ka, "ok after b stopped", kmsOK) // A's token was not touched by B's rotation
}

// 5. Revoke A's token by accessor: Status says why, Encrypt fails; a new
// token file (token rotate) recovers A without a restart.
func (s *kmsStory) revoke(t *testing.T) {
	s.need(t)
	ctx := scenarioCtx(t, 2*time.Minute)
	res, err := s.topo.KMSAdmin(ctx, s.bin, s.a.Config, "token", "list")
	if err != nil {
		t.Fatal(err)
	}
	var acc string
	for _, l := range strings.Split(res.Stdout, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == topology.KMSHostA {
			acc = f[1]
		}
	}
	if acc == "" || !strings.Contains(res.Stdout, topology.KMSHostB) {
		t.Fatalf("token list has no token for %s and %s:\n%s", topology.KMSHostA, topology.KMSHostB, res.Stdout)
	}
	if _, err := s.topo.KMSAdmin(ctx, s.bin, s.a.Config, "token", "revoke", "--accessor", acc); err != nil {
		t.Fatal(err)
	}
	waitKMS(t, ctx, s.ka, "revoked", healthz("token revoked or not allowed from "+topology.KMSHostA))
	if _, err := s.ka.Encrypt(ctx, "e2e-7", []byte("0123456789abcdef")); err == nil {
		t.Fatal("encrypt with a revoked token succeeded")
	}
	pid := s.a.Process.PID()
	off := topology.LogOffset(s.a.Process)
	start := time.Now()
	res, err = s.topo.KMSAdmin(ctx, s.bin, s.a.Config, "token", "rotate", "--host", topology.KMSHostA, "--out", s.a.TokenFile, "--grace", "0s")
	if err != nil {
		t.Fatal(err)
	}
	s.rememberToken(t, s.a)
	waitKMS(t, ctx, s.ka, "ok with the new token", kmsOK)
	s.timing(t, "new token file to Status ok", time.Since(start))
	if s.a.Process.PID() != pid {
		t.Fatal("plugin a was restarted")
	}
	m := regexp.MustCompile(`accessor (\S+),`).FindStringSubmatch(res.Stdout)
	if m == nil || m[1] == acc {
		t.Fatalf("token rotate printed no new accessor:\n%s", res.Stdout)
	}
	if _, err := topology.WaitLog(ctx, s.a.Process, off, map[string]string{"msg": "vault token loaded", "accessor": m[1]}); err != nil {
		t.Fatal(err)
	}
}

// 6. The whole Vault cluster restarts while the coordinator is stopped:
// it comes back sealed and the plugin says "vault is sealed". Then keyshare
// unseals it and the plugin recovers by itself.
func (s *kmsStory) sealed(t *testing.T) {
	s.need(t)
	if s.old == nil {
		t.Fatal("no ciphertext from step 02")
	}
	ctx := scenarioCtx(t, 3*time.Minute)
	if err := s.topo.Coordinator.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, n := range s.topo.Vault.Nodes() {
		restart(t, n)
	}
	for _, n := range s.topo.Vault.Nodes() {
		if err := n.WaitAPI(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st := waitKMS(t, ctx, s.ka, "sealed", healthz("vault is sealed"))
	t.Logf("status while sealed: %q", st.Healthz)
	if _, err := s.ka.Encrypt(ctx, "e2e-8", []byte("0123456789abcdef")); err == nil {
		t.Fatal("encrypt with every node sealed succeeded")
	}
	start := time.Now()
	if err := s.topo.StartCoordinator(); err != nil {
		t.Fatal(err)
	}
	waitKMS(t, ctx, s.ka, "ok after keyshare unsealed vault", kmsOK)
	s.timing(t, "coordinator start to plugin Status ok (3 sealed nodes)", time.Since(start))
	got, err := s.ka.Decrypt(ctx, "e2e-9", &kmsservice.DecryptRequest{Ciphertext: s.old.Ciphertext, KeyID: s.old.KeyID})
	if err != nil || !bytes.Equal(got, s.oldSeed) {
		t.Fatalf("decrypt after recovery: %v", err)
	}
	s.waitAllUnsealed(t, ctx)
}

// 7. Each standby in turn stopped under load: nothing fails, Status stays
// ok, whichever node the plugin was using.
func (s *kmsStory) oneNodeDown(t *testing.T) {
	s.need(t)
	ctx := scenarioCtx(t, 3*time.Minute)
	seed := []byte("one-node-down-seed-0123456789abc")
	load := func(n int) (fails int, first error) {
		for range n {
			enc, err := s.ka.Encrypt(ctx, "e2e-down", seed)
			if err == nil {
				var got []byte
				got, err = s.ka.Decrypt(ctx, "e2e-down", &kmsservice.DecryptRequest{Ciphertext: enc.Ciphertext, KeyID: enc.KeyID})
				if err == nil && !bytes.Equal(got, seed) {
					err = errors.New("decrypt returned another seed")
				}
			}
			if err != nil {
				fails++
				if first == nil {
					first = err
				}
			}
		}
		return fails, first
	}
	standbys := 0
	for _, n := range s.topo.Vault.Nodes() {
		// A settled cluster first (step 6 restarted every node).
		s.settle(t, ctx)
		if leader, err := s.topo.Vault.WaitActive(ctx); err != nil || leader == n {
			continue
		}
		standbys++
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		if f, err := load(50); f != 0 {
			t.Fatalf("%d of 50 round trips failed with standby %s down; first: %v", f, n.Name, err)
		}
		waitKMS(t, ctx, s.ka, "ok with "+n.Name+" down", kmsOK)
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if standbys != 2 {
		t.Fatalf("stopped %d standbys, want 2", standbys)
	}
	// A node that rejoins can start a raft election; the next step starts
	// from a settled cluster again.
	s.settle(t, ctx)
}

// settle waits until every node is unsealed, a healthy raft voter, and has
// applied the latest write: the leader is settled.
func (s *kmsStory) settle(t *testing.T, ctx context.Context) {
	t.Helper()
	s.settleVault(t, ctx)
	waitKMS(t, ctx, s.ka, "ok with every node back", kmsOK)
}

// 8. Host C logs in with its TLS certificate through Vault's cert auth
// method instead of a token file; its token revoked, it logs in again by
// itself. The same certificate from another address is refused.
func (s *kmsStory) certAuth(t *testing.T) {
	ctx := scenarioCtx(t, 2*time.Minute)
	dir := s.parent.TempDir() // read at every TLS handshake: lives as long as the plugins
	hostCA, err := devpki.NewCA("hosts.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := hostCA.IssueID("host", "c", net.ParseIP(topology.KMSHostC))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := leaf.WriteFiles(dir, "host-c")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "hosts-ca.crt")
	if err := hostCA.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	o := topology.KMSPluginOptions{CertFile: certFile, KeyFile: keyFile, CertRole: "kms-c"}
	c, err := s.topo.NewKMSPlugin(s.bin, "c", topology.KMSHostC, o)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.topo.KMSAdmin(ctx, s.bin, c.Config, "cert-role", "--host", topology.KMSHostC, "--ca", caFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Stdout, "log in from "+topology.KMSHostC+"/32 only") {
		t.Fatalf("cert-role:\n%s", res.Stdout)
	}
	kc := s.startPlugin(t, ctx, c)
	waitKMS(t, ctx, kc, "ok through cert login", kmsOK)
	first, err := topology.FindLog(c.Process, 0, map[string]string{"msg": "vault login ok"})
	if err != nil || len(first) == 0 {
		t.Fatalf("no login logged: %v", err)
	}
	acc := first[0].Get("accessor")
	off := topology.LogOffset(c.Process)
	if _, err := s.topo.KMSAdmin(ctx, s.bin, c.Config, "token", "revoke", "--accessor", acc); err != nil {
		t.Fatal(err)
	}
	e, err := topology.WaitLog(ctx, c.Process, off, map[string]string{"msg": "vault login ok"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Get("accessor") == acc || e.Get("accessor") == "" {
		t.Fatalf("logged in again with accessor %q, the revoked one was %q", e.Get("accessor"), acc)
	}
	waitKMS(t, ctx, kc, "ok after logging in again", kmsOK)
	if _, err := kc.Encrypt(ctx, "e2e-10", []byte("0123456789abcdef")); err != nil {
		t.Fatal(err)
	}

	// The same certificate and role from another address: refused.
	d, err := s.topo.NewKMSPlugin(s.bin, "d", topology.KMSHostD, o)
	if err != nil {
		t.Fatal(err)
	}
	kd := s.startPlugin(t, ctx, d)
	st := waitKMS(t, ctx, kd, "refused", healthz("no usable vault token: vault cert login"))
	if !strings.Contains(st.Healthz, "from "+topology.KMSHostD) {
		t.Fatalf("healthz %q does not name the host", st.Healthz)
	}
	for _, p := range []*topology.KMSPlugin{c, d} {
		if err := p.Process.Stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// 9. No token, plaintext, seed, stored value or ciphertext in any log or
// transcript of the run (the plugin's included).
func (s *kmsStory) noLeaks(t *testing.T) {
	files, secrets := s.scanSecrets(t)
	logA, err := os.ReadFile(s.a.Process.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(logA, []byte("vault:v")) {
		t.Error("the plugin's log holds a transit ciphertext")
	}
	if bytes.Contains(logA, []byte("DATA RACE")) {
		t.Error("the plugin (built with -race) reported a data race")
	}
	if len(logA) < 1000 || files < 5 {
		t.Fatalf("scanned %d files, the plugin's log is %d bytes: too little to mean anything", files, len(logA))
	}
	t.Logf("scanned %d files for %d secrets", files, secrets)
}
