package confload

import "github.com/spf13/pflag"

// Validator is a daemon's configuration: Validate says what is wrong with
// it, naming the key and the fix (the file is added by LoadValidated).
type Validator interface {
	Validate() error
}

// LoadValidated is every daemon's load path: def (holding the defaults)
// filled from path, the environment and the flags (see Load), then
// Validate, then each of checks in order (for example that the files the
// config names exist). The first failure is returned as a *Error naming
// path, with the zero T, so that a half-checked config never escapes.
func LoadValidated[T Validator](path string, def T, flags *pflag.FlagSet, flagKeys map[string]string, checks ...func(T) error) (T, error) {
	var zero T
	c := def
	if err := Load(path, &c, flags, flagKeys); err != nil {
		return zero, err
	}
	for _, check := range append([]func(T) error{T.Validate}, checks...) {
		if err := check(c); err != nil {
			return zero, &Error{File: path, Err: err}
		}
	}
	return c, nil
}
