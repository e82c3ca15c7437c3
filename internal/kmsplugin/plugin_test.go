package kmsplugin

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/metrictest"

	"k8s.io/apiserver/pkg/storage/value"
	"k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2"
	kmsservice "k8s.io/kms/pkg/service"

	"github.com/keyshare/keyshare/internal/confload"
)

// TestThroughSocketWithKubernetesClient drives the plugin over its unix
// socket with the apiserver's own KMS v2 client: Status, Encrypt and
// Decrypt, then the apiserver's envelope transformer writing and reading a
// value (a cold transformer reads it back through Decrypt).
func TestThroughSocketWithKubernetesClient(t *testing.T) {
	r := newRig(t, 1)
	r.issue(t, pluginIP)
	p := r.start(t)
	ctx := testCtx(t, 20*time.Second)

	st := waitStatus(t, p.client, 5*time.Second, "ok", isOK)
	if st.Version != "v2" || st.KeyID != r.currentKeyID(t) {
		t.Fatalf("status = %+v, want version v2 and key_id %s", st, r.currentKeyID(t))
	}
	if _, err := kmsv2.ValidateKeyID(st.KeyID); err != nil {
		t.Fatalf("key_id %q refused by the apiserver's check: %v", st.KeyID, err)
	}

	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	enc, err := p.client.Encrypt(ctx, "uid-1", seed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(enc.Ciphertext, []byte("vault:v1:")) || enc.KeyID != st.KeyID || len(enc.Ciphertext) > 1024 {
		t.Fatalf("encrypt = %q key_id %q, want a vault:v1: ciphertext under 1 KiB with key_id %q", enc.Ciphertext, enc.KeyID, st.KeyID)
	}
	got, err := p.client.Decrypt(ctx, "uid-2", &kmsservice.DecryptRequest{Ciphertext: enc.Ciphertext, KeyID: enc.KeyID})
	if err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("decrypt = %x, %v; want the seed back", got, err)
	}

	// A ciphertext of the same transit key made for another use (no
	// associated data) is refused.
	foreign, _, err := r.admin.Vault.Encrypt(ctx, "transit", "kubernetes", seed, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.Decrypt(ctx, "uid-3", &kmsservice.DecryptRequest{Ciphertext: []byte(foreign), KeyID: enc.KeyID}); err == nil {
		t.Fatal("decrypt of a transit ciphertext made without the plugin's associated data succeeded")
	}

	// The apiserver's envelope: seed wrapped once, value sealed locally.
	tr, obj, cacheKey, err := kmsv2.GenerateTransformer(ctx, "uid-4", p.client, true)
	if err != nil {
		t.Fatal(err)
	}
	state := kmsv2.State{Transformer: tr, EncryptedObjectKeyID: obj.KeyID, EncryptedObjectEncryptedDEKSource: obj.EncryptedDEKSource,
		EncryptedObjectAnnotations: obj.Annotations, EncryptedObjectEncryptedDEKSourceType: obj.EncryptedDEKSourceType,
		UID: "uid-4", ExpirationTimestamp: time.Now().Add(time.Hour), CacheKey: cacheKey, KMSProviderName: "keyshare"}
	stateFunc := func() (kmsv2.State, error) { return state, nil }
	writer := kmsv2.NewEnvelopeTransformer(p.client, "keyshare", stateFunc, "apiserver-1")
	secret := []byte("secret value 7f3a9c")
	dctx := value.DefaultContext("/registry/secrets/default/s1")
	stored, err := writer.TransformToStorage(ctx, secret, dctx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, secret) {
		t.Fatal("stored value holds the plaintext")
	}
	decryptsBefore := r.fakes[0].TransitStats().Decrypts
	reader := kmsv2.NewEnvelopeTransformer(p.client, "keyshare", stateFunc, "apiserver-2") // cold cache
	back, stale, err := reader.TransformFromStorage(ctx, stored, dctx)
	if err != nil || !bytes.Equal(back, secret) || stale {
		t.Fatalf("read back %q stale=%v err=%v", back, stale, err)
	}
	if n := r.fakes[0].TransitStats().Decrypts - decryptsBefore; n < 1 {
		t.Fatalf("the cold reader made %d transit decrypts, want at least 1", n)
	}
	leakCheck(t, r, [][]byte{seed, secret}, r.token(t))
}

// TestKeyIDChangesExactlyOnRotation: the key_id stays while the key does,
// changes on rotation, Encrypt reports the version it used, old
// ciphertexts still decrypt, and a key deleted and made again never gets an
// old key_id back.
func TestKeyIDChangesExactlyOnRotation(t *testing.T) {
	r := newRig(t, 1)
	clock := time.Now().Add(-time.Hour)
	setClock := func(at time.Time) { r.fakes[0].SetTransitClock(func() time.Time { return at }) }
	setClock(clock)
	r.fakes[0].DeleteTransitKey("transit", "kubernetes")
	if err := r.admin.Setup(testCtx(t, 5*time.Second)); err != nil { // made again at the fake's clock
		t.Fatal(err)
	}
	r.issue(t, pluginIP)
	p := r.start(t)
	ctx := testCtx(t, 30*time.Second)
	k1 := waitStatus(t, p.client, 5*time.Second, "ok", isOK).KeyID
	seed := []byte("0123456789abcdef0123456789abcdef")
	e1, err := p.client.Encrypt(ctx, "u", seed)
	if err != nil || e1.KeyID != k1 {
		t.Fatalf("encrypt key_id %v (%v), want %s", e1, err, k1)
	}
	// No rotation: several checks later, the same key_id.
	for range 3 {
		p.d.Prober.Check(ctx)
	}
	if st, _ := p.client.Status(ctx); st.KeyID != k1 {
		t.Fatalf("key_id changed without a rotation: %s -> %s", k1, st.KeyID)
	}

	setClock(clock.Add(time.Minute))
	if _, err := r.admin.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	k2 := waitStatus(t, p.client, 5*time.Second, "a new key_id", func(st *kmsservice.StatusResponse) bool { return st.KeyID != k1 }).KeyID
	if k2 != r.currentKeyID(t) {
		t.Fatalf("status key_id %s, want %s", k2, r.currentKeyID(t))
	}
	e2, err := p.client.Encrypt(ctx, "u", seed)
	if err != nil || e2.KeyID != k2 || !bytes.HasPrefix(e2.Ciphertext, []byte("vault:v2:")) {
		t.Fatalf("encrypt after rotation: %q key_id %q (%v), want vault:v2: and %s", e2.Ciphertext, e2.KeyID, err, k2)
	}
	if got, err := p.client.Decrypt(ctx, "u", &kmsservice.DecryptRequest{Ciphertext: e1.Ciphertext, KeyID: e1.KeyID}); err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("old ciphertext after rotation: %v", err)
	}

	// Deleted and made again: version 1 again, but never key_id k1.
	setClock(clock.Add(2 * time.Minute))
	r.fakes[0].DeleteTransitKey("transit", "kubernetes")
	if err := r.admin.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	k3 := waitStatus(t, p.client, 5*time.Second, "ok with a new key", func(st *kmsservice.StatusResponse) bool { return isOK(st) && st.KeyID != k2 }).KeyID
	if k3 == k1 || k3 == k2 || !strings.Contains(k3, ":v1:") {
		t.Fatalf("re-created key has key_id %s; earlier %s and %s", k3, k1, k2)
	}
}

// TestStatusReasons: every failure an operator can fix is named, and the
// plugin recovers by itself when it is fixed.
func TestStatusReasons(t *testing.T) {
	type tc struct {
		name   string
		nodes  int
		breaks func(r *rig)
		want   string
		fix    func(t *testing.T, r *rig)
	}
	run := func(t *testing.T, c tc) {
		r := newRig(t, c.nodes)
		r.issue(t, pluginIP)
		p := r.start(t)
		waitStatus(t, p.client, 5*time.Second, "ok", isOK)
		c.breaks(r)
		st := waitStatus(t, p.client, 5*time.Second, "not ok: "+c.want, healthzIs(c.want))
		if st.Version != "v2" {
			t.Fatalf("version %q", st.Version)
		}
		if _, err := p.client.Encrypt(testCtx(t, 5*time.Second), "u", []byte("seed")); err == nil && c.want != "ok" {
			t.Fatal("encrypt succeeded while status is not ok")
		}
		resp, err := http.Get("http://" + p.d.MetricsAddr + "/healthz")
		if err != nil || resp.StatusCode != 503 {
			t.Fatalf("/healthz = %v %v, want 503", resp, err)
		}
		resp.Body.Close()
		c.fix(t, r)
		waitStatus(t, p.client, 5*time.Second, "ok again", isOK)
	}
	for _, c := range []tc{
		{name: "fail/sealed", nodes: 1, want: "vault is sealed",
			breaks: func(r *rig) { r.fakes[0].Seal() }, fix: func(_ *testing.T, r *rig) { r.fakes[0].Unseal() }},
		{name: "fail/all-sealed-or-down", nodes: 3, want: "vault is sealed",
			breaks: func(r *rig) { r.fakes[0].Stop(); r.fakes[1].Seal(); r.fakes[2].Seal() },
			fix:    func(_ *testing.T, r *rig) { r.fakes[2].Unseal() }},
		{name: "fail/unreachable", nodes: 2, want: "no vault node reachable",
			breaks: func(r *rig) { r.fakes[0].Stop(); r.fakes[1].Stop() },
			fix: func(t *testing.T, r *rig) {
				if err := r.fakes[1].Start(); err != nil {
					t.Fatal(err)
				}
				r.fakes[1].Unseal()
			}},
		{name: "fail/revoked", nodes: 1, want: "token revoked or not allowed from " + pluginIP,
			breaks: func(r *rig) { r.fakes[0].RevokeAll() },
			fix: func(t *testing.T, r *rig) {
				if _, err := r.admin.RotateToken(testCtx(t, 5*time.Second), mustAddr(pluginIP), r.cfg.Vault.TokenFile, time.Hour, 0); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "fail/key-missing", nodes: 1, want: "transit key missing",
			breaks: func(r *rig) { r.fakes[0].DeleteTransitKey("transit", "kubernetes") },
			fix: func(t *testing.T, r *rig) {
				if err := r.admin.Setup(testCtx(t, 5*time.Second)); err != nil {
					t.Fatal(err)
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

// TestTokenBoundToAnotherAddressRefused: a token issued for another host
// is refused by Vault from this one, and Status says so.
func TestTokenBoundToAnotherAddressRefused(t *testing.T) {
	r := newRig(t, 1)
	r.issue(t, otherIP)
	p := r.start(t)
	waitStatus(t, p.client, 5*time.Second, "refused", healthzIs("token revoked or not allowed from "+pluginIP))
	if r.fakes[0].TransitStats().Denied == 0 {
		t.Fatal("the fake never denied the token")
	}
	// The right token, swapped in without a restart, works.
	if _, err := r.admin.RotateToken(testCtx(t, 5*time.Second), mustAddr(pluginIP), r.cfg.Vault.TokenFile, time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, p.client, 5*time.Second, "ok", isOK)
}

// TestEnvironmentHasNoEffect: the Vault API's environment variables change
// nothing, and KEYSHARE_VAULT_* is refused at load.
func TestEnvironmentHasNoEffect(t *testing.T) {
	r := newRig(t, 1)
	r.issue(t, pluginIP)
	t.Setenv("VAULT_ADDR", "https://127.0.0.1:1")
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	t.Setenv("VAULT_CACERT", "/nonexistent/ca.pem")
	t.Setenv("VAULT_CAPATH", "/nonexistent")
	t.Setenv("VAULT_TLS_SERVER_NAME", "elsewhere.example")
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	t.Setenv("https_proxy", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", "hvs.not-this-one")
	p := r.start(t)
	before := r.fakes[0].TransitStats().Encrypts
	waitStatus(t, p.client, 5*time.Second, "ok", isOK)
	if _, err := p.client.Encrypt(testCtx(t, 5*time.Second), "u", []byte("seed")); err != nil {
		t.Fatal(err)
	}
	if r.fakes[0].TransitStats().Encrypts == before {
		t.Fatal("the configured vault node saw no encrypt")
	}

	// Pinned CA with VAULT_SKIP_VERIFY set: a node with a certificate from
	// another CA is still refused.
	other := newRig(t, 1)
	c := r.cfg
	c.Vault.Nodes = []confload.VaultNode{{Name: "elsewhere", Address: other.fakes[0].URL()}}
	vc, err := NewVaultClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	if _, err := vc.LookupSelf(testCtx(t, 5*time.Second)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("call to a node with an unknown CA: %v, want a certificate error", err)
	}

	t.Setenv("KEYSHARE_VAULT_CA_FILE", "/tmp/evil.pem")
	if _, err := Load(writeConfig(t, r.cfg), nil); err == nil || !strings.Contains(err.Error(), "KEYSHARE_VAULT_CA_FILE") {
		t.Fatalf("load with KEYSHARE_VAULT_CA_FILE set: %v, want a refusal naming it", err)
	}
}

// TestFailover: one node down, then another sealed: the plugin goes on
// through the last one.
func TestFailover(t *testing.T) {
	r := newRig(t, 3)
	r.issue(t, pluginIP)
	p := r.start(t)
	ctx := testCtx(t, 20*time.Second)
	waitStatus(t, p.client, 5*time.Second, "ok", isOK)
	seed := []byte("seed-seed-seed-seed-seed-seed-32")
	e, err := p.client.Encrypt(ctx, "u", seed)
	if err != nil {
		t.Fatal(err)
	}
	r.fakes[0].Stop()
	r.fakes[1].Seal()
	for i := range 5 {
		if _, err := p.client.Encrypt(ctx, "u", seed); err != nil {
			t.Fatalf("encrypt %d with one node down and one sealed: %v", i, err)
		}
		if got, err := p.client.Decrypt(ctx, "u", &kmsservice.DecryptRequest{Ciphertext: e.Ciphertext, KeyID: e.KeyID}); err != nil || !bytes.Equal(got, seed) {
			t.Fatalf("decrypt %d: %v", i, err)
		}
	}
	p.d.Prober.Check(ctx)
	if st, _ := p.client.Status(ctx); !isOK(st) {
		t.Fatalf("status with one node left: %q", st.Healthz)
	}
}

// TestTokenFile: a token file others may read is refused with the fix; a
// fixed file is picked up without a restart.
func TestTokenFile(t *testing.T) {
	r := newRig(t, 1)
	r.issue(t, pluginIP)
	if err := osChmod(r.cfg.Vault.TokenFile, 0o644); err != nil {
		t.Fatal(err)
	}
	p := r.start(t)
	st := waitStatus(t, p.client, 5*time.Second, "refused file", healthzIs("no usable vault token"))
	if !strings.Contains(st.Healthz, "chmod 600") {
		t.Fatalf("healthz %q does not say how to fix the mode", st.Healthz)
	}
	if err := osChmod(r.cfg.Vault.TokenFile, 0o600); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, p.client, 5*time.Second, "ok", isOK)
}

// TestRenewalBeforeHalfTTL: a periodic token with a short period is
// renewed before half of it passes, so it outlives its first period.
func TestRenewalBeforeHalfTTL(t *testing.T) {
	r := newRig(t, 1)
	_ = osRemove(r.cfg.Vault.TokenFile)
	if _, err := r.admin.CreateToken(testCtx(t, 5*time.Second), mustAddr(pluginIP), r.cfg.Vault.TokenFile, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	p := r.start(t)
	waitStatus(t, p.client, 5*time.Second, "ok", isOK)
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if metrictest.Value(t, p.d.Metrics.Renewals.WithLabelValues("ok")) >= 3 && time.Since(start) > 4*time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := metrictest.Value(t, p.d.Metrics.Renewals.WithLabelValues("ok")); n < 3 {
		t.Fatalf("%v renewals in %s, want at least 3 for a 3 s period", n, time.Since(start))
	}
	// Past its first period, the token still works.
	p.d.Prober.Check(testCtx(t, 5*time.Second))
	if ok, reason := p.d.Service.Healthy(); !ok {
		t.Fatalf("not healthy after renewals: %s", reason)
	}
	if !strings.Contains(r.logs.String(), `"msg":"vault token renewed"`) {
		t.Fatal("no renewal logged")
	}
}

// leakCheck: no plaintext, seed, ciphertext or token in the plugin's log,
// in any common encoding.
func leakCheck(t *testing.T, r *rig, secrets [][]byte, token string) {
	t.Helper()
	logs := r.logs.String()
	if logs == "" {
		t.Fatal("empty log")
	}
	forms := []string{token}
	for _, s := range secrets {
		forms = append(forms, string(s), hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s), base64.RawStdEncoding.EncodeToString(s))
	}
	for _, f := range forms {
		if f != "" && strings.Contains(logs, f) {
			t.Errorf("the plugin's log holds a secret (%d bytes form)", len(f))
		}
	}
	if strings.Contains(logs, "vault:v") {
		t.Error("the plugin's log holds a transit ciphertext")
	}
}

// TestCallsGoToTheActiveNode: with the standbys listed first, the plugin's
// Encrypt and Decrypt calls go to the active node (a standby would forward
// each one: a second hop), and follow it when another node becomes active.
func TestCallsGoToTheActiveNode(t *testing.T) {
	r := newRig(t, 3)
	r.fakes[0].SetStandby(true)
	r.fakes[1].SetStandby(true)
	// No background check after the first: each steer below is the test's
	// own, so none started before a switch can steer back after it.
	r.cfg.Status.Interval, r.cfg.Status.MaxAge = time.Hour, 2*time.Hour
	r.issue(t, pluginIP)
	p := r.start(t)
	ctx := testCtx(t, 20*time.Second)
	waitStatus(t, p.client, 5*time.Second, "ok", isOK)
	seed := []byte("seed-seed-seed-seed-seed-seed-32")
	calls := func(active int) {
		t.Helper()
		p.d.Prober.Check(ctx) // steers, as every background check does
		before := []int{r.fakes[0].APICalls(), r.fakes[1].APICalls(), r.fakes[2].APICalls()}
		for i := range 5 {
			e, err := p.client.Encrypt(ctx, "u", seed)
			if err != nil {
				t.Fatalf("encrypt %d: %v", i, err)
			}
			if got, err := p.client.Decrypt(ctx, "u", &kmsservice.DecryptRequest{Ciphertext: e.Ciphertext, KeyID: e.KeyID}); err != nil || !bytes.Equal(got, seed) {
				t.Fatalf("decrypt %d: %v", i, err)
			}
		}
		for i, f := range r.fakes {
			// At least the 10 calls at the active node (the token
			// keeper may call too); none at a standby.
			n := f.APICalls() - before[i]
			if i == active && n < 10 || i != active && n != 0 {
				t.Errorf("node %d answered %d of 10 calls; want all at node %d (the active one)", i, n, active)
			}
		}
	}
	calls(2)
	if v := metrictest.Value(t, p.d.Metrics.ActiveNode); v != 1 {
		t.Errorf("keyshare_kms_vault_active_node %v with an active node, want 1", v)
	}
	r.fakes[2].SetStandby(true)
	p.d.Prober.Check(ctx)
	if v := metrictest.Value(t, p.d.Metrics.ActiveNode); v != 0 {
		t.Errorf("keyshare_kms_vault_active_node %v with no active node, want 0", v)
	}
	r.fakes[0].SetStandby(false)
	calls(0)
	if !strings.Contains(r.logs.String(), `"msg":"calls go to the active vault node","node":"`+r.fakes[0].URL()+`"`) {
		t.Errorf("no log line naming the new active node %s:\n%s", r.fakes[0].URL(), r.logs.String())
	}
}
