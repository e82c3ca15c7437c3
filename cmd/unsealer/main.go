// Command unsealer is keyshare's coordinator and operator CLI: `run` watches
// every Vault node and unseals it from verified holder shares; `status`
// shows nodes and holders; `init`, `unseal` and `rekey` are the operator's
// lifecycle commands. Run `unsealer --help` for details.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyshare/keyshare/internal/cliexit"
	"github.com/keyshare/keyshare/internal/logging"
	"github.com/keyshare/keyshare/internal/unsealer"
	"github.com/keyshare/keyshare/pkg/shares"

	"github.com/keyshare/keyshare/internal/version"
)

// exitDegraded is `status`'s exit code when something stands between the
// cluster and an unseal (the others are in internal/cliexit).
const exitDegraded = 3

var errDegraded = errors.New("degraded")

func main() { os.Exit(run()) }

func run() int {
	// init, unseal and rekey hold shares too: no core dumps, whatever the
	// command. The daemon reports what could not be turned off.
	_ = shares.HardenProcess()
	root := &cobra.Command{
		Use:   "unsealer",
		Short: "Unseal Shamir-sealed Vault nodes from keyshare holders, without a person",
		Long: `unsealer watches the seal status of every Vault node. When a node is sealed it
collects shares from the live keyshare holders over mutual TLS, checks each
one against the manifest a majority of holders agree on, and submits exactly
a threshold of verified shares. It never submits a share it has not checked.

It is also the operator's CLI: status, init, unseal (break-glass), rekey.

Configuration is read from --config, then KEYSHARE_* environment variables
(tls.cert_file is KEYSHARE_TLS_CERT_FILE), then flags. See configs/unsealer.yaml.

Exit codes: 0 ok, 1 runtime error, 2 bad configuration or usage,
3 (status) something prevents an unseal.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Get().String("unsealer"),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	var cfgPath string
	root.PersistentFlags().StringVarP(&cfgPath, "config", "c", "/etc/keyshare/unsealer.yaml", "config file")
	load := func(cmd *cobra.Command) (unsealer.Config, error) { return unsealer.Load(cfgPath, cmd.Flags()) }

	root.AddCommand(runCommand(load), statusCommand(load))
	root.AddCommand(lifecycleCommands(load)...)
	root.AddCommand(tlsCommand())

	err := cliexit.Run(root)
	if errors.Is(err, errDegraded) {
		return exitDegraded
	}
	return cliexit.Code(os.Stderr, "unsealer", err)
}

// loader reads the config for a command (flags included).
type loader = func(*cobra.Command) (unsealer.Config, error)

func runCommand(load loader) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Watch every Vault node and unseal it; SIGHUP reloads certificates",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			lvl, _ := logging.ParseLevel(c.LogLevel)
			log := logging.New(os.Stderr, lvl, "unsealer")
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			return unsealer.Run(ctx, c, log, hup)
		},
	}
	cmd.Flags().String("log-level", "", "debug, info, warn or error")
	cmd.Flags().String("metrics-listen", "", "Prometheus metrics address (host:port)")
	cmd.Flags().String("source-addr", "", "local address to connect to holders from")
	return cmd
}

func statusCommand(load loader) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every Vault node and holder, and what is missing to reach the threshold",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			r, err := unsealer.StatusFromConfig(ctx, c, logging.New(os.Stderr, 8, "unsealer")) // errors only
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				r.Print(cmd.OutOrStdout())
			}
			if r.Missing != "" {
				return errDegraded
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().String("source-addr", "", "local address to connect to holders from")
	return cmd
}
