// Package kubeharness runs a real Kubernetes control plane on top of
// keyshare's local deployment (e2e/topology), so that the end-to-end story
// and the demo see Secrets encrypted by a real kube-apiserver, through the
// keyshare KMS v2 plugin, with the key in the Vault cluster that keyshare
// unseals, and stored in a real etcd.
//
// Every simulated host has its own loopback address:
//
//	127.0.0.60       etcd, one member, TLS on client and peer ports, client
//	                 certificates required
//	127.0.0.51, .52  control-plane hosts cp-a and cp-b: a kube-apiserver and
//	                 its own KMS plugin each; the plugin serves the
//	                 apiserver on a unix socket and connects to Vault from
//	                 the host's address with a token bound to that address
//	127.0.0.59       a host with no control plane (tokens bound elsewhere)
//
// The pieces fit together like this:
//
//   - FindBinaries gets kube-apiserver v1.34.4, etcd and etcdctl v3.6.4 from
//     $KEYSHARE_KUBE_APISERVER_BIN, $KEYSHARE_ETCD_BIN and
//     $KEYSHARE_ETCDCTL_BIN or from e2e/tools/kube/build.sh (cached under
//     ~/.cache/keyshare; a cold build takes minutes). A missing binary is an
//     error, never a skip.
//   - New lays out etcd, the apiservers (serving certificate, service
//     account key, static token file with an admin and an unprivileged
//     "dev", RBAC, encryption config) and, with the KMS provider, one
//     topology.KMSPlugin per host. Provision runs the operator's
//     `kmsplugin vault setup` and `kmsplugin token create` per host. Start
//     starts etcd, the plugins and the apiservers and waits until each
//     apiserver's /readyz is ok.
//   - Etcd and kube-apiserver cannot bind port 0 and report the port, so
//     their ports are picked ahead with harness.FreePort, and a first start
//     that finds its port taken picks again (at most 3 times), as the
//     Vault harness does.
//   - Every process is a harness.Process, started and stopped by PID, with
//     its log in the topology's LogDir beside the Vault, holder and plugin
//     logs, so one leak check covers them all.
//   - The test talks to an apiserver with client-go (APIServer.Admin) and
//     reads etcd raw with the etcd client (Etcd.Get, Etcd.List); ParseStored
//     reads the KMS v2 EncryptedObject of a stored value.
package kubeharness
