package transit

import (
	"fmt"
	"testing"
)

// FuzzCiphertextVersion: whatever etcd hands the plugin as a ciphertext,
// reading its version never panics, and a version it accepts is the one
// written after "vault:v".
func FuzzCiphertextVersion(f *testing.F) {
	for _, s := range []string{"vault:v1:abc", "vault:v99:", "vault:v-1:x", "vault:v:x", "vault:v01:x", "", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		v, err := CiphertextVersion(ct)
		if err != nil {
			if v != 0 {
				t.Fatalf("%q: version %d with error %v", ct, v, err)
			}
			return
		}
		if v < 1 {
			t.Fatalf("%q: accepted version %d", ct, v)
		}
		again, err := CiphertextVersion(fmt.Sprintf("vault:v%d:rest", v))
		if err != nil || again != v {
			t.Fatalf("%q: version %d does not round trip (%d, %v)", ct, v, again, err)
		}
	})
}

// FuzzHTTPError: any answer body from a node classifies without a panic,
// and the message kept is bounded.
func FuzzHTTPError(f *testing.F) {
	f.Add(503, []byte(`{"errors":["Vault is sealed"]}`))
	f.Add(400, []byte(`{"errors":["encryption key not found"]}`))
	f.Add(403, []byte(`not json`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := httpError("https://n", "p", status, body)
		if e.Kind == 0 || len(e.Msg) > 303 {
			t.Fatalf("status %d: kind %v, message of %d bytes", status, e.Kind, len(e.Msg))
		}
		_ = e.Error()
	})
}
