package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadConfig: each bad config gives one line that names the problem and
// the fix, and exit code 2.
func TestBadConfig(t *testing.T) {
	s := setupHolder(t)
	if out, code := runCLI(t, "", "keygen", s.w.path("seal.key")); code != 0 {
		t.Fatalf("keygen: %d %s", code, out)
	}
	good, err := os.ReadFile(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		name string
		// edit returns the case's config text; dir is the case's own
		// folder, for any file it needs to change. Cases share no
		// mutable file: each passes alone and in any order.
		edit func(t *testing.T, dir, cfg string) string
		// missing leaves the config file unwritten.
		missing bool
		want    []string
	}
	run := func(t *testing.T, tc tc) {
		dir := t.TempDir()
		path := filepath.Join(dir, "holder.yaml")
		if !tc.missing {
			if err := os.WriteFile(path, []byte(tc.edit(t, dir, string(good))), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out, code := runCLI(t, "", "run", "-c", path)
		if code != 2 {
			t.Fatalf("exit code %d, want 2; output:\n%s", code, out)
		}
		if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 {
			t.Fatalf("want one line, got %d:\n%s", n+1, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Fatalf("output %q lacks %q", out, w)
			}
		}
	}
	for _, c := range []tc{
		{name: "fail/missing-file", missing: true, want: []string{"no such file", "--config"}},
		{name: "fail/unknown-key", edit: func(_ *testing.T, _, s string) string { return s + "listn: 1.2.3.4:5\n" }, want: []string{"listn", "unknown"}},
		{name: "fail/bad-cidr", edit: func(_ *testing.T, _, s string) string {
			return strings.Replace(s, "127.0.0.20/32", "127.0.0.300/32", 1)
		},
			want: []string{"127.0.0.300/32", "CIDR"}},
		{name: "fail/missing-cert", edit: func(_ *testing.T, _, s string) string {
			return strings.Replace(s, s0(s, "holder-a.crt"), "/nonexistent/holder-a.crt", 1)
		},
			want: []string{"tls.cert_file", "/nonexistent/holder-a.crt"}},
		{name: "fail/loose-key", edit: func(t *testing.T, dir, cfg string) string {
			// A copy of the seal key, loosened: the shared one stays 0600.
			key, err := os.ReadFile(s.w.path("seal.key"))
			if err != nil {
				t.Fatal(err)
			}
			loose := filepath.Join(dir, "loose-seal.key")
			if err := os.WriteFile(loose, key, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(loose, 0o644); err != nil {
				t.Fatal(err)
			}
			return strings.Replace(cfg, s0(cfg, "seal.key"), loose, 1)
		},
			want: []string{"chmod 600", "loose-seal.key"}},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

// s0 returns the path in config text s that ends with suffix.
func s0(s, suffix string) string {
	for _, f := range strings.Fields(strings.NewReplacer(",", " ", "{", " ", "}", " ").Replace(s)) {
		if strings.HasSuffix(f, suffix) {
			return f
		}
	}
	return suffix
}
