package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/holdercfg"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
	"github.com/keyshare/keyshare/pkg/shares"
)

// Process tests: the real holder binary (three of them, each on its own
// loopback address), the unsealer binary, and the fake Vault in-process.
var holderBin, unsealerBin string

const (
	vaultIP    = "127.0.0.160"
	unsealerIP = "127.0.0.170"
	operatorIP = "127.0.0.171"
)

var holderIPs = [3]string{"127.0.0.151", "127.0.0.152", "127.0.0.153"}

func TestMain(m *testing.M) {
	proctest.Main(m, false, func(bins map[string]string) {
		holderBin, unsealerBin = bins["../holder"], bins["."]
	}, "../holder", ".")
}

// anyPort is ip:0: the child binds a port the kernel picks, and the test
// reads it back from the child's log.
func anyPort(ip string) string { return proctest.AnyPort(ip) }

func start(t *testing.T, env []string, bin string, args ...string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, env, bin, args...)
}

// cluster is one deployment: a CA, a fake Vault, three holders.
type cluster struct {
	dir     string
	ca, vca *devpki.CA
	fake    *vaultfake.Vault
	keys    []shares.Share // generation 1, when the fake was made initialized
	listen  [3]string
	holders [3]*proctest.Proc
	cfg     string // unsealer config
	opCfg   string // operator config
}

func (c *cluster) path(n string) string { return filepath.Join(c.dir, n) }

func newCluster(t *testing.T, initialized bool) *cluster {
	t.Helper()
	c := &cluster{dir: t.TempDir()}
	var err error
	if c.ca, err = devpki.NewCA("keyshare.test"); err != nil {
		t.Fatal(err)
	}
	if c.vca, err = devpki.NewCA("vault.test"); err != nil {
		t.Fatal(err)
	}
	must(t, c.ca.WriteCA(c.path("ca.crt")))
	must(t, c.vca.WriteCA(c.path("vault-ca.crt")))
	vleaf, err := c.vca.IssueID("vault", "v1", net.ParseIP(vaultIP))
	must(t, err)
	tc := &tls.Config{Certificates: []tls.Certificate{vleaf.TLSCertificate()}}
	if initialized {
		var raw [][]byte
		c.fake, raw, err = vaultfake.New(vaultIP+":0", tc, 5, 3)
		must(t, err)
		for i, r := range raw {
			c.keys = append(c.keys, shares.Share{Index: uint8(i + 1), Value: r})
		}
	} else {
		c.fake = vaultfake.NewUninitialized(vaultIP+":0", tc)
	}
	must(t, c.fake.Start())
	t.Cleanup(c.fake.Stop)
	for _, id := range [][2]string{{"holder", "a"}, {"holder", "b"}, {"holder", "c"}, {"unsealer", "u1"}, {"operator", "oncall"}} {
		leaf, err := c.ca.IssueID(id[0], id[1], net.ParseIP("127.0.0.1"))
		must(t, err)
		_, _, err = leaf.WriteFiles(c.dir, id[0]+"-"+id[1])
		must(t, err)
	}
	for i, name := range []string{"a", "b", "c"} {
		c.listen[i] = anyPort(holderIPs[i])
		c.writeHolderConfig(t, i, name)
		if out, err := exec.Command(holderBin, "keygen", c.path("seal-"+name+".key")).CombinedOutput(); err != nil {
			t.Fatalf("keygen: %v %s", err, out)
		}
	}
	if initialized {
		c.importGen1(t)
	}
	// The holders bind ports the kernel picks; the unsealer's configs
	// name the ones they got.
	for i := range c.holders {
		c.startHolder(t, i)
	}
	var hl strings.Builder
	for i, name := range []string{"a", "b", "c"} {
		fmt.Fprintf(&hl, "  - {id: \"spiffe://keyshare.test/holder/%s\", address: \"%s\", shares: %d}\n", name, c.listen[i], shares.DefaultWeights[i])
	}
	for _, u := range [][3]string{{"unsealer.yaml", "unsealer/u1", unsealerIP}, {"operator.yaml", "operator/oncall", operatorIP}} {
		base := strings.ReplaceAll(u[1], "/", "-")
		cfg := fmt.Sprintf(`id: spiffe://keyshare.test/%s
source_addr: %s
gossip: {bind: ""}
tls: {ca_file: %s, cert_file: %s, key_file: %s}
holders:
%splan: {shares: 5, threshold: 3}
vault:
  ca_file: %s
  timeout: 2s
  nodes: [{name: vault-1, address: "%s"}]
watch: {holder_timeout: 5s}
`, u[1], u[2], c.path("ca.crt"), c.path(base+".crt"), c.path(base+".key"), hl.String(), c.path("vault-ca.crt"), c.fake.URL())
		must(t, os.WriteFile(c.path(u[0]), []byte(cfg), 0o600))
	}
	c.cfg, c.opCfg = c.path("unsealer.yaml"), c.path("operator.yaml")
	return c
}

func (c *cluster) writeHolderConfig(t *testing.T, i int, name string) {
	t.Helper()
	cfg := holdercfg.Config{
		ID: "spiffe://keyshare.test/holder/" + name, Listen: c.listen[i], GossipBind: anyPort(holderIPs[i]), RejoinInterval: "1s",
		CAFile: c.path("ca.crt"), CertFile: c.path("holder-" + name + ".crt"), KeyFile: c.path("holder-" + name + ".key"),
		StoreDir: c.path("store-" + name), SealKeyFile: c.path("seal-" + name + ".key"), AuditFile: c.path("audit-" + name + ".log"),
		VaultCAFile: c.path("vault-ca.crt"), VaultURL: c.fake.URL(),
		UnsealerCIDR: unsealerIP + "/32",
		Operators:    []holdercfg.Operator{{ID: "spiffe://keyshare.test/operator/oncall", CIDR: operatorIP + "/32"}},
		Policy: []string{"burst: 50", "rate_per_minute: 600", "operator_burst: 10", "operator_rate_per_minute: 60",
			// One operator identity here; the two-operator rekey rule is
			// tested in cmd/holder TestHolderRekeyRelease and pkg/policy.
			"rekey_approvals: 1"},
		MetricsListen: anyPort(holderIPs[i]), LogLev: "debug",
	}
	must(t, cfg.Write(c.path("holder-"+name+".yaml")))
}

// importGen1 provisions generation 1 by hand (`holder import`), 2/2/1.
func (c *cluster) importGen1(t *testing.T) {
	t.Helper()
	b, err := json.Marshal(shares.NewManifest(1, 3, c.keys))
	must(t, err)
	must(t, os.WriteFile(c.path("manifest.json"), b, 0o600))
	for i, idx := range [][]int{{1, 2}, {3, 4}, {5}} {
		var lines strings.Builder
		for _, x := range idx {
			fmt.Fprintf(&lines, "%d %s\n", x, c.keys[x-1].Hex())
		}
		cmd := exec.Command(holderBin, "import", "-c", c.path("holder-"+string(rune('a'+i))+".yaml"), "--manifest", c.path("manifest.json"))
		cmd.Stdin = strings.NewReader(lines.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("import: %v %s", err, out)
		}
	}
}

// startHolder starts holder i. On its first start it binds a port the
// kernel picks, read back from its log and written into its config, so
// that a restart comes back on the same address (the one the unsealer's
// configs name), as a real holder would.
func (c *cluster) startHolder(t *testing.T, i int) {
	t.Helper()
	name := string(rune('a' + i))
	c.holders[i] = start(t, nil, holderBin, "run", "-c", c.path("holder-"+name+".yaml"))
	if strings.HasSuffix(c.listen[i], ":0") {
		c.listen[i] = proctest.LogAttr(t, c.holders[i], 20*time.Second, "holder serving", "listen")
		c.writeHolderConfig(t, i, name)
	}
	proctest.WaitFor(t, 20*time.Second, "holder "+c.listen[i], func() bool {
		conn, err := net.DialTimeout("tcp", c.listen[i], 200*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}

// unsealer runs a one-shot unsealer command and returns stdout, stderr
// and the exit code.
func (c *cluster) unsealer(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	return proctest.Run(t, stdin, nil, unsealerBin, args...)
}

// restartVault stops the fake and starts it again: sealed, and any rekey
// in progress forgotten, as a restarted Vault.
func (c *cluster) restartVault(t *testing.T) {
	t.Helper()
	c.fake.Stop()
	must(t, c.fake.Start())
}

// noSecrets fails if any of ss appears, in hex or base64, in text.
func noSecrets(t *testing.T, text string, ss []shares.Share) {
	t.Helper()
	for _, s := range ss {
		if strings.Contains(text, s.Hex()) || strings.Contains(text, s.Base64()) {
			t.Fatalf("share %d leaked into output", s.Index)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
