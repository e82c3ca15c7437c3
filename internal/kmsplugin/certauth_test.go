package kmsplugin

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kmsservice "k8s.io/kms/pkg/service"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// certAuthRig sets the rig's plugin up to log in with a host certificate
// (vault.auth: cert) through a cert role bound to roleHost.
func certAuthRig(t *testing.T, roleHost string) *rig {
	t.Helper()
	r := newRig(t, 1)
	hostCA, err := devpki.NewCA("hosts.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := hostCA.IssueID("host", "a", net.ParseIP(pluginIP))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := leaf.WriteFiles(r.dir, "host-a")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(r.dir, "hosts-ca.crt")
	if err := hostCA.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.admin.CertRole(testCtx(t, 5*time.Second), "cert", "kms-a", mustAddr(roleHost), caPEM, time.Hour); err != nil {
		t.Fatal(err)
	}
	r.cfg.Vault.Auth, r.cfg.Vault.CertFile, r.cfg.Vault.KeyFile, r.cfg.Vault.CertRole = AuthCert, certFile, keyFile, "kms-a"
	if err := r.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCertAuthLogsInAgainAfterRevocation: with vault.auth cert the plugin
// logs in with its host certificate, and when its token is revoked it logs
// in again by itself.
func TestCertAuthLogsInAgainAfterRevocation(t *testing.T) {
	r := certAuthRig(t, pluginIP)
	p := r.start(t)
	waitStatus(t, p.client, 5*time.Second, "ok", isOK)
	first := p.d.Tokens.Accessor()
	r.fakes[0].RevokeAll()
	p.d.Prober.Check(testCtx(t, 5*time.Second)) // sees the refusal at once
	waitStatus(t, p.client, 5*time.Second, "ok after a new login", func(st *kmsservice.StatusResponse) bool {
		return isOK(st) && p.d.Tokens.Accessor() != first && p.d.Tokens.Accessor() != ""
	})
	if n := strings.Count(r.logs.String(), `"msg":"vault login ok"`); n < 2 {
		t.Fatalf("%d logins logged, want 2", n)
	}
	if _, err := p.client.Encrypt(testCtx(t, 5*time.Second), "u", []byte("0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
}

// TestCertAuthRoleForAnotherHostRefused: a role bound to another address
// refuses this host's login, and Status says so.
func TestCertAuthRoleForAnotherHostRefused(t *testing.T) {
	r := certAuthRig(t, otherIP)
	p := r.start(t)
	st := waitStatus(t, p.client, 5*time.Second, "refused", healthzIs("no usable vault token: vault cert login"))
	if !strings.Contains(st.Healthz, "from "+pluginIP) || !strings.Contains(st.Healthz, "permission denied") {
		t.Fatalf("healthz %q does not name the host and the refusal", st.Healthz)
	}
}
