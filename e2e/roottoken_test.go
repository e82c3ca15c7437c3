//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/topology"
)

// TestInitRootTokenPGP: `unsealer init --root-token-pgp-key` hands the
// real Vault a real OpenPGP public key (made here with gpg). Vault encrypts
// the root token to it; the test decrypts what init printed with the private
// key, as the README tells an operator to (base64 -d | gpg -dq), and the
// token works against Vault. The unit test in cmd/unsealer can only check the
// fake's stand-in encoding; this one checks Vault's.
func TestInitRootTokenPGP(t *testing.T) {
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		t.Fatal("gpg is needed for this test (Debian package gnupg): ", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	home := t.TempDir()
	runGPG := func(stdin []byte, args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(ctx, gpg, append([]string{"--homedir", home, "--batch", "--quiet", "--no-tty"}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("gpg %s: %v: %s", strings.Join(args, " "), err, errb.String())
		}
		return out.Bytes()
	}
	t.Cleanup(func() { _ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	const uid = "keyshare e2e operator <operator@keyshare.test>"
	// A primary key for signing and an RSA subkey for encryption, as an
	// operator's key would have (a primary key alone cannot take Vault's
	// message).
	runGPG(nil, "--passphrase", "", "--pinentry-mode", "loopback", "--quick-gen-key", uid, "rsa2048", "sign,cert", "never")
	fpr := ""
	for _, l := range strings.Split(string(runGPG(nil, "--with-colons", "--list-keys", uid)), "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	if fpr == "" {
		t.Fatal("gpg made no key with a fingerprint")
	}
	runGPG(nil, "--passphrase", "", "--pinentry-mode", "loopback", "--quick-add-key", fpr, "rsa2048", "encr", "never")
	pub := runGPG(nil, "--export", uid)
	keyFile := filepath.Join(t.TempDir(), "operator.gpg")
	if err := os.WriteFile(keyFile, pub, 0o600); err != nil {
		t.Fatal(err)
	}

	topo := startTopology(t, topology.Options{VaultIPs: []string{"127.0.0.121"}})
	res, err := topo.Run(ctx, topology.CLI{AllowFail: true}, topo.Bins.Unsealer, "init", "-c", topo.UnsealerConfig, "--root-token-pgp-key", keyFile)
	if err != nil || res.Code != 0 {
		t.Fatalf("unsealer init: exit %d, %v\n%s", res.Code, err, res.Combined())
	}
	const intro = "Root token, encrypted by Vault to the PGP key given"
	i := strings.Index(res.Stdout, intro)
	if i < 0 {
		t.Fatalf("init printed no encrypted root token:\n%s", res.Stdout)
	}
	lines := strings.SplitN(res.Stdout[i:], "\n", 3)
	if len(lines) < 2 {
		t.Fatalf("no base64 line after %q:\n%s", intro, res.Stdout)
	}
	blob, err := base64.StdEncoding.DecodeString(strings.TrimSpace(lines[1]))
	if err != nil {
		t.Fatalf("the encrypted root token is not base64: %v", err)
	}
	token := strings.TrimSpace(string(runGPG(blob, "--decrypt")))
	if !strings.HasPrefix(token, "hvs.") {
		t.Fatalf("decrypted root token has an unexpected form (%d bytes)", len(token))
	}
	if strings.Contains(res.Combined(), token) {
		t.Fatal("init printed the root token in the clear")
	}

	node := topo.Vault.Node(0)
	cl, err := node.Client()
	if err != nil {
		t.Fatal(err)
	}
	cl.SetToken(token)
	sec, err := cl.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		t.Fatalf("vault refuses the decrypted root token: %v", err)
	}
	pols, err := sec.TokenPolicies()
	if err != nil || len(pols) != 1 || pols[0] != "root" {
		t.Fatalf("decrypted token has policies %v (%v), want [root]", pols, err)
	}
}
