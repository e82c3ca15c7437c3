// Package confload loads a daemon's configuration with viper: the file
// first, then KEYSHARE_* environment variables, then command-line flags, in
// rising order of precedence. Unknown keys are errors that name the key and
// the file, so a typo never silently becomes a default.
package confload

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix is the prefix of environment overrides: tls.cert_file is
// KEYSHARE_TLS_CERT_FILE.
const EnvPrefix = "KEYSHARE"

// Error is a configuration error. Daemons exit with code 2 on it.
type Error struct {
	File string
	Err  error
}

func (e *Error) Error() string {
	if e.File == "" {
		return "config: " + e.Err.Error()
	}
	return fmt.Sprintf("config %s: %s", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns a *Error for file.
func Errorf(file, format string, args ...any) error {
	return &Error{File: file, Err: fmt.Errorf(format, args...)}
}

// IsConfigError reports whether err is a configuration error.
func IsConfigError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Load fills out (a pointer to a struct with mapstructure tags, holding the
// defaults already) from path, the environment and the flags. flagKeys maps
// a flag name to the config key it overrides; only flags the user set count.
func Load(path string, out any, flags *pflag.FlagSet, flagKeys map[string]string) error {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	for _, k := range keys(reflect.TypeOf(out).Elem(), "") {
		_ = v.BindEnv(k)
	}
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return &Error{File: path, Err: fmt.Errorf("cannot read it: %w: pass the right file with --config", err)}
		}
		v.SetConfigFile(path)
		if filepath.Ext(path) == "" {
			v.SetConfigType("yaml")
		}
		if err := v.ReadInConfig(); err != nil {
			return &Error{File: path, Err: fmt.Errorf("cannot read it: %w", err)}
		}
	}
	if flags != nil {
		for name, key := range flagKeys {
			if f := flags.Lookup(name); f != nil && f.Changed {
				if err := v.BindPFlag(key, f); err != nil {
					return &Error{File: path, Err: fmt.Errorf("flag --%s: %w", name, err)}
				}
			}
		}
	}
	err := v.Unmarshal(out, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	if err != nil {
		return &Error{File: path, Err: fmt.Errorf("%w (check the key names and types against configs/)", cleanup(err))}
	}
	return nil
}

// keys lists the dotted keys of a struct type's mapstructure tags, so that
// every one of them can be set from the environment.
func keys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		k := prefix + tag
		ft := f.Type
		if ft.Kind() == reflect.Struct && ft.String() != "time.Duration" {
			out = append(out, keys(ft, k+".")...)
			continue
		}
		out = append(out, k)
	}
	return out
}

// cleanup shortens mapstructure's multi-line error text to one line.
func cleanup(err error) error {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	msg = strings.ReplaceAll(msg, "decoding failed due to the following error(s):", "")
	msg = strings.ReplaceAll(msg, "'' has invalid keys:", "unknown keys:")
	return errors.New(strings.Join(strings.Fields(msg), " "))
}
