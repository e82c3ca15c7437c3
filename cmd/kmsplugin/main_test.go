package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLI runs the command as an operator would and checks what it says and
// its exit code.
func TestCLI(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "kmsplugin.yaml")
	example, err := os.ReadFile("../../configs/kmsplugin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, example, 0o600); err != nil {
		t.Fatal(err)
	}
	type tc struct {
		name string
		args []string
		env  map[string]string
		code int
		want []string
	}
	run := func(t *testing.T, c tc) {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		all := out.String() + errb.String()
		if code != c.code {
			t.Fatalf("exit %d, want %d:\n%s", code, c.code, all)
		}
		for _, w := range c.want {
			if !strings.Contains(all, w) {
				t.Errorf("output lacks %q:\n%s", w, all)
			}
		}
	}
	for _, c := range []tc{
		{name: "ok/help", args: []string{"--help"}, want: []string{"vault setup", "token create", "serve", "Exit codes"}},
		{name: "ok/token-help", args: []string{"token", "create", "--help"}, want: []string{"token_bound_cidrs", "0600", "--host"}},
		{name: "fail/no-admin-token", args: []string{"vault", "setup", "-c", cfg}, env: map[string]string{"VAULT_TOKEN": ""}, code: 2,
			want: []string{"VAULT_TOKEN is empty"}},
		{name: "fail/missing-host", args: []string{"token", "create", "-c", cfg, "--out", "/tmp/x"}, code: 2, want: []string{"host"}},
		{name: "fail/bad-host", args: []string{"token", "create", "-c", cfg, "--host", "node-1", "--out", "/tmp/x"},
			env: map[string]string{"VAULT_TOKEN": "t"}, code: 2, want: []string{`--host "node-1"`}},
		{name: "fail/vault-env", args: []string{"serve", "-c", cfg}, env: map[string]string{"KEYSHARE_VAULT_NODES": "x"}, code: 2,
			want: []string{"KEYSHARE_VAULT_NODES", cfg}},
		{name: "fail/no-config", args: []string{"serve", "-c", "/nonexistent.yaml"}, code: 2, want: []string{"/nonexistent.yaml"}},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}
