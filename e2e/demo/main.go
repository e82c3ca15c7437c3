// Command demo runs keyshare's local demo: a three-node Vault cluster, three
// holders and a coordinator, each on its own loopback address. It runs
// `unsealer init`, shows `unsealer status`, restarts a Vault node and shows
// the coordinator unseal it with the measured time, then goes on to
// Kubernetes (etcd and a kube-apiserver encrypting Secrets through the
// keyshare KMS v2 plugin, a Secret raw in etcd, Vault restarted and the
// Secret readable again once keyshare unsealed it), then keeps the cluster
// running until Ctrl-C (restarting any Vault node that exits, as systemd
// would). `make demo` builds everything and runs it; see scripts/demo.sh.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
)

func main() {
	var o options
	flag.StringVar(&o.vault, "vault", "", "vault server binary (default: $KEYSHARE_VAULT_BIN, or build it with e2e/tools/vault/build.sh)")
	flag.StringVar(&o.bin, "bin", "", "folder with the holder and unsealer binaries (default: build them into the demo folder)")
	flag.StringVar(&o.dir, "dir", "", "folder for certificates, configs, stores and logs (default: a new temporary folder)")
	flag.BoolVar(&o.once, "once", false, "exit after the show instead of running until Ctrl-C")
	flag.BoolVar(&o.keep, "keep", false, "keep the demo folder on exit")
	flag.BoolVar(&o.kube, "kube", true, "go on to Kubernetes: etcd, kube-apiserver and the KMS plugin (builds them the first time)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "demo: unexpected arguments %v; see -help\n", flag.Args())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		if errors.Is(err, context.Canceled) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	vault, bin, dir string
	once, keep      bool
	kube            bool
}

func run(ctx context.Context, o options) (err error) {
	if o.vault == "" {
		fmt.Println("Finding or building the Vault v" + harness.VaultVersion + " server (about 11 minutes the first time) ...")
		if o.vault, err = harness.VaultBinary(ctx); err != nil {
			return err
		}
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "keyshare-demo-"); err != nil {
			return fmt.Errorf("failed to create the demo folder: %w", err)
		}
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	bins := topology.Binaries{Holder: o.bin + "/holder", Unsealer: o.bin + "/unsealer"}
	if o.bin == "" {
		fmt.Println("Building holder and unsealer ...")
		if bins, err = topology.BuildBinaries(ctx, dir, false); err != nil {
			return err
		}
	}
	topo, err := topology.New(topology.Options{
		Dir: dir, VaultBinary: o.vault, Binaries: bins, RaftPerformanceMultiplier: 1,
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println()
		fmt.Println("Stopping every process the demo started ...")
		if cerr := topo.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if o.keep {
			fmt.Printf("Kept %s (configs, stores, logs).\n", dir)
		} else {
			fmt.Printf("Removed %s.\n", dir)
		}
	}()
	d := &demo{topo: topo, dir: dir, bins: bins}
	if o.kube {
		if d.kbins, d.plugin, err = kubeBinaries(ctx, o, dir); err != nil {
			return err
		}
		defer func() {
			if d.cp != nil {
				if cerr := d.cp.Close(); cerr != nil && err == nil {
					err = cerr
				}
			}
		}()
	}
	if err := d.show(ctx); err != nil {
		return err
	}
	if o.kube {
		if err := d.kube(ctx); err != nil {
			return err
		}
	}
	if o.once {
		return nil
	}
	return d.supervise(ctx)
}

// since formats the time since start for the transcript.
func since(start time.Time) string {
	d := time.Since(start)
	if d < 10*time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
