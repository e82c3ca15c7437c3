package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/kubeharness"
	"github.com/keyshare/keyshare/e2e/topology"
)

// kubeBinaries finds or builds kube-apiserver, etcd and the KMS plugin
// before the show starts, so that a cold build does not stop it halfway.
func kubeBinaries(ctx context.Context, o options, dir string) (kubeharness.Binaries, string, error) {
	fmt.Println("Finding or building kube-apiserver v" + kubeharness.KubeVersion + " and etcd v" + kubeharness.EtcdVersion +
		" (minutes the first time; see README.md) ...")
	kb, err := kubeharness.FindBinaries(ctx)
	if err != nil {
		return kb, "", err
	}
	plugin := filepath.Join(o.bin, "kmsplugin")
	if _, err := os.Stat(plugin); o.bin == "" || err != nil {
		fmt.Println("Building kmsplugin ...")
		if plugin, err = topology.BuildKMSPlugin(ctx, dir, false); err != nil {
			return kb, "", err
		}
	}
	return kb, plugin, nil
}

// kube goes on from the unsealed Vault cluster to Kubernetes: etcd, a
// kube-apiserver encrypting Secrets through the keyshare KMS v2 plugin, a
// Secret seen through the apiserver and raw in etcd, then a restart of
// Vault and of the apiserver, and the Secret readable again once keyshare
// has unsealed Vault.
func (d *demo) kube(ctx context.Context) error {
	step("Kubernetes: etcd %s, kube-apiserver v%s on %s with the keyshare KMS v2 plugin on the same host",
		kubeharness.EtcdIP, kubeharness.KubeVersion, kubeharness.HostA)
	cp, err := kubeharness.New(kubeharness.Options{Topo: d.topo, Bins: d.kbins, PluginBin: d.plugin, Hosts: kubeharness.DefaultHosts[:1]})
	if err != nil {
		return err
	}
	d.cp = cp
	h := cp.Hosts[0]
	fmt.Println("    kmsplugin vault setup      # transit, the key (not exportable), a least-privilege policy")
	fmt.Printf("    kmsplugin token create --host %s --out %s\n", h.IP, h.Plugin.TokenFile)
	if err := cp.Provision(ctx); err != nil {
		return err
	}
	start := time.Now()
	if err := cp.Start(ctx); err != nil {
		return err
	}
	fmt.Printf("    etcd, the plugin and the apiserver ready in %s (the apiserver's /readyz includes the KMS provider)\n", since(start))

	step("Creating Secret demo/db-password through the apiserver")
	cs, err := h.APIServer.Admin()
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("failed to create namespace demo: %w", err)
	}
	value := []byte("correct-horse-battery-staple")
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-password", Namespace: "demo"}, Data: map[string][]byte{"password": value}}
	if _, err := cs.CoreV1().Secrets("demo").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("failed to create secret demo/db-password: %w", err)
	}
	if err := d.showSecret(ctx, h); err != nil {
		return err
	}
	raw, err := cp.Etcd.Get(ctx, "/registry/secrets/demo/db-password")
	if err != nil {
		return err
	}
	st, err := kubeharness.ParseStored(raw)
	if err != nil {
		return err
	}
	fmt.Printf("    etcd holds %d bytes: %q...\n", len(raw), raw[:len(kubeharness.StoredPrefix)+8])
	fmt.Printf("    key_id %s; the seed of its data key is wrapped by Vault transit (%q..., %d bytes)\n",
		st.KeyID, st.EncryptedDEKSource[:min(9, len(st.EncryptedDEKSource))], len(st.EncryptedDEKSource))
	if bytes.Contains(raw, value) {
		return fmt.Errorf("the secret's value is readable in etcd's raw value")
	}
	fmt.Printf("    %q appears nowhere in it\n", value)

	step("Restarting the whole Vault cluster and the apiserver (cold cache): only Vault can unwrap the seed")
	if err := h.APIServer.Process.Stop(); err != nil {
		return err
	}
	start = time.Now()
	for _, n := range d.topo.Vault.Nodes() {
		if err := n.Stop(); err != nil && !errors.Is(err, harness.ErrNotRunning) {
			return err
		}
		if err := n.Start(); err != nil {
			return err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := h.APIServer.Restart(rctx); err != nil {
		return err
	}
	fmt.Printf("    Vault came back sealed; keyshare unsealed it, and the apiserver was ready %s after the restart\n", since(start))
	return d.showSecret(rctx, h)
}

// showSecret prints what the apiserver returns for demo/db-password.
func (d *demo) showSecret(ctx context.Context, h *kubeharness.Host) error {
	cs, err := h.APIServer.Admin()
	if err != nil {
		return err
	}
	got, err := cs.CoreV1().Secrets("demo").Get(ctx, "db-password", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("failed to read secret demo/db-password: %w", err)
	}
	fmt.Printf("    the apiserver returns password=%q\n", got.Data["password"])
	return nil
}

// kubeHints tells how to look at the control plane while the demo runs.
func (d *demo) kubeHints() {
	if d.cp == nil {
		return
	}
	e := d.cp.Etcd
	fmt.Println("    # the raw value of the Secret in etcd:")
	fmt.Printf("    %s --endpoints %s --cacert %s --cert %s --key %s get /registry/secrets/demo/db-password | head -c 80\n",
		d.kbins.Etcdctl, e.Endpoint(), e.CAFile, e.Client.Cert, e.Client.Key)
	fmt.Printf("    tail -f %s %s\n", d.cp.Hosts[0].Plugin.Process.LogPath, d.cp.Hosts[0].APIServer.Process.LogPath)
}
