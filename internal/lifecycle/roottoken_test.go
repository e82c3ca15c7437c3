package lifecycle_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/keyshare/keyshare/internal/lifecycle"
)

func TestWriteRootToken(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := lifecycle.WriteRootToken(&out, "hvs.secret", false, id.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "hvs.secret") {
		t.Fatal("age output holds the token in the clear")
	}
	block := out.String()[strings.Index(out.String(), "-----BEGIN"):]
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(block)), id)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); string(b) != "hvs.secret" {
		t.Fatalf("decrypted %q", b)
	}
	out.Reset()
	if err := lifecycle.WriteRootToken(&out, "hvs.secret", false, ""); err != nil || !strings.Contains(out.String(), "WARNING") {
		t.Fatalf("clear output: %v %q", err, out.String())
	}
	if err := lifecycle.CheckAgeRecipient("age1nope"); err == nil {
		t.Fatal("bad recipient accepted")
	}
}

func TestReadPGPKey(t *testing.T) {
	bin := []byte{0x99, 0x01, 0x0d, 0x04, 0x5e}
	b64 := base64.StdEncoding.EncodeToString(bin)
	dir := t.TempDir()
	type tc struct {
		name, content string
		ok            bool
	}
	run := func(t *testing.T, c tc) {
		p := filepath.Join(dir, strings.ReplaceAll(c.name, "/", "-"))
		if err := os.WriteFile(p, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := lifecycle.ReadPGPKey(p)
		if c.ok != (err == nil) || c.ok && got != b64 {
			t.Fatalf("got %q, %v", got, err)
		}
	}
	for _, c := range []tc{
		{name: "ok/armored", content: "-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: x\n\n" + b64 + "\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n", ok: true},
		{name: "ok/binary", content: string(bin), ok: true},
		{name: "ok/base64", content: b64 + "\n", ok: true},
		{name: "fail/text", content: "not a key!", ok: false},
		{name: "fail/armored-without-end", content: "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n" + b64 + "\n", ok: false},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}
