// Package conffuzz is the shared body of the config fuzz targets
// (internal/holder, internal/unsealer) and their seeds: example configs
// with one key changed, each checked to reach the check it targets. The
// config tests that edit an example and load it use Example and LoadText.
package conffuzz

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/confload"
)

// Seed is an example config with one substitution, and a word the load
// error must contain: proof that the seed reaches the check it targets
// rather than failing earlier on a key that does not exist.
type Seed struct {
	Name, Old, New, Want string
}

// Seeds applies each seed to the example config at path (relative to the
// test's package) and returns the texts, failing if a seed's Old text is
// not in the example any more.
func Seeds(tb testing.TB, path string, seeds []Seed) map[string][]byte {
	tb.Helper()
	base, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]byte{"example": base}
	for _, s := range seeds {
		if !strings.Contains(string(base), s.Old) {
			tb.Fatalf("seed %s: %s no longer contains %q", s.Name, path, s.Old)
		}
		out[s.Name] = []byte(strings.Replace(string(base), s.Old, s.New, 1))
	}
	return out
}

// CheckSeeds loads every seed and checks that it fails naming its Want.
func CheckSeeds(t *testing.T, path string, seeds []Seed, load func(path string) (any, error)) {
	texts := Seeds(t, path, seeds)
	for _, s := range seeds {
		t.Run(s.Name, func(t *testing.T) {
			_, err := LoadText(t, string(texts[s.Name]), load)
			if err == nil || !strings.Contains(err.Error(), s.Want) {
				t.Fatalf("seed %s: %v; want an error naming %q", s.Name, err, s.Want)
			}
		})
	}
}

// Fuzz is a config fuzz target: the seeds (see Seeds) and a YAML alias
// bomb as its corpus, each input loaded by Load.
func Fuzz(f *testing.F, path string, seeds []Seed, load func(path string) (any, error)) {
	for _, b := range Seeds(f, path, seeds) {
		f.Add(b)
	}
	f.Add([]byte("&a [*a, *a]"))
	f.Fuzz(func(t *testing.T, data []byte) { Load(t, data, load) })
}

// Example returns the example config at path (relative to the test's
// package) with its trust domain, keyshare.example, replaced by
// trustDomain, failing the test unless the text contains each of lines
// (the ones the test edits), so that an edit of the example never turns a
// test into one that checks nothing.
func Example(tb testing.TB, path, trustDomain string, lines ...string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "keyshare.example", trustDomain)
	for _, l := range lines {
		if !strings.Contains(text, l) {
			tb.Fatalf("%s no longer has %q", path, l)
		}
	}
	return text
}

// LoadText writes text to a .yaml file of its own and loads it with load.
// It returns the file's path (a load error must name it) and the error.
func LoadText(tb testing.TB, text string, load func(path string) (any, error)) (string, error) {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	_, err := load(p)
	return p, err
}

// Load writes data to a .yaml file and loads it with load, the way the
// daemons do (confload: viper, then mapstructure, then Validate). Loading
// must never panic; a failure is a *confload.Error that names the file; a
// config that loads is valid, and writing it back out (by its mapstructure
// keys) and loading that again gives the same config.
func Load(t *testing.T, data []byte, load func(path string) (any, error)) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := load(p)
	if err != nil {
		var ce *confload.Error
		if !errors.As(err, &ce) || ce.File != p || !strings.Contains(err.Error(), p) {
			t.Fatalf("load error does not name the file: %#v", err)
		}
		return
	}
	// Write the loaded config back out as JSON (valid YAML) and load it.
	out, err := json.Marshal(ToMap(reflect.ValueOf(cfg)))
	if err != nil {
		t.Fatalf("failed to re-encode a loaded config: %v", err)
	}
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := load(p)
	if err != nil {
		t.Fatalf("a loaded config, written back out, does not load: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(cfg, again) {
		t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", again, cfg)
	}
}

// ToMap turns a config struct into the map of its mapstructure keys.
func ToMap(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Struct:
		m := map[string]any{}
		for i := range v.NumField() {
			key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("mapstructure"), ",")
			if key == "" || key == "-" {
				continue
			}
			m[key] = ToMap(v.Field(i))
		}
		return m
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		s := make([]any, v.Len())
		for i := range s {
			s[i] = ToMap(v.Index(i))
		}
		return s
	case reflect.Int64:
		if v.Type() == reflect.TypeFor[time.Duration]() {
			return time.Duration(v.Int()).String()
		}
	}
	return v.Interface()
}
