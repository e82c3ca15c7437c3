package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyshare/keyshare/internal/cliexit"
	"github.com/keyshare/keyshare/internal/kmsplugin"
)

// adminTimeout bounds one provisioning command.
const adminTimeout = time.Minute

// admin builds the provisioning client from the config's vault section and
// the admin token in VAULT_TOKEN (the only variable these commands read).
func admin(cmd *cobra.Command, load loader) (kmsplugin.Admin, error) {
	c, err := load(cmd)
	if err != nil {
		return kmsplugin.Admin{}, err
	}
	tok := os.Getenv("VAULT_TOKEN")
	if tok == "" {
		return kmsplugin.Admin{}, cliexit.Usagef("VAULT_TOKEN is empty: export an admin token (root, or one allowed to manage mounts, policies, token roles and accessors)")
	}
	c.Vault.SourceAddr = "" // the operator runs these from anywhere
	vc, err := kmsplugin.NewVaultClient(c)
	if err != nil {
		return kmsplugin.Admin{}, err
	}
	vc.SetToken(tok)
	return kmsplugin.Admin{Vault: vc, Mount: c.Vault.Mount, Key: c.Vault.Key, Out: cmd.OutOrStdout()}, nil
}

// loader reads the plugin's config, with the command's flags.
type loader func(*cobra.Command) (kmsplugin.Config, error)

// adminFunc is one provisioning command's work, given the admin client, a
// context bounded by adminTimeout (plus extra) and, for the commands with
// --host, the host's address.
type adminFunc func(ctx context.Context, cmd *cobra.Command, a kmsplugin.Admin, host netip.Addr) error

// withAdmin is the RunE of a provisioning command: it checks --host first
// (when needHost), then builds the admin client, then runs fn.
func withAdmin(load loader, needHost bool, extra func(*cobra.Command) time.Duration, fn adminFunc) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		var host netip.Addr
		if needHost {
			h, err := hostFlag(cmd)
			if err != nil {
				return err
			}
			host = h
		}
		a, err := admin(cmd, load)
		if err != nil {
			return err
		}
		timeout := adminTimeout
		if extra != nil {
			timeout += extra(cmd)
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
		defer cancel()
		return fn(ctx, cmd, a, host)
	}
}

func hostFlag(cmd *cobra.Command) (netip.Addr, error) {
	h, _ := cmd.Flags().GetString("host")
	a, err := netip.ParseAddr(h)
	if err != nil {
		return netip.Addr{}, cliexit.Usagef("--host %q: want the apiserver node's IP address, the only address its token will work from", h)
	}
	return a, nil
}

func adminCommands(load loader) []*cobra.Command {
	return []*cobra.Command{vaultCommand(load), tokenCommand(load), keyCommand(load), certRoleCommand(load)}
}

func vaultCommand(load loader) *cobra.Command {
	vault := &cobra.Command{Use: "vault", Short: "Prepare Vault for the plugin (admin VAULT_TOKEN)"}
	vault.AddCommand(&cobra.Command{
		Use:   "setup",
		Short: "Enable transit, create the key, write the least-privilege policy (idempotent)",
		Long: `setup enables the transit engine at vault.mount if it is missing, creates
vault.key (aes256-gcm96, not exportable) if missing, refuses its deletion, and
writes the policy keyshare-kms-<key>: update on <mount>/encrypt/<key> and
<mount>/decrypt/<key>, read on <mount>/keys/<key>, nothing else (no create, so
encrypt can never make a key). Run it again at any time: it changes nothing
that is already right.`,
		Args: cobra.NoArgs,
		RunE: withAdmin(load, false, nil, func(ctx context.Context, _ *cobra.Command, a kmsplugin.Admin, _ netip.Addr) error {
			return a.Setup(ctx)
		}),
	})
	return vault
}

func tokenCommand(load loader) *cobra.Command {
	token := &cobra.Command{Use: "token", Short: "Issue, list, revoke and rotate the hosts' Vault tokens (admin VAULT_TOKEN)"}
	token.AddCommand(tokenCreateCommand(load), tokenListCommand(load), tokenRevokeCommand(load), tokenRotateCommand(load))
	return token
}

// tokenFileFlags are the flags of token create and token rotate.
func tokenFileFlags(c *cobra.Command) {
	c.Flags().String("host", "", "the apiserver node's IP address (required)")
	c.Flags().String("out", "", "token file to write, mode 0600 (required)")
	c.Flags().Duration("period", kmsplugin.DefaultTokenPeriod, "token period: it dies if not renewed for this long")
	_ = c.MarkFlagRequired("host")
	_ = c.MarkFlagRequired("out")
}

func tokenCreateCommand(load loader) *cobra.Command {
	create := &cobra.Command{
		Use:   "create --host IP --out FILE",
		Short: "Issue a periodic token bound to exactly one host's address, into a 0600 file",
		Long: `create writes the token role keyshare-kms-<ip> (token_bound_cidrs = exactly
--host, the policy of setup, periodic, orphan) and issues a token from it into
--out, mode 0600, written atomically. Vault refuses the token from any other
address. It refuses to overwrite an existing file: use 'token rotate'. It prints
the token's accessor, never the token.`,
		Args: cobra.NoArgs,
		RunE: withAdmin(load, true, nil, func(ctx context.Context, cmd *cobra.Command, a kmsplugin.Admin, host netip.Addr) error {
			out, _ := cmd.Flags().GetString("out")
			period, _ := cmd.Flags().GetDuration("period")
			_, err := a.CreateToken(ctx, host, out, period)
			return err
		}),
	}
	tokenFileFlags(create)
	return create
}

func tokenRotateCommand(load loader) *cobra.Command {
	grace := func(cmd *cobra.Command) time.Duration { g, _ := cmd.Flags().GetDuration("grace"); return g }
	rotate := &cobra.Command{
		Use:   "rotate --host IP --out FILE",
		Short: "Issue a new token for a host, swap the file, then revoke the host's old tokens",
		Long: `rotate issues a new token for --host, replaces --out atomically (the running
plugin reads it within a second, without a restart), waits --grace, then
revokes every older token issued for that host.`,
		Args: cobra.NoArgs,
		RunE: withAdmin(load, true, grace, func(ctx context.Context, cmd *cobra.Command, a kmsplugin.Admin, host netip.Addr) error {
			out, _ := cmd.Flags().GetString("out")
			period, _ := cmd.Flags().GetDuration("period")
			_, err := a.RotateToken(ctx, host, out, period, grace(cmd))
			return err
		}),
	}
	tokenFileFlags(rotate)
	rotate.Flags().Duration("grace", 5*time.Second, "wait this long between writing the new token and revoking the old ones")
	return rotate
}

func tokenListCommand(load loader) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the plugin tokens by host: accessor, host address, TTL left",
		Args:  cobra.NoArgs,
		RunE: withAdmin(load, false, nil, func(ctx context.Context, cmd *cobra.Command, a kmsplugin.Admin, _ netip.Addr) error {
			ts, err := a.ListTokens(ctx)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "HOST\tACCESSOR\tTTL")
			for _, t := range ts {
				fmt.Fprintf(w, "%s\t%s\t%s\n", t.Host, t.Accessor, t.TTL)
			}
			return w.Flush()
		}),
	}
}

func tokenRevokeCommand(load loader) *cobra.Command {
	revoke := &cobra.Command{
		Use:   "revoke --accessor ACCESSOR",
		Short: "Revoke one host's token by its accessor (see token list)",
		Args:  cobra.NoArgs,
		RunE: withAdmin(load, false, nil, func(ctx context.Context, cmd *cobra.Command, a kmsplugin.Admin, _ netip.Addr) error {
			acc, _ := cmd.Flags().GetString("accessor")
			return a.RevokeToken(ctx, acc)
		}),
	}
	revoke.Flags().String("accessor", "", "the token's accessor (required)")
	_ = revoke.MarkFlagRequired("accessor")
	return revoke
}

func keyCommand(load loader) *cobra.Command {
	key := &cobra.Command{Use: "key", Short: "Manage the transit key (admin VAULT_TOKEN)"}
	key.AddCommand(&cobra.Command{
		Use:   "rotate",
		Short: "Add a version to the transit key: a new key_id for new writes, old ones still decrypt",
		Long: `rotate adds a version to vault.key and prints the new key_id. Each plugin's
Status reports it within status.interval; the apiserver then wraps a new seed
with it. Secrets written before still decrypt with their version; rewrite them
(kubectl get secrets -A -o json | kubectl replace -f -) to move them to it.`,
		Args: cobra.NoArgs,
		RunE: withAdmin(load, false, nil, func(ctx context.Context, _ *cobra.Command, a kmsplugin.Admin, _ netip.Addr) error {
			_, err := a.RotateKey(ctx)
			return err
		}),
	})
	return key
}

func certRoleCommand(load loader) *cobra.Command {
	certRole := &cobra.Command{
		Use:   "cert-role --host IP --ca FILE",
		Short: "Let a host log in with its TLS certificate instead of a token file (vault.auth: cert)",
		Long: `cert-role enables Vault's cert auth method at vault.cert_mount if missing and
writes the role vault.cert_role: a certificate signed by --ca, presented from
exactly --host, logs in with the policy of setup and gets a periodic token bound
to --host. The plugin (vault.auth: cert, vault.cert_file, vault.key_file) logs
in at start and again whenever its token expires or is revoked. Idempotent.`,
		Args: cobra.NoArgs,
		RunE: withAdmin(load, true, nil, func(ctx context.Context, cmd *cobra.Command, a kmsplugin.Admin, host netip.Addr) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			if c.Vault.CertRole == "" {
				return fmt.Errorf("config %s: vault.cert_role: missing: name the role", c.File())
			}
			caFile, _ := cmd.Flags().GetString("ca")
			ca, err := os.ReadFile(caFile)
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			period, _ := cmd.Flags().GetDuration("period")
			return a.CertRole(ctx, c.Vault.CertMount, c.Vault.CertRole, host, ca, period)
		}),
	}
	certRole.Flags().String("host", "", "the apiserver node's IP address (required)")
	certRole.Flags().String("ca", "", "PEM file of the CA that signs the hosts' certificates (required)")
	certRole.Flags().Duration("period", kmsplugin.DefaultTokenPeriod, "period of the tokens it issues")
	_ = certRole.MarkFlagRequired("host")
	_ = certRole.MarkFlagRequired("ca")
	return certRole
}
