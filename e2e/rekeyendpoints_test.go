//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
)

// rekeyEndpointsIP is the single Vault node of TestVaultRekeyEndpointsStayOpen.
const rekeyEndpointsIP = "127.0.0.125"

// TestVaultRekeyEndpointsStayOpen checks, on the real Vault v1.21.0, the
// fact the holders' two-operator rekey rule rests on. A listener configured
// with disable_unauthed_rekey_endpoints = true (the OpenBao option; Vault
// 1.21.0's source has no such field) still lets a client without any token
// start a rekey on an unsealed node, read its nonce and cancel it. So a
// holder cannot rely on the listener to keep an operator certificate from
// naming a rekey of its own, and asks for two operators instead
// (pkg/policy rekeyapproval.go; README "Rekey and the operator identity").
// If a later Vault refuses the unauthenticated calls here, this test fails
// and the listener rule becomes an option worth adding.
func TestVaultRekeyEndpointsStayOpen(t *testing.T) {
	c := harness.NewTestVaultCluster(t, harness.VaultClusterOptions{Binary: harness.RequireVaultBinary(t),
		IPs: []string{rekeyEndpointsIP}, ListenerExtra: "disable_unauthed_rekey_endpoints = true"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	n := c.Node(0)
	if cfg, err := os.ReadFile(n.ConfigPath); err != nil || !strings.Contains(string(cfg), "disable_unauthed_rekey_endpoints = true") {
		t.Fatalf("the node's listener lacks the option: %v\n%s", err, cfg)
	}
	res, err := c.Init(ctx, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UnsealAll(ctx, res.KeysHex[:3]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.CA.Pool()}}}
	t.Cleanup(hc.CloseIdleConnections)
	anon := func(method, path string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, n.APIAddr()+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return resp.StatusCode, b
	}

	code, b := anon(http.MethodPut, "/v1/sys/rekey/init", []byte(`{"secret_shares":5,"secret_threshold":3,"require_verification":true}`))
	if code != http.StatusOK {
		t.Fatalf("unauthenticated rekey init with the listener option set: %d %s; the option now works: revisit the rekey rule", code, b)
	}
	code, b = anon(http.MethodGet, "/v1/sys/rekey/init", nil)
	var st struct {
		Started bool   `json:"started"`
		Nonce   string `json:"nonce"`
	}
	if err := json.Unmarshal(b, &st); code != http.StatusOK || err != nil || !st.Started || st.Nonce == "" {
		t.Fatalf("unauthenticated rekey status: %d %s (%v)", code, b, err)
	}
	nb, _ := json.Marshal(map[string]string{"nonce": st.Nonce})
	if code, b := anon(http.MethodDelete, "/v1/sys/rekey/init", nb); code/100 != 2 {
		t.Fatalf("unauthenticated rekey cancel: %d %s", code, b)
	}
	t.Logf("Vault v1.21.0 with disable_unauthed_rekey_endpoints = true: unauthenticated rekey init, status (nonce) and cancel all answered")
}
