package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyshare/keyshare/internal/cliexit"
	"github.com/keyshare/keyshare/internal/lifecycle"
	"github.com/keyshare/keyshare/internal/logging"
	"github.com/keyshare/keyshare/internal/unsealer"
	"github.com/keyshare/keyshare/internal/vaultnode"
)

// pauseEnv names a step at which init or rekey stops and waits to be
// killed: the process tests use it to inject a kill -9 at each step.
const pauseEnv = "KEYSHARE_TEST_PAUSE_AT"

// env is what every lifecycle command builds from the config.
type env struct {
	nodes   []lifecycle.Node
	vaults  []*vaultnode.Node
	holders []lifecycle.HolderRef
	close   func()
	opts    lifecycle.Options
}

func setup(cmd *cobra.Command, load loader, retryFor time.Duration) (unsealer.Config, *env, error) {
	c, err := load(cmd)
	if err != nil {
		return c, nil, err
	}
	src, err := unsealer.Identity(c, logging.New(os.Stderr, 8, "unsealer"))
	if err != nil {
		return c, nil, err
	}
	vs, err := unsealer.VaultNodes(c)
	if err != nil {
		return c, nil, err
	}
	e := &env{vaults: vs, opts: lifecycle.Options{Out: cmd.ErrOrStderr(), RetryFor: retryFor}}
	for _, v := range vs {
		v.SetToken(os.Getenv("VAULT_TOKEN"))
		e.nodes = append(e.nodes, lifecycle.Node{Name: v.Name, Vault: v})
	}
	hs := unsealer.NewHolderSet(src, c, nil)
	e.close = hs.Close
	for _, h := range c.Holders {
		cl, err := hs.Client(h.ID)
		if err != nil {
			hs.Close()
			return c, nil, err
		}
		e.holders = append(e.holders, lifecycle.HolderRef{ID: h.ID, Holder: cl})
	}
	if step := os.Getenv(pauseEnv); step != "" {
		e.opts.AfterStep = func(s lifecycle.Step) error {
			if string(s) == step {
				fmt.Fprintf(os.Stderr, "paused at step %s\n", s)
				select {}
			}
			return nil
		}
	}
	return c, e, nil
}

// vault picks --node, or the first configured node.
func (e *env) vault(name string) (*vaultnode.Node, error) {
	if name == "" && len(e.vaults) > 0 {
		return e.vaults[0], nil
	}
	for _, v := range e.vaults {
		if v.Name == name {
			return v, nil
		}
	}
	return nil, usage(fmt.Errorf("--node %s: not in vault.nodes of the config", name))
}

// withEnv runs f with the env of a lifecycle command and its Vault node
// (--node, or the first configured), and closes the env after.
func withEnv(cmd *cobra.Command, load loader, retryFor time.Duration, node string, f func(unsealer.Config, *env, *vaultnode.Node) error) error {
	c, e, err := setup(cmd, load, retryFor)
	if err != nil {
		return err
	}
	defer e.close()
	v, err := e.vault(node)
	if err != nil {
		return err
	}
	return f(c, e, v)
}

// lifecycleCommands are init, unseal and rekey (see internal/lifecycle).
func lifecycleCommands(load loader) []*cobra.Command {
	return []*cobra.Command{initCommand(load), unsealCommand(load), rekeyCommand(load)}
}

// initFlags are init's flags.
type initFlags struct {
	node, ageRecipient, pgpFile string
	abort                       bool
	commit, gen                 uint64
	retryFor                    time.Duration
}

func initCommand(load loader) *cobra.Command {
	var fl initFlags
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialize Vault and deal its unseal key's shares to the holders (two-phase)",
		Long: `init initializes an uninitialized Vault node with the plan from the config
(default 5 shares, threshold 3, dealt 2/2/1), stages each holder's shares with
the full manifest, reads them back, commits everywhere, and unseals the node
through the holders. Shares never touch disk or the terminal. The root token
is printed once, or encrypted with --root-token-age-recipient or
--root-token-pgp-key.

--abort drops a staged generation left by an interrupted init, only while
Vault is not initialized (once it is, that generation may be its only key:
'unsealer rekey --recover' tests it and commits it); --commit GEN finishes
an init whose commit failed on some holders.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return fl.run(cmd, load) },
	}
	f := cmd.Flags()
	f.StringVar(&fl.node, "node", "", "Vault node to initialize (default: the first in vault.nodes)")
	f.StringVar(&fl.ageRecipient, "root-token-age-recipient", "", "encrypt the root token to this age public key (age1...)")
	f.StringVar(&fl.pgpFile, "root-token-pgp-key", "", "PGP public key file: Vault encrypts the root token to it")
	f.BoolVar(&fl.abort, "abort", false, "drop the generation an interrupted init left staged on the holders (only while vault is not initialized)")
	f.Uint64Var(&fl.gen, "generation", 0, "with --abort: the staged generation (default: newest held + 1)")
	f.Uint64Var(&fl.commit, "commit", 0, "finish an init by committing this generation on every holder")
	f.DurationVar(&fl.retryFor, "retry-for", lifecycle.DefaultRetryFor, "how long to retry a holder that fails to stage or commit")
	f.String("source-addr", "", "local address to connect to holders from")
	return cmd
}

// rootTokenKey checks the root-token flags and reads the PGP key, if any.
func (fl *initFlags) rootTokenKey() (string, error) {
	if fl.ageRecipient != "" && fl.pgpFile != "" {
		return "", usage(fmt.Errorf("give --root-token-age-recipient or --root-token-pgp-key, not both"))
	}
	if fl.ageRecipient != "" {
		if err := lifecycle.CheckAgeRecipient(fl.ageRecipient); err != nil {
			return "", usage(err)
		}
	}
	if fl.pgpFile == "" {
		return "", nil
	}
	pgp, err := lifecycle.ReadPGPKey(fl.pgpFile)
	if err != nil {
		return "", usage(err)
	}
	return pgp, nil
}

func (fl *initFlags) run(cmd *cobra.Command, load loader) error {
	pgp, err := fl.rootTokenKey()
	if err != nil {
		return err
	}
	return withEnv(cmd, load, fl.retryFor, fl.node, func(c unsealer.Config, e *env, v *vaultnode.Node) error {
		return fl.initWith(cmd, c, e, v, pgp)
	})
}

// initWith runs init, --abort or --commit through node v.
func (fl *initFlags) initWith(cmd *cobra.Command, c unsealer.Config, e *env, v *vaultnode.Node, pgp string) error {
	ctx := cmd.Context()
	switch {
	case fl.abort:
		return lifecycle.AbortInit(ctx, lifecycle.Node{Name: v.Name, Vault: v}, e.holders, fl.gen, e.opts)
	case fl.commit != 0:
		if err := lifecycle.CommitInit(ctx, e.holders, fl.commit, e.opts); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "committed generation %d on every holder\n", fl.commit)
		return nil
	}
	n := lifecycle.InitNode{Name: v.Name, Vault: v}
	res, err := lifecycle.Init(ctx, lifecycle.InitConfig{Node: n, Holders: e.holders, Plan: c.SharePlan(), RootTokenPGPKey: pgp, Options: e.opts})
	if werr := lifecycle.WriteRootToken(cmd.OutOrStdout(), res.RootToken, res.PGPEncrypted, fl.ageRecipient); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "init done: generation %d dealt to %d holders, %s unsealed from them\n", res.Generation, len(e.holders), n.Name)
	return nil
}

// rekeyFlags are rekey's flags.
type rekeyFlags struct {
	node                                   string
	status, abort, recover, prompt, asJSON bool
	files                                  []string
	retryFor, approvalWait                 time.Duration
	approve                                string
}

func rekeyCommand(load loader) *cobra.Command {
	var fl rekeyFlags
	cmd := &cobra.Command{
		Use:   "rekey",
		Short: "Rotate the unseal key's shares: Vault rekey with verification, two-phase on the holders",
		Long: `rekey runs Vault's rekey with require_verification: it starts the rekey,
collects a threshold of the current shares (from the holders, which release
them for a rekey only to an operator identity - run it with an operator
certificate in the config - and only while the node reports this very rekey;
or from --old-shares-file / --old-shares-prompt), stages the new generation
on every holder, gives the new shares to Vault's verify step, and commits on
the holders. Killed at any step, the old or the new generation
still unseals; --status shows every holder's committed and staged
generations and what needs settling; --recover settles an interrupted rekey
(it commits or drops a staged generation only on proof of which one Vault
uses: Vault's own rekey status, an unseal of a sealed node, or a test rekey
with the current shares, which it cancels); --abort cancels a rekey still in
progress, with its nonce. A rekey refuses to start while any holder has a
generation staged.

Holders release shares for a rekey only when two distinct operator
identities ask for the same rekey (policy.rekey_approvals, 2 by default: one
leaked operator certificate must not be enough). The operator who starts
the rekey is shown its nonce and waits (--approval-wait); a second operator
runs 'unsealer rekey --approve NONCE' with their own operator config, and
the rekey goes on. Paper shares (--old-shares-file) need no approval.

Adopting an existing Vault: when Vault is initialized and unsealed and every
holder is empty (nothing committed or staged), rekey adopts it: give a
threshold of its current shares with --old-shares-file (one per file or one
per line) or --old-shares-prompt. They are checked for format, duplicates and
Vault's own threshold, and Vault judges them (a rejected set stages nothing);
the holders' shares are never used. Vault is rekeyed with verification to the
configured plan and generation 1 is dealt to the holders, so the shares
people have seen are retired. Holders of which some are empty and others
hold a generation are refused.

A listener with the unauthenticated rekey endpoints disabled needs VAULT_TOKEN.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return fl.run(cmd, load) },
	}
	f := cmd.Flags()
	f.StringVar(&fl.node, "node", "", "the active Vault node to rekey through (default: the first in vault.nodes)")
	f.BoolVar(&fl.status, "status", false, "show Vault's rekey progress and the holders' generations")
	f.BoolVar(&fl.asJSON, "json", false, "with --status: print JSON")
	f.BoolVar(&fl.abort, "abort", false, "cancel a rekey still in progress and drop its staged generation")
	f.BoolVar(&fl.recover, "recover", false, "settle an interrupted rekey or init: commit or drop the staged generation, on proof")
	f.StringArrayVar(&fl.files, "old-shares-file", nil, "file with current shares, one per line ('-' for stdin); repeatable (rekey and --recover)")
	f.BoolVar(&fl.prompt, "old-shares-prompt", false, "type the current shares without echo")
	f.DurationVar(&fl.retryFor, "retry-for", lifecycle.DefaultRetryFor, "how long to retry a holder that fails to stage or commit")
	f.StringVar(&fl.approve, "approve", "", "approve, as a second operator, the rekey in progress with this nonce")
	f.DurationVar(&fl.approvalWait, "approval-wait", lifecycle.DefaultApprovalWait, "how long a rekey from the holders waits for a second operator's --approve")
	f.String("source-addr", "", "local address to connect to holders from")
	return cmd
}

func (fl *rekeyFlags) run(cmd *cobra.Command, load loader) error {
	return withEnv(cmd, load, fl.retryFor, fl.node, func(c unsealer.Config, e *env, v *vaultnode.Node) error {
		return fl.rekeyWith(cmd, c, e, v)
	})
}

// rekeyWith runs rekey or one of its other modes through node v.
func (fl *rekeyFlags) rekeyWith(cmd *cobra.Command, c unsealer.Config, e *env, v *vaultnode.Node) error {
	ctx := cmd.Context()
	n := lifecycle.RekeyNode{Name: v.Name, Vault: v}
	rc := lifecycle.RecoverConfig{Node: n, Holders: e.holders, Nodes: e.nodes, Options: e.opts}
	if fl.status {
		st := lifecycle.ReadRekeyState(ctx, rc)
		if fl.asJSON {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		st.Print(cmd.OutOrStdout())
		return nil
	}
	var msg string
	var err error
	switch {
	case fl.approve != "":
		msg, err = lifecycle.ApproveRekey(ctx, e.holders, n.Name, fl.approve)
	case fl.abort:
		msg, err = lifecycle.AbortRekey(ctx, rc)
	default:
		msg, err = fl.rekeyOrRecover(cmd, e, c, rc)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), msg)
	return nil
}

// rekeyOrRecover runs a rekey, or --recover, with the current shares from
// the holders (operator identities only) or typed.
func (fl *rekeyFlags) rekeyOrRecover(cmd *cobra.Command, e *env, c unsealer.Config, rc lifecycle.RecoverConfig) (string, error) {
	ctx := cmd.Context()
	old := lifecycle.FromHoldersApproved(e.holders, fl.approvalWait, e.opts)
	if fl.prompt || len(fl.files) > 0 {
		col, err := lifecycle.Gather(ctx, e.holders, e.nodes, lifecycle.Input{Files: fl.files, Stdin: cmd.InOrStdin(), Prompt: fl.prompt, Out: cmd.ErrOrStderr()})
		if err != nil {
			return "", err
		}
		defer col.Zero()
		old = lifecycle.FromCollector(col)
	}
	if fl.recover {
		rc.Old = old
		return lifecycle.RecoverRekey(ctx, rc)
	}
	res, err := lifecycle.Rekey(ctx, lifecycle.RekeyConfig{Node: rc.Node, Holders: e.holders, Plan: c.SharePlan(), Old: old, Options: e.opts})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("rekey done: generation %d replaced %d on every holder and in Vault", res.To, res.From), nil
}

func unsealCommand(load loader) *cobra.Command {
	var node string
	var files []string
	var fromHolders bool
	cmd := &cobra.Command{
		Use:   "unseal",
		Short: "Break-glass: unseal every sealed node with typed shares, share files, or shares pulled from holders",
		Long: `unseal is for when the holders cannot unseal Vault. It reads shares typed
without echo (when stdin is a terminal), from --file paths, or one per line
from stdin. Each share is checked as it is entered: format and length,
duplicates, and the holders' manifest when a majority of holders answer. A
wrong share is named with the reason; nothing is submitted until a full
threshold is valid. Then every sealed node (or --node) is unsealed, with
progress.

--from-holders pulls the shares from the holders instead, under their policy
for this config's identity (an operator certificate uses the operator rules),
and the holders audit every release.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withEnv(cmd, load, 0, node, func(_ unsealer.Config, e *env, v *vaultnode.Node) error {
				ctx := cmd.Context()
				nodes := e.nodes
				if node != "" {
					nodes = []lifecycle.Node{{Name: v.Name, Vault: v}}
				}
				var done int
				var err error
				if fromHolders {
					done, err = e.opts.UnsealFromHolders(ctx, nodes, e.holders)
				} else {
					col, gerr := lifecycle.Gather(ctx, e.holders, nodes, lifecycle.Input{Files: files, Stdin: cmd.InOrStdin(), Out: cmd.ErrOrStderr()})
					if gerr != nil {
						return gerr
					}
					defer col.Zero()
					done, err = e.opts.UnsealAll(ctx, nodes, col.Shares())
				}
				fmt.Fprintf(cmd.OutOrStdout(), "unsealed %d node(s)\n", done)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&node, "node", "", "unseal only this node (default: every sealed node)")
	f.StringArrayVar(&files, "file", nil, "file with shares, one per line ('-' for stdin); repeatable")
	f.BoolVar(&fromHolders, "from-holders", false, "pull the shares from the holders (audited) instead of typing them")
	f.String("source-addr", "", "local address to connect to holders from")
	return cmd
}

// usage marks err as a usage error (exit code 2).
func usage(err error) error { return &cliexit.UsageError{Err: err} }
