// Package configs holds the example configurations. This test loads and
// validates every one of them, so the examples never rot.
package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyshare/keyshare/internal/holder"
	"github.com/keyshare/keyshare/internal/unsealer"
)

func TestExampleConfigsValidate(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	loaders := map[string]func(string) error{
		"holder-":  func(p string) error { _, err := holder.LoadShape(p); return err },
		"unsealer": func(p string) error { _, err := unsealer.LoadShape(p, nil); return err },
	}
	seen := 0
	for _, f := range files {
		for prefix, load := range loaders {
			if strings.HasPrefix(f, prefix) {
				seen++
				if err := load(f); err != nil {
					t.Errorf("%s: %v", f, err)
				}
			}
		}
	}
	if seen < 4 {
		t.Fatalf("validated %d example configs, want the 3 holders and the unsealer", seen)
	}
}

func TestSystemdUnitsHardened(t *testing.T) {
	units, _ := filepath.Glob("systemd/*.service")
	if len(units) == 0 {
		t.Fatal("no systemd units")
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"LimitCORE=0", "NoNewPrivileges=yes", "ProtectSystem=strict", "ExecReload=", "RestartPreventExitStatus=2"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %s", u, want)
			}
		}
	}
}
