// Command holder keeps a share of a Vault unseal key, sealed on disk, and
// releases it over mutual TLS to an authorized keyshare coordinator while
// the Vault node it names is sealed. Run `holder --help` for the commands.
//
// The main is thin: one small builder per command parses the flags, loads
// the config and calls internal/holder, which does the work.
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
	"github.com/keyshare/keyshare/internal/holder"
	"github.com/keyshare/keyshare/internal/logging"
	"github.com/keyshare/keyshare/internal/version"
	"github.com/keyshare/keyshare/pkg/shares"
)

func main() {
	// export, import and verify hold shares too: no core dumps, whatever
	// the command. The daemon reports what could not be turned off.
	_ = shares.HardenProcess()
	os.Exit(cliexit.Execute(os.Stderr, "holder", newRoot()))
}

const long = `holder runs on each keyshare host. It keeps its shares of the Vault unseal key
encrypted on disk, gossips with the other holders and the coordinator over
mutual TLS, and releases its shares only to an authorized coordinator, only
while the Vault node named in the request reports itself sealed to the
holder's own check. Every decision goes to a hash-chained audit log.

Configuration is read from --config, then KEYSHARE_* environment variables
(tls.cert_file is KEYSHARE_TLS_CERT_FILE), then flags. See configs/holder-a.yaml.

Exit codes: 0 ok, 1 runtime error, 2 bad configuration or usage.`

// cli is what every command shares: the --config flag.
type cli struct{ cfgPath string }

func (a *cli) load(cmd *cobra.Command) (holder.Config, error) {
	return holder.Load(a.cfgPath, cmd.Flags())
}

func newRoot() *cobra.Command {
	a := &cli{}
	root := &cobra.Command{
		Use:   "holder",
		Short: "Keep Vault unseal-key shares sealed on disk and release them only under policy",
		Long:  long, SilenceUsage: true, SilenceErrors: true,
		Version: version.Get().String("holder"),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().StringVarP(&a.cfgPath, "config", "c", "/etc/keyshare/holder.yaml", "config file")
	audit := &cobra.Command{Use: "audit", Short: "Audit log tools"}
	audit.AddCommand(a.auditVerifyCmd(), a.auditResetMarkCmd())
	root.AddCommand(a.runCmd(), a.statusCmd(), a.verifyCmd(), keygenCmd(), a.importCmd(), a.exportCmd(), a.confirmCmd(), audit)
	return root
}

func (a *cli) runCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Serve shares until SIGTERM; SIGHUP reloads certificates and policy",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.load(cmd)
			if err != nil {
				return err
			}
			lvl, _ := logging.ParseLevel(c.LogLevel) // checked by Load
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			return holder.Run(ctx, c, logging.New(os.Stderr, lvl, "holder"), hup)
		},
	}
	f := cmd.Flags()
	f.String("listen", "", "share service address (host:port)")
	f.String("log-level", "", "debug, info, warn or error")
	f.String("metrics-listen", "", "Prometheus metrics address (host:port)")
	f.String("store-dir", "", "sealed store folder")
	f.String("seal-key-file", "", "seal key file (from 'holder keygen')")
	return cmd
}

func (a *cli) statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the store, generation, share indices, audit chain and policy",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.load(cmd)
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
			if !r.Healthy() {
				return errors.New("holder is not healthy (see above)")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *cli) verifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check that the store opens and every share matches the manifest",
		RunE: a.withConfig(func(cmd *cobra.Command, c holder.Config, _ []string) (string, error) {
			return holder.Verify(c)
		}),
	}
}

func keygenCmd() *cobra.Command {
	return &cobra.Command{
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
}

func (a *cli) importCmd() *cobra.Command {
	var manifestPath string
	cmd := &cobra.Command{
		Use:   "import --manifest FILE",
		Short: "Provision shares by hand: '<index> <share>' lines from stdin, or typed without echo",
		RunE: a.withConfig(func(cmd *cobra.Command, c holder.Config, _ []string) (string, error) {
			m, err := holder.ReadManifest(manifestPath)
			if err != nil {
				return "", err
			}
			in := holder.ImportInput{Manifest: m, Lines: cmd.InOrStdin()}
			if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				if in.Lines, err = readHidden(f, cmd.ErrOrStderr(), len(m.Digests)); err != nil {
					return "", err
				}
			}
			return holder.Import(c, in)
		}),
	}
	cmd.Flags().StringVar(&manifestPath, "manifest", "", "manifest JSON of the generation (required)")
	_ = cmd.MarkFlagRequired("manifest")
	return cmd
}

func (a *cli) exportCmd() *cobra.Command {
	var confirm bool
	cmd := &cobra.Command{
		Use:   "export --i-understand-this-prints-secrets",
		Short: "Break-glass paper backup: print this holder's shares (needs the seal key)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.load(cmd)
			if err != nil {
				return err
			}
			return holder.Export(c, cmd.OutOrStdout(), confirm)
		},
	}
	cmd.Flags().BoolVar(&confirm, "i-understand-this-prints-secrets", false, "confirm printing the shares")
	return cmd
}

func (a *cli) confirmCmd() *cobra.Command {
	var unseals bool
	cmd := &cobra.Command{
		Use:   "confirm-generation GENERATION --vault-unseals-with-it",
		Short: "Say that a generation unseals Vault, so that older kept generations may go",
		Long: `The holder keeps every older generation until it has seen a newer one unseal a
Vault node (it released that generation for the node and then saw the node
unsealed), and always keeps the last two. confirm-generation records that
proof on the operator's word, after a manual unseal for example. Run it with
the holder stopped, or send the holder SIGHUP after.`,
		Args: cobra.ExactArgs(1),
		RunE: a.withConfig(func(_ *cobra.Command, c holder.Config, args []string) (string, error) {
			gen, err := holder.ParseGeneration(args[0])
			if err != nil {
				return "", err
			}
			return holder.ConfirmGeneration(c, gen, unseals)
		}),
	}
	cmd.Flags().BoolVar(&unseals, "vault-unseals-with-it", false, "confirm that Vault unseals with this generation")
	return cmd
}

func (a *cli) auditVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify [FILE]",
		Short: "Check the audit log's hash chain and name the first broken entry",
		Args:  cobra.MaximumNArgs(1),
		// The chain is keyed with the seal key: the config says where it
		// is, even for another FILE.
		RunE: a.withConfig(func(_ *cobra.Command, c holder.Config, args []string) (string, error) {
			return holder.VerifyAuditReport(c, append(args, "")[0])
		}),
	}
}

func (a *cli) auditResetMarkCmd() *cobra.Command {
	var confirm bool
	cmd := &cobra.Command{
		Use:   "reset-mark --i-moved-the-old-log-aside",
		Short: "Start a new audit log on purpose: lower the sealed store's audit mark to the log now in place",
		Long: `The sealed store records how far the audit log has reached, so a log whose tail
was cut (with its head file) is refused. After moving a damaged or cut log and
its head aside as evidence, reset-mark lowers that mark to the log now in place
(a new one, if none) and records the reset in it. It needs the seal key. Run it
with the holder stopped.`,
		Args: cobra.NoArgs,
		RunE: a.withConfig(func(_ *cobra.Command, c holder.Config, _ []string) (string, error) {
			return holder.ResetAuditMark(c, confirm)
		}),
	}
	cmd.Flags().BoolVar(&confirm, "i-moved-the-old-log-aside", false, "confirm that the old log and its head were kept as evidence")
	return cmd
}

// withConfig is the shape most commands share: load the config, do one
// thing, print its one-line result.
func (a *cli) withConfig(do func(*cobra.Command, holder.Config, []string) (string, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := a.load(cmd)
		if err != nil {
			return err
		}
		msg, err := do(cmd, c, args)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), msg)
		return nil
	}
}
