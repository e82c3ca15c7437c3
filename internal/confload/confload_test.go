package confload

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type sample struct {
	Listen string `mapstructure:"listen"`
	Nested struct {
		Timeout time.Duration `mapstructure:"timeout"`
		Seeds   []string      `mapstructure:"seeds"`
	} `mapstructure:"nested"`
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("listen: file:1\nnested: {timeout: 2s, seeds: [a, b]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type tc struct {
		name   string
		env    map[string]string
		flag   string
		listen string
		to     time.Duration
	}
	run := func(t *testing.T, tc tc) {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		fs.String("listen", "", "")
		if tc.flag != "" {
			_ = fs.Parse([]string{"--listen", tc.flag})
		}
		var s sample
		s.Listen = "default"
		if err := Load(p, &s, fs, map[string]string{"listen": "listen"}); err != nil {
			t.Fatal(err)
		}
		if s.Listen != tc.listen || s.Nested.Timeout != tc.to {
			t.Fatalf("got listen %q timeout %s, want %q %s", s.Listen, s.Nested.Timeout, tc.listen, tc.to)
		}
	}
	for _, c := range []tc{
		{name: "ok/file", listen: "file:1", to: 2 * time.Second},
		{name: "ok/env-over-file", env: map[string]string{"KEYSHARE_LISTEN": "env:2", "KEYSHARE_NESTED_TIMEOUT": "3s"}, listen: "env:2", to: 3 * time.Second},
		{name: "ok/flag-over-env", env: map[string]string{"KEYSHARE_LISTEN": "env:2"}, flag: "flag:3", listen: "flag:3", to: 2 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

func TestErrorsNameKeyAndFile(t *testing.T) {
	dir := t.TempDir()
	type tc struct {
		name, body string
		want       []string
	}
	run := func(t *testing.T, tc tc) {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, "/", "-")+".yaml")
		if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		var s sample
		err := Load(p, &s, nil, nil)
		if err == nil || !IsConfigError(err) {
			t.Fatalf("err = %v, want a config error", err)
		}
		for _, w := range append(tc.want, p) {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("error %q lacks %q", err, w)
			}
		}
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("error spans lines: %q", err)
		}
	}
	for _, c := range []tc{
		{name: "fail/unknown-key", body: "listn: x\n", want: []string{"listn"}},
		{name: "fail/bad-duration", body: "nested: {timeout: soon}\n", want: []string{"timeout"}},
		{name: "fail/bad-yaml", body: "listen: [\n", want: []string{"cannot read"}},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
	var s sample
	if err := Load(filepath.Join(dir, "missing.yaml"), &s, nil, nil); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("missing file: err = %v", err)
	}
}

// checked is a sample config that refuses an empty listen.
type checked sample

func (c checked) Validate() error {
	if c.Listen == "" {
		return errors.New("listen: missing: set it")
	}
	return nil
}

// TestLoadValidated: Validate runs first, then each check in order; the
// first failure is a config error naming the file, and no config escapes.
func TestLoadValidated(t *testing.T) {
	dir := t.TempDir()
	type tc struct {
		name, body string
		checks     []func(checked) error
		want       string // "" for ok
	}
	later := errors.New("files: missing")
	run := func(t *testing.T, tc tc) {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, "/", "-")+".yaml")
		if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		def := checked{}
		def.Nested.Timeout = time.Second
		c, err := LoadValidated(p, def, nil, nil, tc.checks...)
		if tc.want == "" {
			if err != nil || c.Listen != "x" || c.Nested.Timeout != time.Second {
				t.Fatalf("got %+v, %v; want listen x over the default timeout", c, err)
			}
			return
		}
		if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Fatalf("err = %v, want a config error of %s naming %q", err, p, tc.want)
		}
		if c.Listen != "" || c.Nested.Timeout != 0 {
			t.Fatalf("a failed load returned %+v, want the zero config", c)
		}
	}
	for _, c := range []tc{
		{name: "ok/valid", body: "listen: x\n", checks: []func(checked) error{func(checked) error { return nil }}},
		{name: "fail/unknown-key", body: "listn: x\n", want: "listn"},
		{name: "fail/validate", body: "nested: {timeout: 2s}\n", want: "listen: missing",
			checks: []func(checked) error{func(checked) error { t.Error("check ran before Validate passed"); return nil }}},
		{name: "fail/check", body: "listen: x\n", want: "files: missing",
			checks: []func(checked) error{func(checked) error { return later }, func(checked) error { t.Error("check ran after one failed"); return nil }}},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}
