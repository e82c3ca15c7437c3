package harness

import (
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/hcl"
)

func TestVaultClusterLayout(t *testing.T) {
	c, err := NewVaultCluster(VaultClusterOptions{Binary: "/bin/true", BaseDir: t.TempDir(), RaftPerformanceMultiplier: 1})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, n := range c.Nodes() {
		for _, addr := range []string{n.APIAddr(), n.ClusterAddr()} {
			if seen[addr] {
				t.Fatalf("%s: address %s used twice", n.Name, addr)
			}
			seen[addr] = true
		}
		b, err := os.ReadFile(n.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := hcl.Decode(&cfg, string(b)); err != nil {
			t.Fatalf("%s: config does not parse: %v\n%s", n.Name, err, b)
		}
		text := string(b)
		for _, want := range []string{
			`disable_mlock = true`, `ui            = false`, `api_addr      = "` + n.APIAddr() + `"`,
			`node_id = "` + n.Name + `"`, `path    = "` + n.DataDir + `"`, `performance_multiplier = 1`,
			`tls_cert_file   = "` + n.CertPath + `"`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: config lacks %s:\n%s", n.Name, want, text)
			}
		}
		if got := strings.Count(text, "retry_join {"); got != len(c.Nodes())-1 {
			t.Errorf("%s: %d retry_join blocks, want %d", n.Name, got, len(c.Nodes())-1)
		}
		if strings.Contains(text, n.APIAddr()+`"`+"\n    leader_ca") {
			t.Errorf("%s: retry_join points at itself", n.Name)
		}
	}
}

func TestVaultClusterOptions(t *testing.T) {
	type tc struct {
		opts VaultClusterOptions
		want string
	}
	run := func(t *testing.T, tc tc) {
		_, err := NewVaultCluster(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("got error %v, want one containing %q", err, tc.want)
		}
	}
	dir := t.TempDir()
	tests := map[string]tc{
		"fail/no binary":   {VaultClusterOptions{BaseDir: dir}, "no vault binary"},
		"fail/no base dir": {VaultClusterOptions{Binary: "/bin/true"}, "no base dir"},
		"fail/not loopback": {VaultClusterOptions{Binary: "/bin/true", BaseDir: dir, IPs: []string{"10.0.0.1"}},
			"not an IPv4 loopback"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { run(t, tc) })
	}
}
