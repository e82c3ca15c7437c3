package transit

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// TestKeptAliveHTTP1: every call goes over one kept-alive TLS connection
// with HTTP/1.1, even though the server offers HTTP/2. HTTP/1.1 is the
// faster protocol against Vault one call at a time (NewHTTPClient), and a
// new TLS handshake per call would cost more than the call itself.
func TestKeptAliveHTTP1(t *testing.T) {
	ca, err := devpki.NewCA("keyshare.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueID("vault", "n1", net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	caFile := t.TempDir() + "/ca.pem"
	if err := ca.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	protos := map[string]int{}
	conns := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos[r.Proto]++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":{"ciphertext":"vault:v1:AAAA"}}`))
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.StartTLS()
	defer srv.Close()

	c, err := New(Options{Addrs: []string{srv.URL}, CACert: readFile(t, caFile)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const calls = 20
	for range calls {
		if _, _, err := c.Encrypt(context.Background(), "transit", "k", []byte("seed"), nil, 1); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if protos["HTTP/1.1"] != calls || len(protos) != 1 {
		t.Errorf("protocols %v, want %d calls over HTTP/1.1", protos, calls)
	}
	if conns != 1 {
		t.Errorf("%d TLS connections for %d calls, want 1 kept alive", conns, calls)
	}
}
