package kmsplugin

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/transit"
)

// TestProvisioning: setup is idempotent and least-privilege; tokens are
// issued bound to one host into 0600 files, listed by host, rotated and
// revoked.
func TestProvisioning(t *testing.T) {
	r := newRig(t, 1) // setup ran once
	ctx := testCtx(t, 20*time.Second)
	if err := r.admin.Setup(ctx); err != nil {
		t.Fatalf("second setup: %v", err)
	}
	k, err := r.admin.Vault.ReadKey(ctx, "transit", "kubernetes")
	if err != nil || k.LatestVersion != 1 || k.DeletionAllowed || k.Exportable || k.Type != "aes256-gcm96" {
		t.Fatalf("key after two setups: %+v (%v)", k, err)
	}
	pol := r.admin.Policy()
	if strings.Contains(pol, "create") || strings.Count(pol, "path ") != 3 || strings.Contains(pol, "*") {
		t.Fatalf("policy is not least privilege:\n%s", pol)
	}

	acc := r.issue(t, pluginIP)
	fi, err := os.Stat(r.cfg.Vault.TokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v (%v), want 0600", fi.Mode(), err)
	}
	if _, err := r.admin.CreateToken(ctx, mustAddr(pluginIP), r.cfg.Vault.TokenFile, time.Hour); err == nil || !strings.Contains(err.Error(), "token rotate") {
		t.Fatalf("create over an existing file: %v, want a refusal pointing to rotate", err)
	}

	// The host's token can encrypt with the key, but not create another
	// key, and not read anything else.
	c := r.pluginClient(t)
	if _, _, err := c.Encrypt(ctx, "transit", "kubernetes", []byte("x"), associatedData, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Encrypt(ctx, "transit", "other", []byte("x"), nil, 0); transit.KindOf(err) != transit.KindDenied {
		t.Fatalf("encrypt with a new key name: %v, want denied (no create)", err)
	}
	if err := c.Do(ctx, "GET", "sys/mounts", nil, nil); transit.KindOf(err) != transit.KindDenied {
		t.Fatalf("read sys/mounts: %v, want denied", err)
	}
	info, err := c.LookupSelf(ctx)
	if err != nil || info.Accessor != acc || len(info.BoundCIDRs) != 1 || info.BoundCIDRs[0] != pluginIP+"/32" || info.Period == 0 {
		t.Fatalf("token: %+v (%v), want accessor %s bound to %s/32, periodic", info, err, acc, pluginIP)
	}

	list, err := r.admin.ListTokens(ctx)
	if err != nil || len(list) != 1 || list[0].Host != pluginIP || list[0].Accessor != acc {
		t.Fatalf("list = %+v (%v)", list, err)
	}
	newAcc, err := r.admin.RotateToken(ctx, mustAddr(pluginIP), r.cfg.Vault.TokenFile, time.Hour, 0)
	if err != nil || newAcc == acc {
		t.Fatalf("rotate: %s (%v)", newAcc, err)
	}
	list, _ = r.admin.ListTokens(ctx)
	if len(list) != 1 || list[0].Accessor != newAcc {
		t.Fatalf("after rotate: %+v, want only %s", list, newAcc)
	}
	if _, err := c.LookupSelf(ctx); transit.KindOf(err) != transit.KindDenied {
		t.Fatalf("old token after rotate: %v, want denied", err)
	}
	if err := r.admin.RevokeToken(ctx, newAcc); err != nil {
		t.Fatal(err)
	}
	if list, _ = r.admin.ListTokens(ctx); len(list) != 0 {
		t.Fatalf("after revoke: %+v", list)
	}
}

// pluginClient is a client from the plugin's host with its current token.
func (r *rig) pluginClient(t *testing.T) *transit.Client {
	t.Helper()
	c, err := NewVaultClient(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.SetToken(r.token(t))
	return c
}
