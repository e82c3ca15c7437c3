package unsealer

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
	"github.com/keyshare/keyshare/internal/holder"
)

// The config fuzz targets write arbitrary bytes to a .yaml file and load it
// the way the daemons do (confload: viper, then mapstructure, then
// Validate). Loading must never panic; a failure is a *confload.Error that
// names the file; a config that loads is valid, and writing it back out
// (by its mapstructure keys) and loading that again gives the same config.

func FuzzHolderLoadShape(f *testing.F) {
	seedConfigs(f, "holder-*.yaml")
	f.Add([]byte("id: spiffe://x/holder/a\nlisten: [1, 2]\n"))
	f.Add([]byte("policy: {max_status_age: -5s, burst: 99999999999999999999}\n"))
	f.Add([]byte("&a [*a, *a]"))
	f.Add([]byte("vault: {nodes: [{name: {}}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzLoad(t, data, func(p string) (any, error) { return holder.LoadShape(p) })
	})
}

func FuzzUnsealerLoadShape(f *testing.F) {
	seedConfigs(f, "unsealer.yaml")
	f.Add([]byte("id: spiffe://x/unsealer/u\nholders: [{id: 1, address: {a: b}}]\n"))
	f.Add([]byte("watch: {interval: 1ns, unreachable_interval: 99999h}\n"))
	f.Add([]byte("plan: {threshold: 300, holders: -1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzLoad(t, data, func(p string) (any, error) { return LoadShape(p, nil) })
	})
}

// seedConfigs adds the example configs matching glob as seeds.
func seedConfigs(f *testing.F, glob string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "configs", glob))
	if err != nil || len(files) == 0 {
		f.Fatalf("no example configs %s: %v", glob, err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func fuzzLoad(t *testing.T, data []byte, load func(path string) (any, error)) {
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
	out, err := json.Marshal(toMap(reflect.ValueOf(cfg)))
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

// toMap turns a config struct into the map of its mapstructure keys.
func toMap(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Struct:
		m := map[string]any{}
		for i := range v.NumField() {
			key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("mapstructure"), ",")
			if key == "" || key == "-" {
				continue
			}
			m[key] = toMap(v.Field(i))
		}
		return m
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		s := make([]any, v.Len())
		for i := range s {
			s[i] = toMap(v.Index(i))
		}
		return s
	case reflect.Int64:
		if v.Type() == reflect.TypeFor[time.Duration]() {
			return time.Duration(v.Int()).String()
		}
	}
	return v.Interface()
}
