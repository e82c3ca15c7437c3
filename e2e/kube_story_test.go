//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kmsservice "k8s.io/kms/pkg/service"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/kubeharness"
)

// kubeStory is the whole system end to end: a real kube-apiserver on each
// of two control-plane hosts, writing to a real etcd, encrypting Secrets
// through its own keyshare KMS v2 plugin with the key in the Vault cluster
// that keyshare unseals. Each step is the operator's: write and read
// Secrets, restart things, lose Vault, rotate the key, revoke a token.
type kubeStory struct {
	*kmsRun
	cp   *kubeharness.ControlPlane
	a, b *kubeharness.Host
	// pa and pb are the apiserver's own KMS v2 client on each plugin's
	// socket, for the test to ask Status and unwrap seeds.
	pa, pb kmsservice.Service

	// values (guarded by mu) are Secret name (in namespace story) -> value.
	values map[string][]byte
	keyIDs []string // the key_ids seen, oldest first
	// oldSeed is a seed's ciphertext and key_id from before the rotation.
	oldSeed *kmsservice.DecryptRequest
}

const kubeNS = "story"

func TestKubeStory(t *testing.T) {
	kbins := kubeharness.RequireBinaries(t)
	run, ctx := newKMSRun(t)
	s := &kubeStory{kmsRun: run, values: map[string][]byte{}}
	for _, h := range s.topo.Holders {
		gen, ss, err := h.Export(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.known.Add(gen, ss...)
	}

	start := time.Now()
	cp, err := kubeharness.New(kubeharness.Options{Topo: s.topo, Bins: kbins, PluginBin: s.bin, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			cp.DumpLogs(t.Logf, 30)
		}
		if err := cp.Close(); err != nil {
			t.Errorf("failed to stop the control plane: %v", err)
		}
	})
	s.cp, s.a, s.b = cp, cp.Host("cp-a"), cp.Host("cp-b")
	if err := cp.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	for _, h := range cp.Hosts {
		s.rememberToken(t, h)
		admin, dev := h.APIServer.Tokens()
		s.secret("kube admin token of "+h.Name, []byte(admin))
		s.secret("kube dev token of "+h.Name, []byte(dev))
	}
	if err := cp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s.timing(t, "etcd, 2 plugins and 2 kube-apiservers ready", time.Since(start))
	s.pa, s.pb = s.dialKMS(t, s.a.Plugin.Socket, kubeharness.ProviderName), s.dialKMS(t, s.b.Plugin.Socket, kubeharness.ProviderName)
	cs := s.admin(t, s.a)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubeNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("01_secret_stored_encrypted_both_apiservers_read_it_swapped_tokens_refused", s.encrypted)
	t.Run("02_plugin_restart_then_cold_apiserver_reads_through_vault", s.restarts)
	t.Run("03_vault_restart_sealed_then_keyshare_heals_without_anyone", s.vaultRestart)
	t.Run("04_key_rotation_new_key_id_migration_min_decryption_version", s.rotation)
	t.Run("05_revoked_token_fails_kms_health_new_file_recovers", s.revoked)
	t.Run("06_no_secret_dek_token_or_share_in_any_log", s.noLeaks)
}

// rememberToken adds the Vault token in h's token file to the leak check.
func (s *kubeStory) rememberToken(t *testing.T, h *kubeharness.Host) []byte {
	t.Helper()
	return s.rememberTokenFile(t, "vault token of "+h.Name, h.Plugin.TokenFile)
}

func (s *kubeStory) admin(t *testing.T, h *kubeharness.Host) *kubernetes.Clientset {
	t.Helper()
	cs, err := h.APIServer.Admin()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// need fails a step whose control plane never came up.
func (s *kubeStory) need(t *testing.T) {
	t.Helper()
	if s.cp == nil || s.pa == nil {
		t.Fatal("the control plane is not running")
	}
}

// write creates (or replaces) Secret name in the story namespace through
// h, with a fresh random value, and remembers the value.
func (s *kubeStory) write(ctx context.Context, h *kubeharness.Host, name string) ([]byte, error) {
	v := make([]byte, 16)
	_, _ = rand.Read(v)
	val := []byte("kube-story-" + name + "-" + hex.EncodeToString(v))
	s.secret("secret value "+name, val)
	cs, err := h.APIServer.Admin()
	if err != nil {
		return nil, err
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: kubeNS}, Data: map[string][]byte{"value": val}}
	_, err = cs.CoreV1().Secrets(kubeNS).Create(ctx, sec, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var cur *corev1.Secret
		if cur, err = cs.CoreV1().Secrets(kubeNS).Get(ctx, name, metav1.GetOptions{}); err == nil {
			cur.Data = sec.Data
			_, err = cs.CoreV1().Secrets(kubeNS).Update(ctx, cur, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("write secret %s/%s through %s: %w", kubeNS, name, h.APIServer, err)
	}
	s.mu.Lock()
	s.values[name] = val
	s.mu.Unlock()
	return val, nil
}

func (s *kubeStory) mustWrite(t *testing.T, ctx context.Context, h *kubeharness.Host, name string) []byte {
	t.Helper()
	v, err := s.write(ctx, h, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// read gets Secret name through h.
func read(ctx context.Context, h *kubeharness.Host, name string) ([]byte, error) {
	cs, err := h.APIServer.Admin()
	if err != nil {
		return nil, err
	}
	sec, err := cs.CoreV1().Secrets(kubeNS).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read secret %s/%s through %s: %w", kubeNS, name, h.APIServer, err)
	}
	return sec.Data["value"], nil
}

// readAll reads every Secret written so far through h and compares it
// with what was written.
func (s *kubeStory) readAll(t *testing.T, ctx context.Context, h *kubeharness.Host) int {
	t.Helper()
	s.mu.Lock()
	want := maps.Clone(s.values)
	s.mu.Unlock()
	for name, v := range want {
		got, err := read(ctx, h, name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, v) {
			t.Fatalf("secret %s through %s: value differs from what was written", name, h.APIServer)
		}
	}
	return len(want)
}

// stored reads Secret name raw from etcd and parses its EncryptedObject.
func (s *kubeStory) stored(t *testing.T, ctx context.Context, name string) ([]byte, *kubeharness.Stored) {
	t.Helper()
	raw, err := s.cp.Etcd.Get(ctx, "/registry/secrets/"+kubeNS+"/"+name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kubeharness.ParseStored(raw)
	if err != nil {
		t.Fatalf("secret %s in etcd: %v", name, err)
	}
	return raw, st
}

// unwrap asks h's plugin to decrypt a stored seed, and adds the seed to
// the leak check.
func (s *kubeStory) unwrap(t *testing.T, ctx context.Context, c kmsservice.Service, st *kubeharness.Stored) {
	t.Helper()
	seed, err := c.Decrypt(ctx, "kube-story-unwrap", &kmsservice.DecryptRequest{Ciphertext: st.EncryptedDEKSource, KeyID: st.KeyID, Annotations: st.Annotations})
	if err != nil {
		t.Fatalf("unwrap the seed of key_id %s: %v", st.KeyID, err)
	}
	s.secret("seed of key_id "+st.KeyID, seed)
}

// kmsHealth polls h's /healthz/kms-providers until its status is 200 (ok)
// or not (!ok), with a body containing want, and returns the body.
func kmsHealth(t *testing.T, ctx context.Context, h *kubeharness.Host, ok bool, want string) string {
	t.Helper()
	var body string
	err := harness.Poll(ctx, fmt.Sprintf("%s kms health ok=%v %q", h.APIServer, ok, want), func() (bool, error) {
		code, b, err := h.APIServer.Get(ctx, "/healthz/kms-providers")
		if err != nil {
			return false, err
		}
		body = b
		if (code == http.StatusOK) == ok && strings.Contains(b, want) {
			return true, nil
		}
		return false, fmt.Errorf("%d %s", code, strings.TrimSpace(b))
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// 1. A Secret written through cp-a is stored as k8s:enc:kms:v2:keyshare:
// with the key_id the plugin reports, its value nowhere in etcd's raw
// value; both apiservers read it, cp-b through its own plugin and token.
// RBAC keeps "dev" out. Swapping the two hosts' token files makes Vault
// refuse both, each plugin says so, and swapping back heals both.
func (s *kubeStory) encrypted(t *testing.T) {
	s.need(t)
	ctx := scenarioCtx(t, 3*time.Minute)
	st := waitKMS(t, ctx, s.pa, "ok", kmsOK)
	s.keyIDs = append(s.keyIDs, st.KeyID)
	decB, err := s.b.Decrypts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	val := s.mustWrite(t, ctx, s.a, "db-password")
	raw, stored := s.stored(t, ctx, "db-password")
	if stored.KeyID != st.KeyID {
		t.Fatalf("stored key_id %q, plugin status says %q", stored.KeyID, st.KeyID)
	}
	for _, enc := range []string{string(val), base64.StdEncoding.EncodeToString(val), hex.EncodeToString(val)} {
		if bytes.Contains(raw, []byte(enc)) {
			t.Fatal("the secret's value is readable in etcd's raw value")
		}
	}
	if !bytes.HasPrefix(stored.EncryptedDEKSource, []byte("vault:v1:")) {
		t.Fatalf("the stored seed is not a transit ciphertext of key version 1: %q...", stored.EncryptedDEKSource[:min(9, len(stored.EncryptedDEKSource))])
	}
	t.Logf("etcd holds %q... (%d bytes), key_id %s", raw[:len(kubeharness.StoredPrefix)], len(raw), stored.KeyID)
	s.unwrap(t, ctx, s.pa, stored)
	s.oldSeed = &kmsservice.DecryptRequest{Ciphertext: stored.EncryptedDEKSource, KeyID: stored.KeyID, Annotations: stored.Annotations}
	for _, h := range []*kubeharness.Host{s.a, s.b} {
		got, err := read(ctx, h, "db-password")
		if err != nil || !bytes.Equal(got, val) {
			t.Fatalf("read through %s: %v (value intact: %v)", h.APIServer, err, bytes.Equal(got, val))
		}
	}
	if n, err := s.b.Decrypts(ctx); err != nil || n <= decB {
		t.Fatalf("cp-b's plugin decrypted %v seeds (was %v): cp-b did not read through its own plugin (%v)", n, decB, err)
	}
	dev, err := s.b.APIServer.Dev()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.CoreV1().Secrets(kubeNS).Get(ctx, "db-password", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("dev read a secret RBAC gives it no right to: %v", err)
	}

	// Swap the token files: each token is valid, but bound to the other
	// host's address.
	tokA, tokB := s.rememberToken(t, s.a), s.rememberToken(t, s.b)
	swap := func(ta, tb []byte) {
		t.Helper()
		for p, tok := range map[string][]byte{s.a.Plugin.TokenFile: ta, s.b.Plugin.TokenFile: tb} {
			if err := writeFileAtomic(p, tok); err != nil {
				t.Fatal(err)
			}
		}
	}
	swap(tokB, tokA)
	for _, h := range []struct {
		c  kmsservice.Service
		ip string
	}{{s.pa, kubeharness.HostA}, {s.pb, kubeharness.HostB}} {
		st := waitKMS(t, ctx, h.c, "refused with the other host's token", healthz("token revoked or not allowed from "+h.ip))
		t.Logf("status with the other host's token: %q", st.Healthz)
	}
	swap(tokA, tokB)
	waitKMS(t, ctx, s.pa, "ok with its own token again", kmsOK)
	waitKMS(t, ctx, s.pb, "ok with its own token again", kmsOK)
	kmsHealth(t, ctx, s.a, true, "ok")
	kmsHealth(t, ctx, s.b, true, "ok")
}

// writeFileAtomic replaces a token file the way an operator's tooling
// would: a temporary file in the same folder, then a rename.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// 2. Restart cp-a's plugin: reads and writes go on. Restart cp-a's
// apiserver: its caches are cold, and every Secret still reads, through
// Decrypt calls to Vault.
func (s *kubeStory) restarts(t *testing.T) {
	s.need(t)
	ctx := scenarioCtx(t, 3*time.Minute)
	pid := s.a.Plugin.Process.PID()
	if err := s.a.RestartPlugin(ctx); err != nil {
		t.Fatal(err)
	}
	if s.a.Plugin.Process.PID() == pid {
		t.Fatal("the plugin was not restarted")
	}
	s.mustWrite(t, ctx, s.a, "after-plugin-restart")
	s.readAll(t, ctx, s.a)
	waitKMS(t, ctx, s.pa, "ok after the plugin restart", kmsOK)
	kmsHealth(t, ctx, s.a, true, "ok")

	before, err := s.a.Decrypts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.a.APIServer.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	s.timing(t, "kube-apiserver restart to ready (kms provider healthy)", time.Since(start))
	n := s.readAll(t, ctx, s.a)
	after, err := s.a.Decrypts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("the restarted apiserver read %d secrets with no Decrypt call through its plugin", n)
	}
	t.Logf("cold apiserver read %d secrets with %v Decrypt calls to Vault", n, after-before)
	s.mustWrite(t, ctx, s.a, "after-apiserver-restart")
}

// 3. The whole Vault cluster restarts. With the coordinator held, it
// stays sealed: the plugins say "vault is sealed" and the apiservers'
// /healthz/kms-providers fail with it, while Secrets still read and write
// from the seed the apiservers hold. The coordinator started, keyshare
// unseals Vault with nobody typing, and the plugins and apiservers recover
// by themselves. Then once more with the coordinator running all along:
// time from the Vault restart to a Secret written with KMS working again.
func (s *kubeStory) vaultRestart(t *testing.T) {
	s.need(t)
	ctx := scenarioCtx(t, 5*time.Minute)
	s.requireHealthy(t, ctx)
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
	for _, c := range []kmsservice.Service{s.pa, s.pb} {
		waitKMS(t, ctx, c, "sealed", healthz("vault is sealed"))
	}
	for _, h := range []*kubeharness.Host{s.a, s.b} {
		body := kmsHealth(t, ctx, h, false, "vault is sealed")
		t.Logf("%s /healthz/kms-providers while sealed: %s", h.Name, strings.TrimSpace(body))
	}
	// The apiservers keep their seed for up to 3 minutes after the last
	// good Status: Secrets still read and write. But a Secret under a seed
	// an apiserver has never unwrapped waits for Vault: cp-a cannot read
	// what cp-b writes now.
	s.readAll(t, ctx, s.a)
	val := s.mustWrite(t, ctx, s.b, "while-sealed")
	if got, err := read(ctx, s.b, "while-sealed"); err != nil || !bytes.Equal(got, val) {
		t.Fatalf("cp-b cannot read back what it wrote while vault is sealed: %v", err)
	}
	if _, err := read(ctx, s.a, "while-sealed"); err == nil {
		t.Fatal("cp-a read a secret under cp-b's new seed while vault is sealed")
	}

	start := time.Now()
	if err := s.topo.StartCoordinator(); err != nil {
		t.Fatal(err)
	}
	s.waitAllUnsealed(t, ctx)
	for _, h := range []*kubeharness.Host{s.a, s.b} {
		kmsHealth(t, ctx, h, true, "ok")
	}
	s.mustWrite(t, ctx, s.a, "after-keyshare-unsealed")
	s.timing(t, "coordinator start to both apiservers' kms health ok and a secret written", time.Since(start))
	s.readAll(t, ctx, s.b)

	// Again, with nobody holding keyshare back.
	s.settleVault(t, ctx)
	start = time.Now()
	for _, n := range s.topo.Vault.Nodes() {
		restart(t, n)
	}
	seed := []byte("kube-story-probe-seed-0123456789")
	err := harness.Poll(ctx, "kms working again after the vault restart", func() (bool, error) {
		if _, err := s.pa.Encrypt(ctx, "kube-story-probe", seed); err != nil {
			return false, err
		}
		if _, err := s.write(ctx, s.a, "after-vault-restart"); err != nil {
			return false, err
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.timing(t, "vault cluster restart to a seed encrypted through vault and a secret written (keyshare unsealing)", time.Since(start))
	s.settleVault(t, ctx)
	for _, h := range []*kubeharness.Host{s.a, s.b} {
		kmsHealth(t, ctx, h, true, "ok")
	}
	s.readAll(t, ctx, s.b)
}

// 4. Rotate the transit key: Status reports a new key_id, new writes carry
// it, old Secrets still read. A storage migration (read and write back
// every Secret, as `kubectl get secrets -A -o json | kubectl replace -f -`
// does) leaves nothing under the old key_id; then raising the key's
// min_decryption_version breaks nothing, though the old seed can no longer
// be unwrapped.
func (s *kubeStory) rotation(t *testing.T) {
	s.need(t)
	ctx := scenarioCtx(t, 4*time.Minute)
	s.requireHealthy(t, ctx)
	if len(s.keyIDs) == 0 || s.oldSeed == nil {
		t.Fatal("no key_id or seed from step 01")
	}
	old := s.keyIDs[0]
	res, err := s.topo.KMSAdmin(ctx, s.bin, s.a.Plugin.Config, "key", "rotate")
	if err != nil {
		t.Fatal(err)
	}
	newID := ""
	for _, c := range []kmsservice.Service{s.pa, s.pb} {
		st := waitKMS(t, ctx, c, "a new key_id", func(st *kmsservice.StatusResponse) bool { return kmsOK(st) && st.KeyID != old })
		if newID != "" && st.KeyID != newID {
			t.Fatalf("the plugins report key_ids %s and %s", newID, st.KeyID)
		}
		newID = st.KeyID
	}
	if !strings.Contains(res.Stdout, newID) {
		t.Fatalf("key rotate did not print the new key_id %s:\n%s", newID, res.Stdout)
	}
	s.keyIDs = append(s.keyIDs, newID)

	// The apiserver asks Status on its health checks (cached 20 s) and
	// every minute; a write after it has seen the new key_id carries it.
	start := time.Now()
	var stored *kubeharness.Stored
	var last time.Time
	err = harness.Poll(ctx, "a write under the new key_id", func() (bool, error) {
		if time.Since(last) < time.Second {
			return false, nil // one write a second is plenty
		}
		last = time.Now()
		if _, _, err := s.a.APIServer.Get(ctx, "/healthz/kms-providers"); err != nil {
			return false, err
		}
		if _, err := s.write(ctx, s.a, "after-rotation"); err != nil {
			return false, err
		}
		raw, err := s.cp.Etcd.Get(ctx, "/registry/secrets/"+kubeNS+"/after-rotation")
		if err != nil {
			return false, err
		}
		if stored, err = kubeharness.ParseStored(raw); err != nil {
			return false, err
		}
		return stored.KeyID == newID, fmt.Errorf("stored under key_id %s", stored.KeyID)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.timing(t, "key rotate to the first secret stored under the new key_id", time.Since(start))
	if !bytes.HasPrefix(stored.EncryptedDEKSource, []byte("vault:v2:")) {
		t.Fatal("the seed of a write after the rotation is not under key version 2")
	}
	s.unwrap(t, ctx, s.pa, stored)
	s.readAll(t, ctx, s.a)
	s.readAll(t, ctx, s.b)

	// Storage migration through cp-a: every Secret read and written back
	// unchanged. The apiserver rewrites what it read under another key_id.
	cs := s.admin(t, s.a)
	list, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if _, err := cs.CoreV1().Secrets(list.Items[i].Namespace).Update(ctx, &list.Items[i], metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kvs, err := s.cp.Etcd.List(ctx, "/registry/secrets/")
	if err != nil {
		t.Fatal(err)
	}
	if len(kvs) < len(s.values) {
		t.Fatalf("etcd holds %d secrets, %d were written", len(kvs), len(s.values))
	}
	for _, kv := range kvs {
		st, err := kubeharness.ParseStored(kv.Value)
		if err != nil {
			t.Fatalf("%s: %v", kv.Key, err)
		}
		if st.KeyID != newID {
			t.Fatalf("%s is still under key_id %s after the migration", kv.Key, st.KeyID)
		}
	}
	t.Logf("migrated %d secrets: all under %s", len(kvs), newID)

	// Old seeds are no longer needed: raise min_decryption_version.
	leader, err := s.topo.Vault.WaitActive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := leader.Client()
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(s.topo.RootToken())
	if _, err := vc.Logical().WriteWithContext(ctx, "transit/keys/kubernetes/config", map[string]any{"min_decryption_version": 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pa.Decrypt(ctx, "kube-story-old", s.oldSeed); err == nil {
		t.Fatal("a seed of key version 1 still decrypts with min_decryption_version 2")
	}
	st := waitKMS(t, ctx, s.pa, "ok", kmsOK)
	if st.KeyID != newID {
		t.Fatalf("min_decryption_version changed the key_id from %s to %s", newID, st.KeyID)
	}
	// A cold apiserver must unwrap every seed again: all are version 2.
	if err := s.b.APIServer.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	s.readAll(t, ctx, s.b)
	s.mustWrite(t, ctx, s.b, "after-min-decryption-version")
	kmsHealth(t, ctx, s.b, true, "ok")
}

// 5. Revoke cp-a's token: cp-a's apiserver's KMS health fails with the
// plugin's reason; a new token file recovers it with no restart of the
// plugin or the apiserver. A token bound to another address is refused.
func (s *kubeStory) revoked(t *testing.T) {
	s.need(t)
	ctx := scenarioCtx(t, 3*time.Minute)
	s.requireHealthy(t, ctx)
	pluginPID, apiPID := s.a.Plugin.Process.PID(), s.a.APIServer.Process.PID()
	res, err := s.topo.KMSAdmin(ctx, s.bin, s.a.Plugin.Config, "token", "list")
	if err != nil {
		t.Fatal(err)
	}
	var acc string
	for _, l := range strings.Split(res.Stdout, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == kubeharness.HostA {
			acc = f[1]
		}
	}
	if acc == "" {
		t.Fatalf("token list shows no token for %s:\n%s", kubeharness.HostA, res.Stdout)
	}
	if _, err := s.topo.KMSAdmin(ctx, s.bin, s.a.Plugin.Config, "token", "revoke", "--accessor", acc); err != nil {
		t.Fatal(err)
	}
	reason := "token revoked or not allowed from " + kubeharness.HostA
	waitKMS(t, ctx, s.pa, "revoked", healthz(reason))
	start := time.Now()
	body := kmsHealth(t, ctx, s.a, false, reason)
	s.timing(t, "plugin says revoked to the apiserver's kms health failing", time.Since(start))
	t.Logf("cp-a /healthz/kms-providers with a revoked token: %s", strings.TrimSpace(body))
	kmsHealth(t, ctx, s.b, true, "ok") // cp-b's token is its own

	start = time.Now()
	if _, err := s.topo.KMSAdmin(ctx, s.bin, s.a.Plugin.Config, "token", "rotate", "--host", kubeharness.HostA, "--out", s.a.Plugin.TokenFile, "--grace", "0s"); err != nil {
		t.Fatal(err)
	}
	good := s.rememberToken(t, s.a)
	kmsHealth(t, ctx, s.a, true, "ok")
	s.timing(t, "new token file to the apiserver's kms health ok", time.Since(start))
	s.mustWrite(t, ctx, s.a, "after-new-token")

	// A valid token, bound to a host with no control plane.
	elsewhere := s.cp.Dir + "/token-elsewhere"
	if _, err := s.topo.KMSAdmin(ctx, s.bin, s.a.Plugin.Config, "token", "create", "--host", kubeharness.ElsewhereIP, "--out", elsewhere); err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	s.secret("vault token bound elsewhere", bytes.TrimSpace(tok))
	if err := writeFileAtomic(s.a.Plugin.TokenFile, tok); err != nil {
		t.Fatal(err)
	}
	kmsHealth(t, ctx, s.a, false, reason)
	if err := writeFileAtomic(s.a.Plugin.TokenFile, good); err != nil {
		t.Fatal(err)
	}
	kmsHealth(t, ctx, s.a, true, "ok")
	if s.a.Plugin.Process.PID() != pluginPID || s.a.APIServer.Process.PID() != apiPID {
		t.Fatal("the plugin or the apiserver of cp-a was restarted")
	}
	s.readAll(t, ctx, s.a)
}

// 6. No Secret value, seed (DEK source), Vault or Kubernetes token, or
// unseal share in any log or transcript of the run: Vault, holders,
// coordinator, plugins, etcd, apiservers.
func (s *kubeStory) noLeaks(t *testing.T) {
	files, secrets := s.scanSecrets(t)
	checkNoLeaks(t, s.topo, &s.known)
	for _, h := range s.cp.Hosts {
		for _, p := range []string{h.Plugin.Process.LogPath, h.APIServer.Process.LogPath} {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) < 1000 {
				t.Fatalf("%s is %d bytes: too little to mean anything", p, len(b))
			}
			if bytes.Contains(b, []byte("vault:v")) {
				t.Errorf("%s holds a transit ciphertext", p)
			}
		}
	}
	if files < 10 || secrets < 10 {
		t.Fatalf("scanned %d files for %d secrets: too few to mean anything", files, secrets)
	}
	t.Logf("scanned %d files for %d secrets and %d shares", files, secrets, s.known.Count())
}
