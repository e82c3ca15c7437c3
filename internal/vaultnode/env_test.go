package vaultnode

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// recorder is a TLS server on ip:0 that records every request it gets.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []string // method, path and token header of each request
}

func newRecorder(t *testing.T, ca *devpki.CA, ip string, h func(w http.ResponseWriter, r *http.Request)) *recorder {
	t.Helper()
	leaf, err := ca.IssueID("vault", "v", net.ParseIP(ip))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	rec.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, r.Method+" "+r.Host+r.URL.Path+" token="+r.Header.Get("X-Vault-Token")+" ns="+r.Header.Get("X-Vault-Namespace"))
		rec.mu.Unlock()
		h(w, r)
	}))
	rec.srv.Listener.Close()
	rec.srv.Listener = ln
	rec.srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}
	rec.srv.Config.ErrorLog = nil
	rec.srv.StartTLS()
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

func sealStatusJSON(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"type":"shamir","initialized":true,"sealed":true,"t":3,"n":5,"progress":0,"nonce":"","version":"1.21.0"}`))
}

// hostileEnv sets every environment variable that the Vault API client or
// net/http would read to steer a client, each to a hostile value: another
// address, the attacker's CA, verification off, a proxy, a token.
func hostileEnv(hostileURL, hostileCAFile string) map[string]string {
	return map[string]string{
		"VAULT_ADDR":              hostileURL,
		"VAULT_AGENT_ADDR":        hostileURL,
		"VAULT_SKIP_VERIFY":       "true",
		"VAULT_CACERT":            hostileCAFile,
		"VAULT_CAPATH":            filepath.Dir(hostileCAFile),
		"VAULT_CACERT_BYTES":      "",
		"VAULT_TLS_SERVER_NAME":   "hostile.example",
		"VAULT_HTTP_PROXY":        hostileURL,
		"VAULT_PROXY_ADDR":        hostileURL,
		"VAULT_TOKEN":             "hostile-token",
		"VAULT_NAMESPACE":         "hostile-ns",
		"VAULT_MAX_RETRIES":       "5",
		"VAULT_DISABLE_REDIRECTS": "false",
		"VAULT_SRV_LOOKUP":        "true",
		"HTTPS_PROXY":             hostileURL,
		"HTTP_PROXY":              hostileURL,
		"https_proxy":             hostileURL,
		"http_proxy":              hostileURL,
		"ALL_PROXY":               hostileURL,
		"NO_PROXY":                "",
		"SSL_CERT_FILE":           hostileCAFile,
		"SSL_CERT_DIR":            filepath.Dir(hostileCAFile),
	}
}

// envProfiles are the hostile environments tried: all at once, and the
// worst ones alone (so that one cannot hide another's effect).
func envProfiles(all map[string]string) map[string]map[string]string {
	only := func(keys ...string) map[string]string {
		m := map[string]string{}
		for k := range all {
			m[k] = "" // unset for the client: empty is "not set" to every reader
		}
		for _, k := range keys {
			m[k] = all[k]
		}
		return m
	}
	return map[string]map[string]string{
		"all":         all,
		"skip-verify": only("VAULT_SKIP_VERIFY", "VAULT_CACERT"),
		"agent-addr":  only("VAULT_AGENT_ADDR", "VAULT_ADDR"),
		"proxy":       only("VAULT_HTTP_PROXY", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"),
	}
}

// TestEnvironmentCannotSteerTheClient: with every VAULT_* and proxy
// variable set to a hostile value, the client still talks only to the
// configured address, verifies it against the pinned CA (a man in the
// middle with the attacker's CA is refused even with VAULT_SKIP_VERIFY),
// sends no token from the environment, and follows no redirect to another
// host.
func TestEnvironmentCannotSteerTheClient(t *testing.T) {
	pinned, err := devpki.NewCA("vault.test")
	if err != nil {
		t.Fatal(err)
	}
	attacker, err := devpki.NewCA("vault.test")
	if err != nil {
		t.Fatal(err)
	}
	attackerCA := filepath.Join(t.TempDir(), "attacker-ca.pem")
	if err := os.WriteFile(attackerCA, attacker.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"all", "skip-verify", "agent-addr", "proxy"} {
		t.Run(name, func(t *testing.T) {
			// A hostile server of its own, so that no profile's leak is
			// blamed on another.
			hostile := newRecorder(t, attacker, "127.0.0.65", sealStatusJSON)
			for k, v := range envProfiles(hostileEnv(hostile.srv.URL, attackerCA))[name] {
				t.Setenv(k, v)
			}
			steer(t, pinned, attacker, hostile)
		})
	}
}

func steer(t *testing.T, pinned, attacker *devpki.CA, hostile *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	noHostile := func(t *testing.T) {
		t.Helper()
		if r := hostile.requests(); len(r) != 0 {
			t.Fatalf("the hostile server from the environment got requests: %v", r)
		}
	}

	t.Run("ok/configured-address-and-pinned-ca", func(t *testing.T) {
		real := newRecorder(t, pinned, "127.0.0.63", sealStatusJSON)
		n, err := New("vault-1", real.srv.URL, Options{CACert: pinned.CertPEM, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("New with a hostile environment: %v", err)
		}
		st, err := n.SealStatus(ctx)
		if err != nil || !st.Sealed || st.T != 3 {
			t.Fatalf("seal-status = %+v, %v", st, err)
		}
		got := real.requests()
		if len(got) != 1 || !strings.Contains(got[0], "token= ns=") {
			t.Fatalf("the configured node got %v, want one seal-status with no token or namespace", got)
		}
		noHostile(t)
		tr := n.http.Transport.(*http.Transport)
		if tr.Proxy != nil || tr.TLSClientConfig.InsecureSkipVerify {
			t.Fatal("transport has a proxy or skips verification")
		}
	})
	t.Run("fail/man-in-the-middle-with-attacker-ca", func(t *testing.T) {
		mitm := newRecorder(t, attacker, "127.0.0.64", sealStatusJSON)
		n, err := New("vault-1", mitm.srv.URL, Options{CACert: pinned.CertPEM, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := n.SealStatus(ctx); err == nil {
			t.Fatalf("seal-status from a server of another CA accepted: %+v", st)
		}
		share := make([]byte, 33)
		if _, err := n.Unseal(ctx, share); err == nil {
			t.Fatal("a share was sent to a server of another CA")
		}
		events := make(chan ConnEvent, 1)
		wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		n.WatchClose(wctx, events)
		wcancel()
		if len(events) != 0 {
			t.Fatalf("the held connection was accepted by a server of another CA: %+v", <-events)
		}
		if r := mitm.requests(); len(r) != 0 {
			t.Fatalf("the man in the middle got requests: %v", r)
		}
		noHostile(t)
	})
	t.Run("fail/redirect-to-another-host", func(t *testing.T) {
		redirector := newRecorder(t, pinned, "127.0.0.66", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, hostile.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
		})
		n, err := New("vault-1", redirector.srv.URL, Options{CACert: pinned.CertPEM, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		share := make([]byte, 33)
		if _, err := n.Unseal(ctx, share); err == nil {
			t.Fatal("unseal followed a redirect to another host")
		}
		if _, err := n.SealStatus(ctx); err == nil {
			t.Fatal("seal-status followed a redirect to another host")
		}
		// The pooled client (health, lifecycle calls, busy fallbacks)
		// refuses it by name.
		if _, err := n.Health(ctx); err == nil || !strings.Contains(err.Error(), "refusing a redirect") {
			t.Fatalf("health redirected to another host: err = %v", err)
		}
		noHostile(t)
	})
}

// TestBadAddressAndCA: errors name the node and say what to fix.
func TestBadAddressAndCA(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		ca         []byte
		want       string
	}{
		{"fail/no-scheme", "127.0.0.1:8200", []byte("x"), "must be https://host:port"},
		{"fail/no-host", "https://", []byte("x"), "must be https://host:port"},
		{"fail/no-ca", "https://127.0.0.1:8200", nil, "no CA certificate to pin"},
		{"fail/ca-not-pem", "https://127.0.0.1:8200", []byte("not a certificate"), "holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New("vault-1", tc.addr, Options{CACert: tc.ca})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "vault-1") {
				t.Fatalf("err = %v, want one naming vault-1 and %q", err, tc.want)
			}
		})
	}
}
