package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"

	"github.com/keyshare/keyshare/internal/testkit/holdercfg"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

const holderIP = "127.0.0.51"

type holderSetup struct {
	w                     *world
	cfg                   string
	listen, gossip, metri string
	fake                  *vaultfake.Vault
	all                   []shares.Share
}

// boundAddrs reads the addresses the running holder p bound from its log,
// and writes them into the config, so that the CLI commands reading it
// (status) and a restart find the same ones.
func (s *holderSetup) boundAddrs(t *testing.T, p *proctest.Proc, hold string) {
	t.Helper()
	s.listen = proctest.LogAttr(t, p, 30*time.Second, "holder serving", "listen")
	s.gossip = proctest.LogAttr(t, p, 30*time.Second, "holder serving", "gossip")
	s.metri = proctest.LogAttr(t, p, 30*time.Second, "metrics listening", "metrics_listen")
	s.writeConfig(t, hold)
}

func (s *holderSetup) writeConfig(t *testing.T, hold string) {
	t.Helper()
	cfg := holdercfg.Config{
		ID: "spiffe://keyshare.test/holder/a", Listen: s.listen, AdvertiseListen: "proxy.example:7400",
		GossipBind: s.gossip, RejoinInterval: "1s",
		CAFile: s.w.path("ca.crt"), CertFile: s.w.cert["holder/a"][0], KeyFile: s.w.cert["holder/a"][1],
		StoreDir: s.w.path("store"), SealKeyFile: s.w.path("seal.key"), AuditFile: s.w.path("audit.log"),
		VaultCAFile: s.w.path("vault-ca.crt"), VaultURL: s.fake.URL(),
		UnsealerCIDR: "127.0.0.20/32",
		Operators: []holdercfg.Operator{
			{ID: "spiffe://keyshare.test/operator/oncall", CIDR: "127.0.0.30/32"},
			{ID: "spiffe://keyshare.test/operator/backup", CIDR: "127.0.0.32/32"},
		},
		Policy:        []string{"burst: 6", "rate_per_minute: 1", fmt.Sprintf("hold: %q", hold)},
		MetricsListen: s.metri, LogLev: "debug",
	}
	if err := cfg.Write(s.cfg); err != nil {
		t.Fatal(err)
	}
}

func setupHolder(t *testing.T) *holderSetup {
	t.Helper()
	w := newWorld(t)
	vleaf, err := w.vca.IssueID("vault", "v1", net.ParseIP("127.0.0.61"))
	if err != nil {
		t.Fatal(err)
	}
	fake, raw, err := vaultfake.New("127.0.0.61:0", &tls.Config{Certificates: []tls.Certificate{vleaf.TLSCertificate()}}, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Stop)
	s := &holderSetup{w: w, cfg: w.path("holder.yaml"), fake: fake,
		listen: anyPort(holderIP), gossip: anyPort(holderIP), metri: anyPort(holderIP)}
	for i, r := range raw {
		s.all = append(s.all, shares.Share{Index: uint8(i + 1), Value: r})
	}
	s.writeConfig(t, "")
	return s
}

// importGen1 makes the seal key and imports shares 1 and 2 of generation 1
// (the fake's), as an operator does before the holder's first run.
func (s *holderSetup) importGen1(t *testing.T) {
	t.Helper()
	if out, code := runCLI(t, "", "keygen", s.w.path("seal.key")); code != 0 {
		t.Fatalf("keygen: %d %s", code, out)
	}
	writeJSON(t, s.w.path("manifest.json"), shares.NewManifest(1, 3, s.all))
	if out, code := runCLI(t, fmt.Sprintf("1 %s\n2 %s\n", s.all[0].Hex(), s.all[1].Hex()), "import", "-c", s.cfg, "--manifest", s.w.path("manifest.json")); code != 0 {
		t.Fatalf("import: %d %s", code, out)
	}
}

// serve runs the holder until the test ends, its bound addresses written
// into the config, and returns it with a client as id from source address
// src once the holder answers health checks.
func (s *holderSetup) serve(t *testing.T, id, src string) (*proctest.Proc, *sharerpc.Client) {
	t.Helper()
	p := startHolder(t, "run", "-c", s.cfg)
	s.boundAddrs(t, p, "")
	c := s.client(t, id, src)
	proctest.WaitFor(t, 30*time.Second, "the holder's health service", func() bool { return c.Health(context.Background()) == nil })
	return p, c
}

// client dials the holder as id from source address src.
func (s *holderSetup) client(t *testing.T, id, src string) *sharerpc.Client {
	t.Helper()
	files := s.w.cert[id]
	is, err := identity.New(identity.Options{CAFile: s.w.path("ca.crt"), CertFile: files[0], KeyFile: files[1]})
	if err != nil {
		t.Fatal(err)
	}
	hid := spiffeid.RequireFromString("spiffe://keyshare.test/holder/a")
	c, err := sharerpc.Dial(s.listen, is.ClientConfig(identity.AllowIDs(hid)), hid,
		sharerpc.ClientOptions{LocalAddr: netip.MustParseAddr(src), CallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func wantDenial(t *testing.T, err error, reason policy.Reason, code codes.Code) {
	t.Helper()
	d, ok := policy.AsDenial(err)
	if !ok || d.Reason != reason {
		t.Fatalf("err = %v, want denial %s", err, reason)
	}
	if sharerpc.Code(d.Reason) != code {
		t.Fatalf("reason %s maps to %v, want %v", reason, sharerpc.Code(d.Reason), code)
	}
}

// TestHolderProcess runs the real holder binary and walks through every
// release decision, then checks the audit log and that no share leaked.
func TestHolderProcess(t *testing.T) {
	s := setupHolder(t)
	if out, code := runCLI(t, "", "keygen", s.w.path("seal.key")); code != 0 {
		t.Fatalf("keygen: %d %s", code, out)
	}
	if out, code := runCLI(t, "", "keygen", s.w.path("seal.key")); code == 0 || !strings.Contains(out, "never overwritten") {
		t.Fatalf("second keygen on the same path: %d %s", code, out)
	}
	m := shares.NewManifest(1, 3, s.all)
	writeJSON(t, s.w.path("manifest.json"), m)
	lines := fmt.Sprintf("1 %s\n2 %s\n", s.all[0].Hex(), s.all[1].Base64())
	if out, code := runCLI(t, lines, "import", "-c", s.cfg, "--manifest", s.w.path("manifest.json")); code != 0 {
		t.Fatalf("import: %d %s", code, out)
	}
	if out, code := runCLI(t, "", "verify", "-c", s.cfg); code != 0 || !strings.Contains(out, "[1 2]") {
		t.Fatalf("verify: %d %s", code, out)
	}

	p, u := s.serve(t, "unsealer/u1", "127.0.0.20")
	ctx := context.Background()

	// Allowed: exactly this holder's shares, while the target is sealed.
	got, err := u.Release(ctx, "vault-1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Index != 1 || got[1].Index != 2 ||
		!bytes.Equal(got[0].Value, s.all[0].Value) || !bytes.Equal(got[1].Value, s.all[1].Value) {
		t.Fatalf("released %d shares, want exactly indices 1 and 2", len(got))
	}

	// Denied, each with its own reason.
	s.fake.SetInitialized(true)
	unsealFake(t, s)
	_, err = u.Release(ctx, "vault-1", 1)
	wantDenial(t, err, policy.ReasonTargetNotSealed, codes.FailedPrecondition)
	s.fake.Seal()

	_, err = s.client(t, "holder/b", "127.0.0.20").Release(ctx, "vault-1", 1)
	wantDenial(t, err, policy.ReasonPeerNotAllowed, codes.PermissionDenied)
	// The holder is refused at the share service's boundary, unaudited;
	// an operator that is not listed reaches the policy and is audited.
	_, err = s.client(t, "operator/mallory", "127.0.0.30").Release(ctx, "vault-1", 1)
	wantDenial(t, err, policy.ReasonPeerNotAllowed, codes.PermissionDenied)
	_, err = s.client(t, "unsealer/u1", "127.0.0.21").Release(ctx, "vault-1", 1)
	wantDenial(t, err, policy.ReasonSourceNotAllowed, codes.PermissionDenied)
	_, err = u.Release(ctx, "vault-9", 1)
	wantDenial(t, err, policy.ReasonUnknownTarget, codes.FailedPrecondition)
	_, err = u.Release(ctx, "vault-1", 2)
	wantDenial(t, err, policy.ReasonGenerationMismatch, codes.FailedPrecondition)
	_, err = s.client(t, "operator/oncall", "127.0.0.31").Release(ctx, "vault-1", 1)
	wantDenial(t, err, policy.ReasonOperatorRule, codes.PermissionDenied)

	// Burst 6 at 1/min: one release so far, so five more, then limited.
	for i := range 5 {
		if _, err := u.Release(ctx, "vault-1", 1); err != nil {
			t.Fatalf("release %d within burst: %v", i+2, err)
		}
	}
	_, err = u.Release(ctx, "vault-1", 1)
	wantDenial(t, err, policy.ReasonRateLimited, codes.ResourceExhausted)

	// A hold set in the config applies on SIGHUP, without a restart.
	s.writeConfig(t, "disk swap")
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	op := s.client(t, "operator/oncall", "127.0.0.30")
	proctest.WaitFor(t, 20*time.Second, "the hold to apply", func() bool {
		_, err := op.Release(ctx, "vault-1", 1)
		d, ok := policy.AsDenial(err)
		return ok && d.Reason == policy.ReasonMaintenanceHold
	})

	metrics := httpGet(t, "http://"+s.metri+"/metrics")
	if !strings.Contains(metrics, `keyshare_holder_releases_total{decision="deny",reason="rate_limited"} 1`) ||
		!strings.Contains(metrics, "keyshare_holder_generation 1") {
		t.Fatalf("metrics lack the release counters or generation:\n%s", grepLines(metrics, "keyshare_holder"))
	}
	live, _ := runCLI(t, "", "status", "-c", s.cfg)
	if !strings.Contains(live, "peer") || !strings.Contains(live, "spiffe://keyshare.test/holder/a alive generation 1") {
		t.Fatalf("status of the running holder lacks its gossip peers:\n%s", live)
	}
	liveJSON, _ := runCLI(t, "", "status", "--json", "-c", s.cfg)
	if !strings.Contains(liveJSON, `"rpc_addr": "proxy.example:7400"`) {
		t.Fatalf("the holder does not gossip its advertised share-service address:\n%s", liveJSON)
	}
	p.Stop(t, 20*time.Second)

	// Every decision is in the audit log, and the chain verifies.
	auditLog, err := os.ReadFile(s.w.path("audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"target_not_sealed", "peer_not_allowed", "source_not_allowed", "unknown_target",
		"generation_mismatch", "operator_rule", "rate_limited", "maintenance_hold", `"decision":"allow"`} {
		if !strings.Contains(string(auditLog), r) {
			t.Errorf("audit log lacks %s", r)
		}
	}
	if out, code := runCLI(t, "", "audit", "verify", "-c", s.cfg); code != 0 {
		t.Fatalf("audit verify: %d %s", code, out)
	}
	status, code := runCLI(t, "", "status", "-c", s.cfg)
	if code != 0 || !strings.Contains(status, "chain ok") {
		t.Fatalf("status: %d %s", code, status)
	}

	// No share, in any encoding, in the logs (debug), the audit log, the
	// metrics, or the CLI output.
	for name, text := range map[string]string{"holder log": p.Out.String(), "audit log": string(auditLog), "metrics": metrics, "status": status} {
		for _, sh := range s.all {
			for _, enc := range []string{sh.Hex(), sh.Base64(), strings.ToUpper(sh.Hex())} {
				if strings.Contains(text, enc) {
					t.Fatalf("share %d leaked into the %s", sh.Index, name)
				}
			}
		}
	}
}

func unsealFake(t *testing.T, s *holderSetup) {
	t.Helper()
	// Unseal the fake directly through its HTTP API with 3 shares.
	pool := s.w.vca.Pool()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	for _, sh := range s.all[:3] {
		req, _ := http.NewRequest(http.MethodPut, s.fake.URL()+"/v1/sys/unseal", strings.NewReader(`{"key":"`+sh.Hex()+`"}`))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if s.fake.Sealed() {
		t.Fatal("fake still sealed")
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
