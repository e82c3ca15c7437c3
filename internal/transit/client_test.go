package transit

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestNewRefuses(t *testing.T) {
	for name, o := range map[string]Options{
		"fail/no-address": {CACert: []byte("x")},
		"fail/http":       {Addrs: []string{"http://127.0.0.1:8200"}, CACert: []byte("x")},
		"fail/no-ca":      {Addrs: []string{"https://127.0.0.1:8200"}},
		"fail/bad-source": {Addrs: []string{"https://127.0.0.1:8200"}, CACert: testCA(t), SourceAddr: "host"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(o); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestNoProxyNoEnvironment: the transport never consults the proxy
// variables (Go skips them for loopback anyway, so the e2e cannot show it:
// this checks the transport itself), verifies with only the pinned CA, and
// follows no redirect.
func TestNoProxyNoEnvironment(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://10.0.0.1:3128")
	c, err := New(Options{Addrs: []string{"https://vault.example:8200"}, CACert: testCA(t)})
	if err != nil {
		t.Fatal(err)
	}
	tr := c.hc.Transport.(*http.Transport)
	if tr.Proxy != nil {
		t.Fatal("transport has a proxy function")
	}
	if tr.TLSClientConfig.InsecureSkipVerify || tr.TLSClientConfig.RootCAs == nil {
		t.Fatal("TLS is not pinned")
	}
	if c.hc.CheckRedirect == nil {
		t.Fatal("redirects are followed")
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		want   Kind
	}{
		{503, `{"errors":["Vault is sealed"]}`, KindSealed},
		{403, `{"errors":["permission denied"]}`, KindDenied},
		{404, `{"errors":[]}`, KindNotFound},
		{400, `{"errors":["encryption key not found"]}`, KindNotFound},
		{400, `{"errors":["invalid ciphertext: no prefix"]}`, KindBadRequest},
		{500, `{"errors":["local node not active but active cluster node not found"]}`, KindServer},
	} {
		if got := httpError("https://n1", "transit/encrypt/k", c.status, []byte(c.body)).Kind; got != c.want {
			t.Errorf("HTTP %d %s: kind %s, want %s", c.status, c.body, got, c.want)
		}
	}
	// Sealed beats unreachable when summing up several nodes.
	err := combine("p", []*Error{{Kind: KindUnreachable, Node: "a"}, {Kind: KindSealed, Node: "b"}, {Kind: KindUnreachable, Node: "c"}})
	if KindOf(err) != KindSealed || !strings.Contains(err.Error(), "every vault node") {
		t.Fatalf("combined: %v (%s)", err, KindOf(err))
	}
	err = combine("p", []*Error{{Kind: KindUnreachable, Node: "a", Err: errors.New("refused")}, {Kind: KindUnreachable, Node: "b", Err: errors.New("refused")}})
	if KindOf(err) != KindUnreachable {
		t.Fatalf("combined: %v", err)
	}
}

func TestCiphertextVersion(t *testing.T) {
	for ct, want := range map[string]int{"vault:v1:abc": 1, "vault:v12:x": 12, "vault:v0:x": 0, "vault:vx:a": 0, "v1:abc": 0, "": 0} {
		got, err := CiphertextVersion(ct)
		if got != want || (want == 0) != (err != nil) {
			t.Errorf("%q: %d, %v; want %d", ct, got, err, want)
		}
	}
}
