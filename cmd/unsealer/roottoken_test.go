package main

import (
	"encoding/base64"
	"io"
	"os"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// TestInitRootTokenEncrypted: the root token goes out only encrypted when
// an age recipient or a PGP key is given.
func TestInitRootTokenEncrypted(t *testing.T) {
	t.Run("ok/age", func(t *testing.T) {
		c := newCluster(t, false)
		id, err := age.GenerateX25519Identity()
		must(t, err)
		out, e, code := c.unsealer(t, "", "init", "-c", c.cfg, "--root-token-age-recipient", id.Recipient().String())
		if code != 0 || strings.Contains(out+e, c.fake.RootToken()) {
			t.Fatalf("exit %d, or token in the clear:\n%s\n%s", code, out, e)
		}
		r, err := age.Decrypt(armor.NewReader(strings.NewReader(out[strings.Index(out, "-----BEGIN"):])), id)
		must(t, err)
		if b, _ := io.ReadAll(r); string(b) != c.fake.RootToken() {
			t.Fatal("decrypted token differs")
		}
	})
	t.Run("ok/pgp", func(t *testing.T) {
		c := newCluster(t, false)
		key := c.path("op.gpg")
		must(t, os.WriteFile(key, []byte{0x99, 0x01, 0x0d, 0x04}, 0o600))
		out, e, code := c.unsealer(t, "", "init", "-c", c.cfg, "--root-token-pgp-key", key)
		want := base64.StdEncoding.EncodeToString([]byte("fake-pgp-encrypted:" + c.fake.RootToken()))
		if code != 0 || !strings.Contains(out, want) || strings.Contains(out+e, c.fake.RootToken()) {
			t.Fatalf("exit %d:\n%s\n%s", code, out, e)
		}
	})
	t.Run("fail/bad-recipient", func(t *testing.T) {
		c := newCluster(t, false)
		if _, e, code := c.unsealer(t, "", "init", "-c", c.cfg, "--root-token-age-recipient", "age1bad"); code != 2 || !strings.Contains(e, "age1") {
			t.Fatalf("exit %d: %s", code, e)
		}
		if c.fake.LifecycleStats().Inits != 0 {
			t.Fatal("vault initialized despite a bad recipient")
		}
	})
}
