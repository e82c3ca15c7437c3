// Command kmsplugin is keyshare's Kubernetes KMS v2 plugin: `serve` runs it
// on an apiserver node, encrypting the apiserver's seeds with Vault
// transit; `vault setup`, `token create|list|revoke|rotate` and
// `key rotate` are the operator's provisioning commands. Run
// `kmsplugin --help` for details.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/keyshare/keyshare/internal/cliexit"
	"github.com/keyshare/keyshare/internal/kmsplugin"
	"github.com/keyshare/keyshare/internal/logging"
	"github.com/keyshare/keyshare/internal/version"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Version: version.Get().String("kmsplugin"),
		Use:     "kmsplugin",
		Short:   "Kubernetes KMS v2 plugin: Secrets in etcd encrypted by Vault transit",
		Long: `kmsplugin runs on every kube-apiserver node. The apiserver talks to it over a
unix socket with the KMS v2 API; it wraps the apiserver's data-encryption seeds
with a Vault transit key that never leaves Vault. Vault is reached over TLS
with a pinned CA, on any unsealed node of the list, with a token bound to this
host's address and read from a 0600 file (re-read when it changes).

Operator's path, once per cluster and once per apiserver node:

  export VAULT_TOKEN=<admin token>       # only the provisioning commands read it
  kmsplugin vault setup -c kmsplugin.yaml
  kmsplugin token create -c kmsplugin.yaml --host 10.1.2.3 --out /etc/keyshare/kms/vault-token
  kmsplugin serve -c kmsplugin.yaml      # on that node (systemd unit or static pod)

Then point the apiserver's --encryption-provider-config at
configs/k8s/encryption-config.yaml. Later: 'token rotate' replaces a host's
token without a restart, 'token revoke' cuts one off, 'key rotate' makes a new
key_id (old Secrets still read; rewrite them to move them to the new key).

Configuration is read from --config, then KEYSHARE_* environment variables,
then flags. No environment variable can change how the plugin reaches Vault:
KEYSHARE_VAULT_* is refused, and VAULT_ADDR, VAULT_CACERT, VAULT_SKIP_VERIFY or
HTTPS_PROXY are never read. See configs/kmsplugin.yaml.

Exit codes: 0 ok, 1 runtime error, 2 bad configuration or usage.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var cfgPath string
	root.PersistentFlags().StringVarP(&cfgPath, "config", "c", "/etc/keyshare/kmsplugin.yaml", "config file")
	load := func(cmd *cobra.Command) (kmsplugin.Config, error) { return kmsplugin.Load(cfgPath, cmd.Flags()) }

	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(serveCommand(load))
	root.AddCommand(adminCommands(load)...)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return cliexit.Execute(stderr, "kmsplugin", root)
}

func serveCommand(load func(*cobra.Command) (kmsplugin.Config, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve KMS v2 on the unix socket until SIGTERM",
		Long: `serve listens on socket.path (mode 0600, or 0660 with socket.group), removing a
stale socket a crash left (never anything else), and removes it again on
SIGTERM. Status answers "ok" only after a real encrypt and decrypt through Vault
succeeded recently; otherwise it says why: "vault is sealed", "no vault node
reachable", "token revoked or not allowed from <ip>", "transit key missing".
/healthz on metrics_listen says the same; /metrics has the Prometheus series.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			lvl, _ := logging.ParseLevel(c.LogLevel)
			log := logging.New(os.Stderr, lvl, "kmsplugin")
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			d, err := kmsplugin.Build(c, log)
			if err != nil {
				return err
			}
			return d.Run(ctx)
		},
	}
	cmd.Flags().String("log-level", "", "debug, info, warn or error")
	cmd.Flags().String("metrics-listen", "", "metrics and /healthz address (host:port)")
	cmd.Flags().String("socket", "", "unix socket path (socket.path)")
	cmd.Flags().String("provider-name", "", "KMS provider name, as in the EncryptionConfiguration")
	return cmd
}
