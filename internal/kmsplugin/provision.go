package kmsplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/keyshare/keyshare/internal/transit"
)

// The operator's provisioning commands, run with an admin token. Every one
// is idempotent: run it again and it changes nothing that is already right.

// Token metadata that marks the tokens the provisioning commands issue.
const (
	metaPurpose = "purpose"
	purposeKMS  = "keyshare-kms"
	metaHost    = "host"
	// DefaultTokenPeriod is the period of the host tokens: the plugin
	// renews before half of it; a token not renewed for this long dies.
	DefaultTokenPeriod = 24 * time.Hour
)

// Admin provisions Vault for the plugin.
type Admin struct {
	Vault *transit.Client
	Mount string
	Key   string
	Out   io.Writer
}

// PolicyName is the least-privilege policy of the key's plugins.
func (a Admin) PolicyName() string { return "keyshare-kms-" + a.Key }

// RoleName is the token role of one host.
func (a Admin) RoleName(host netip.Addr) string {
	return "keyshare-kms-" + strings.NewReplacer(".", "-", ":", "-").Replace(host.String())
}

// Policy grants encrypt and decrypt of the key (update only: no create,
// so encrypt can never make a key) and read of its metadata; nothing else.
func (a Admin) Policy() string {
	return fmt.Sprintf(`# keyshare KMS v2 plugin: wrap and unwrap seeds with one transit key.
path "%[1]s/encrypt/%[2]s" { capabilities = ["update"] }
path "%[1]s/decrypt/%[2]s" { capabilities = ["update"] }
path "%[1]s/keys/%[2]s" { capabilities = ["read"] }
`, a.Mount, a.Key)
}

func (a Admin) printf(format string, args ...any) { _, _ = fmt.Fprintf(a.Out, format, args...) }

// Setup enables transit at the mount if missing, creates the key
// (aes256-gcm96, not exportable) if missing, refuses its deletion, and
// writes the policy.
func (a Admin) Setup(ctx context.Context) error {
	var mounts struct {
		Data map[string]struct {
			Type string `json:"type"`
		} `json:"data"`
	}
	if err := a.Vault.Do(ctx, "GET", "sys/mounts", nil, &mounts); err != nil {
		return fmt.Errorf("list secret engines: %w", err)
	}
	switch m, ok := mounts.Data[a.Mount+"/"]; {
	case !ok:
		if err := a.Vault.Do(ctx, "POST", "sys/mounts/"+a.Mount, map[string]any{"type": "transit"}, nil); err != nil {
			return fmt.Errorf("enable transit at %s: %w", a.Mount, err)
		}
		a.printf("enabled transit at %s/\n", a.Mount)
	case m.Type != "transit":
		return fmt.Errorf("mount %s/ is a %s engine, not transit: pick another vault.mount", a.Mount, m.Type)
	default:
		a.printf("transit already enabled at %s/\n", a.Mount)
	}
	k, err := a.Vault.ReadKey(ctx, a.Mount, a.Key)
	switch {
	case transit.KindOf(err) == transit.KindNotFound:
		if err := a.Vault.Do(ctx, "POST", a.Mount+"/keys/"+a.Key, map[string]any{"type": "aes256-gcm96", "exportable": false}, nil); err != nil {
			return fmt.Errorf("create transit key %s/%s: %w", a.Mount, a.Key, err)
		}
		a.printf("created transit key %s/%s (aes256-gcm96, not exportable)\n", a.Mount, a.Key)
	case err != nil:
		return fmt.Errorf("read transit key %s/%s: %w", a.Mount, a.Key, err)
	case k.Type != "aes256-gcm96" || k.Exportable:
		return fmt.Errorf("transit key %s/%s exists as type %s (exportable %v): want a non-exportable aes256-gcm96 key; pick another vault.key", a.Mount, a.Key, k.Type, k.Exportable)
	default:
		a.printf("transit key %s/%s exists (version %d)\n", a.Mount, a.Key, k.LatestVersion)
	}
	if err := a.Vault.Do(ctx, "POST", a.Mount+"/keys/"+a.Key+"/config", map[string]any{"deletion_allowed": false}, nil); err != nil {
		return fmt.Errorf("refuse deletion of transit key %s/%s: %w", a.Mount, a.Key, err)
	}
	if err := a.Vault.Do(ctx, "PUT", "sys/policies/acl/"+a.PolicyName(), map[string]any{"policy": a.Policy()}, nil); err != nil {
		return fmt.Errorf("write policy %s: %w", a.PolicyName(), err)
	}
	a.printf("policy %s: update on %[2]s/encrypt/%[3]s and %[2]s/decrypt/%[3]s, read on %[2]s/keys/%[3]s\n", a.PolicyName(), a.Mount, a.Key)
	return nil
}

// IssuedToken is a token the commands issued, as listed (never the token).
type IssuedToken struct {
	Accessor string
	Host     string
	TTL      time.Duration
}

// CreateToken writes the host's token role (bound to exactly host) and
// issues a periodic token from it into file (mode 0600, written
// atomically). It refuses to overwrite an existing file: that is Rotate.
func (a Admin) CreateToken(ctx context.Context, host netip.Addr, file string, period time.Duration) (string, error) {
	if _, err := os.Lstat(file); err == nil {
		return "", fmt.Errorf("token file %s exists: use kmsplugin token rotate to replace its token", file)
	}
	return a.issue(ctx, host, file, period)
}

func (a Admin) issue(ctx context.Context, host netip.Addr, file string, period time.Duration) (string, error) {
	if !host.IsValid() {
		return "", errors.New("--host: want the IP address of the apiserver node")
	}
	if period <= 0 {
		period = DefaultTokenPeriod
	}
	bits := 32
	if host.Is6() && !host.Is4In6() {
		bits = 128
	}
	cidr := netip.PrefixFrom(host.Unmap(), bits).String()
	role := a.RoleName(host)
	if err := a.Vault.Do(ctx, "POST", "auth/token/roles/"+role, map[string]any{
		"allowed_policies": []string{a.PolicyName()}, "orphan": true, "renewable": true,
		"token_period": period.String(), "token_bound_cidrs": []string{cidr}, "token_type": "service",
	}, nil); err != nil {
		return "", fmt.Errorf("write token role %s: %w", role, err)
	}
	var r struct {
		Auth struct {
			ClientToken string `json:"client_token"`
			Accessor    string `json:"accessor"`
		} `json:"auth"`
	}
	if err := a.Vault.Do(ctx, "POST", "auth/token/create/"+role, map[string]any{
		"policies": []string{a.PolicyName()}, "display_name": "kms-" + host.String(),
		"meta": map[string]string{metaPurpose: purposeKMS, metaHost: host.Unmap().String()},
	}, &r); err != nil {
		return "", fmt.Errorf("issue a token from role %s: %w", role, err)
	}
	tok := []byte(r.Auth.ClientToken + "\n")
	defer clear(tok)
	if err := writeFileAtomic(file, tok); err != nil {
		// The token exists in Vault but nowhere else: revoke it.
		_ = a.Vault.Do(ctx, "POST", "auth/token/revoke-accessor", map[string]any{"accessor": r.Auth.Accessor}, nil)
		return "", fmt.Errorf("write token file %s (the new token was revoked): %w", file, err)
	}
	a.printf("issued token for host %s bound to %s (role %s, period %s): accessor %s, written to %s\n",
		host, cidr, role, period, r.Auth.Accessor, file)
	return r.Auth.Accessor, nil
}

// ListTokens lists the tokens issued for plugins, by host.
func (a Admin) ListTokens(ctx context.Context) ([]IssuedToken, error) {
	var r struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	if err := a.Vault.Do(ctx, "LIST", "auth/token/accessors", nil, &r); err != nil {
		return nil, fmt.Errorf("list token accessors: %w", err)
	}
	var out []IssuedToken
	for _, acc := range r.Data.Keys {
		t, err := a.Vault.LookupAccessor(ctx, acc)
		if err != nil {
			continue // revoked or expired since the listing
		}
		if t.Meta[metaPurpose] != purposeKMS {
			continue
		}
		out = append(out, IssuedToken{Accessor: acc, Host: t.Meta[metaHost], TTL: t.TTL()})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].Accessor < out[j].Accessor
	})
	return out, nil
}

// RevokeToken revokes one token by its accessor.
func (a Admin) RevokeToken(ctx context.Context, accessor string) error {
	if accessor == "" {
		return errors.New("--accessor: name the token's accessor (kmsplugin token list shows them)")
	}
	if err := a.Vault.Do(ctx, "POST", "auth/token/revoke-accessor", map[string]any{"accessor": accessor}, nil); err != nil {
		return fmt.Errorf("revoke the token with accessor %s: %w", accessor, err)
	}
	a.printf("revoked the token with accessor %s\n", accessor)
	return nil
}

// RotateToken issues a new token for host, swaps it into file, waits grace
// (so the plugin reads the new file), then revokes the host's old tokens.
func (a Admin) RotateToken(ctx context.Context, host netip.Addr, file string, period, grace time.Duration) (string, error) {
	old, err := a.ListTokens(ctx)
	if err != nil {
		return "", err
	}
	acc, err := a.issue(ctx, host, file, period)
	if err != nil {
		return "", err
	}
	if grace > 0 {
		select {
		case <-ctx.Done():
			return acc, ctx.Err()
		case <-time.After(grace):
		}
	}
	for _, t := range old {
		if t.Host == host.Unmap().String() && t.Accessor != acc {
			if err := a.RevokeToken(ctx, t.Accessor); err != nil {
				return acc, err
			}
		}
	}
	return acc, nil
}

// RotateKey adds a version to the transit key and prints the new key_id.
func (a Admin) RotateKey(ctx context.Context) (string, error) {
	if _, err := a.Vault.RotateKey(ctx, a.Mount, a.Key); err != nil {
		return "", fmt.Errorf("rotate transit key %s/%s: %w", a.Mount, a.Key, err)
	}
	k, err := a.Vault.ReadKey(ctx, a.Mount, a.Key)
	if err != nil {
		return "", fmt.Errorf("read transit key %s/%s: %w", a.Mount, a.Key, err)
	}
	id := KeyID(a.Mount, a.Key, k.LatestVersion, k.Created[k.LatestVersion])
	a.printf("rotated transit key %s/%s to version %d: key_id %s\n", a.Mount, a.Key, k.LatestVersion, id)
	return id, nil
}

// writeFileAtomic writes b to path with mode 0600: temp file, fsync,
// rename, fsync of the folder. A crash leaves the old file or the new one.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// CertRole enables Vault's TLS certificate auth method at mount if missing
// and writes role: a host certificate signed by caPEM, presented from
// exactly host, logs in with the plugin's policy; the token it gets is
// bound to host too, and periodic.
func (a Admin) CertRole(ctx context.Context, mount, role string, host netip.Addr, caPEM []byte, period time.Duration) error {
	if !host.IsValid() {
		return errors.New("--host: want the IP address of the apiserver node")
	}
	if period <= 0 {
		period = DefaultTokenPeriod
	}
	var auths struct {
		Data map[string]struct {
			Type string `json:"type"`
		} `json:"data"`
	}
	if err := a.Vault.Do(ctx, "GET", "sys/auth", nil, &auths); err != nil {
		return fmt.Errorf("list auth methods: %w", err)
	}
	switch m, ok := auths.Data[mount+"/"]; {
	case !ok:
		if err := a.Vault.Do(ctx, "POST", "sys/auth/"+mount, map[string]any{"type": "cert"}, nil); err != nil {
			return fmt.Errorf("enable cert auth at auth/%s: %w", mount, err)
		}
		a.printf("enabled cert auth at auth/%s/\n", mount)
	case m.Type != "cert":
		return fmt.Errorf("auth/%s/ is a %s method, not cert: pick another vault.cert_mount", mount, m.Type)
	}
	bits := 32
	if host.Is6() && !host.Is4In6() {
		bits = 128
	}
	cidr := netip.PrefixFrom(host.Unmap(), bits).String()
	if err := a.Vault.Do(ctx, "POST", "auth/"+mount+"/certs/"+role, map[string]any{
		"certificate": string(caPEM), "display_name": "kms-" + host.String(),
		"token_policies": []string{a.PolicyName()}, "token_bound_cidrs": []string{cidr},
		"token_period": period.String(), "token_type": "service",
	}, nil); err != nil {
		return fmt.Errorf("write cert role %s: %w", role, err)
	}
	a.printf("cert role %s at auth/%s: certificates signed by the given CA log in from %s only, policy %s, period %s\n",
		role, mount, cidr, a.PolicyName(), period)
	return nil
}
