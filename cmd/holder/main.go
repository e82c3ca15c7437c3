// Command holder keeps a share of a Vault unseal key, sealed on disk, and
// releases it over mutual TLS to an authorized keyshare coordinator while
// the Vault node it names is sealed. Run `holder --help` for the commands.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/keyshare/keyshare/internal/cliexit"
	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/holder"
	"github.com/keyshare/keyshare/internal/logging"
	"github.com/keyshare/keyshare/internal/version"
	"github.com/keyshare/keyshare/pkg/shares"
)

func main() {
	os.Exit(run())
}

func run() int {
	// export, import and verify hold shares too: no core dumps, whatever
	// the command. The daemon reports what could not be turned off.
	_ = shares.HardenProcess()
	root := &cobra.Command{
		Use:   "holder",
		Short: "Keep Vault unseal-key shares sealed on disk and release them only under policy",
		Long: `holder runs on each keyshare host. It keeps its shares of the Vault unseal key
encrypted on disk, gossips with the other holders and the coordinator over
mutual TLS, and releases its shares only to an authorized coordinator, only
while the Vault node named in the request reports itself sealed to the
holder's own check. Every decision goes to a hash-chained audit log.

Configuration is read from --config, then KEYSHARE_* environment variables
(tls.cert_file is KEYSHARE_TLS_CERT_FILE), then flags. See configs/holder-a.yaml.

Exit codes: 0 ok, 1 runtime error, 2 bad configuration or usage.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Get().String("holder"),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	var cfgPath string
	root.PersistentFlags().StringVarP(&cfgPath, "config", "c", "/etc/keyshare/holder.yaml", "config file")
	load := func(cmd *cobra.Command) (holder.Config, error) { return holder.Load(cfgPath, cmd.Flags()) }

	runCmd := &cobra.Command{
		Use:   "run",
		Short: "Serve shares until SIGTERM; SIGHUP reloads certificates and policy",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			lvl, _ := logging.ParseLevel(c.LogLevel)
			log := logging.New(os.Stderr, lvl, "holder")
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			return holder.Run(ctx, c, log, hup)
		},
	}
	runCmd.Flags().String("listen", "", "share service address (host:port)")
	runCmd.Flags().String("log-level", "", "debug, info, warn or error")
	runCmd.Flags().String("metrics-listen", "", "Prometheus metrics address (host:port)")
	runCmd.Flags().String("store-dir", "", "sealed store folder")
	runCmd.Flags().String("seal-key-file", "", "seal key file (from 'holder keygen')")

	var asJSON bool
	statusCmd := &cobra.Command{
		Use:   "status",
		Short: "Show the store, generation, share indices, audit chain and policy",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			r := holder.Status(c)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			r.Print(cmd.OutOrStdout())
			if !r.StoreOpens || r.AuditError != "" {
				return errors.New("holder is not healthy (see above)")
			}
			return nil
		},
	}
	statusCmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	verifyCmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that the store opens and every share matches the manifest",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			msg, err := holder.Verify(c)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}

	keygenCmd := &cobra.Command{
		Use:   "keygen PATH",
		Short: "Write a new random seal key file (never overwrites; mode 0600)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := holder.Keygen(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote seal key %s (keep a copy offline: without it the store cannot be opened)\n", args[0])
			return nil
		},
	}

	var manifestPath string
	importCmd := &cobra.Command{
		Use:   "import --manifest FILE",
		Short: "Provision shares by hand: '<index> <share>' lines from stdin, or typed without echo",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			mb, err := os.ReadFile(manifestPath)
			if err != nil {
				return &confload.Error{Err: fmt.Errorf("--manifest: %w", err)}
			}
			m, err := shares.ParseManifest(mb)
			if err != nil {
				return fmt.Errorf("manifest %s: %w", manifestPath, err)
			}
			in := holder.ImportInput{Manifest: m, Lines: cmd.InOrStdin()}
			if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				lines, err := readHidden(f, cmd.ErrOrStderr(), len(m.Digests))
				if err != nil {
					return err
				}
				in.Lines = lines
			}
			msg, err := holder.Import(c, in)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	importCmd.Flags().StringVar(&manifestPath, "manifest", "", "manifest JSON of the generation (required)")
	_ = importCmd.MarkFlagRequired("manifest")

	var confirm bool
	exportCmd := &cobra.Command{
		Use:   "export --i-understand-this-prints-secrets",
		Short: "Break-glass paper backup: print this holder's shares (needs the seal key)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			return holder.Export(c, cmd.OutOrStdout(), confirm)
		},
	}
	exportCmd.Flags().BoolVar(&confirm, "i-understand-this-prints-secrets", false, "confirm printing the shares")

	var unseals bool
	confirmCmd := &cobra.Command{
		Use:   "confirm-generation GENERATION --vault-unseals-with-it",
		Short: "Say that a generation unseals Vault, so that older kept generations may go",
		Long: `The holder keeps every older generation until it has seen a newer one unseal a
Vault node (it released that generation for the node and then saw the node
unsealed), and always keeps the last two. confirm-generation records that
proof on the operator's word, after a manual unseal for example. Run it with
the holder stopped, or send the holder SIGHUP after.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var gen uint64
			if _, err := fmt.Sscanf(args[0], "%d", &gen); err != nil || gen == 0 {
				return &confload.Error{Err: fmt.Errorf("generation %q: want a positive number, as 'holder status' shows", args[0])}
			}
			c, err := load(cmd)
			if err != nil {
				return err
			}
			msg, err := holder.ConfirmGeneration(c, gen, unseals)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	confirmCmd.Flags().BoolVar(&unseals, "vault-unseals-with-it", false, "confirm that Vault unseals with this generation")

	auditCmd := &cobra.Command{Use: "audit", Short: "Audit log tools"}
	auditVerify := &cobra.Command{
		Use:   "verify [FILE]",
		Short: "Check the audit log's hash chain and name the first broken entry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The chain is keyed with the seal key: the config says where
			// it is, even for another FILE.
			c, err := load(cmd)
			if err != nil {
				return err
			}
			path := c.Audit.File
			if len(args) == 1 {
				path = args[0]
			}
			n, err := holder.VerifyAudit(c, path)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d entries, chain ok\n", path, n)
			return nil
		},
	}
	auditCmd.AddCommand(auditVerify)
	root.AddCommand(runCmd, statusCmd, verifyCmd, keygenCmd, importCmd, exportCmd, confirmCmd, auditCmd)

	return cliexit.Execute(os.Stderr, "holder", root)
}
