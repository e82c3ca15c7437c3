package kubeharness

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// APIServer is one kube-apiserver on a control-plane host's address. It
// authenticates with a static token file (an admin in system:masters, and
// "dev", a user RBAC gives nothing), authorizes with RBAC, and encrypts
// Secrets as its encryption config says.
type APIServer struct {
	Name, IP string
	Port     int
	Dir      string
	// EncryptionConfig is the file --encryption-provider-config names;
	// WriteEncryptionConfig replaces it (read at start).
	EncryptionConfig string
	// EtcdPrefix is --etcd-prefix (default /registry).
	EtcdPrefix string
	Process    *harness.Process

	adminToken, devToken string
	etcd                 *Etcd
	ca                   *devpki.CA
	serving              certPair
	saKey, saPub, tokens string

	mu      sync.Mutex
	clients map[string]*kubernetes.Clientset
	http    *http.Client
}

// newAPIServer lays out an apiserver's folder: serving certificate,
// service account key, token file and process (not started). The
// encryption config is written by the caller.
func newAPIServer(bin, name, ip, dir, logDir string, etcd *Etcd, ca *devpki.CA) (*APIServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create apiserver folder %s: %w", dir, err)
	}
	a := &APIServer{Name: name, IP: ip, Dir: dir, EncryptionConfig: filepath.Join(dir, "encryption-config.yaml"),
		EtcdPrefix: "/registry", etcd: etcd, ca: ca,
		saKey: filepath.Join(dir, "service-account.key"), saPub: filepath.Join(dir, "service-account.pub"), tokens: filepath.Join(dir, "tokens.csv"),
		adminToken: randomToken(), devToken: randomToken()}
	var err error
	if a.serving, err = issue(ca, dir, "apiserver", name, ip); err != nil {
		return nil, err
	}
	if err := writeServiceAccountKey(a.saKey, a.saPub); err != nil {
		return nil, err
	}
	csv := fmt.Sprintf("%s,admin,uid-admin,\"system:masters\"\n%s,dev,uid-dev\n", a.adminToken, a.devToken)
	if err := writeFile(a.tokens, []byte(csv), 0o600); err != nil {
		return nil, err
	}
	a.Process = &harness.Process{Name: name, Path: bin, LogPath: filepath.Join(logDir, name+".log"), StopTimeout: 20 * time.Second}
	return a, nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Tokens returns the admin's and dev's bearer tokens (secrets: for the
// leak check, never for a log).
func (a *APIServer) Tokens() (admin, dev string) { return a.adminToken, a.devToken }

// URL is the apiserver's https address.
func (a *APIServer) URL() string { return "https://" + net.JoinHostPort(a.IP, strconv.Itoa(a.Port)) }

func (a *APIServer) String() string { return a.Name + " (" + a.URL() + ")" }

// pick chooses the secure port and writes the arguments.
func (a *APIServer) pick() error {
	var err error
	if a.Port, err = harness.FreePort(a.IP); err != nil {
		return fmt.Errorf("%s port: %w", a.Name, err)
	}
	a.args()
	return nil
}

func (a *APIServer) args() {
	a.Process.Args = []string{
		"--etcd-servers=" + a.etcd.Endpoint(), "--etcd-prefix=" + a.EtcdPrefix,
		"--etcd-cafile=" + a.etcd.CAFile, "--etcd-certfile=" + a.etcd.Client.Cert, "--etcd-keyfile=" + a.etcd.Client.Key,
		"--bind-address=" + a.IP, "--advertise-address=" + a.IP, "--secure-port=" + strconv.Itoa(a.Port),
		"--tls-cert-file=" + a.serving.Cert, "--tls-private-key-file=" + a.serving.Key,
		"--cert-dir=" + filepath.Join(a.Dir, "certs"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-signing-key-file=" + a.saKey, "--service-account-key-file=" + a.saPub,
		"--token-auth-file=" + a.tokens, "--authorization-mode=RBAC",
		"--encryption-provider-config=" + a.EncryptionConfig,
		"--service-cluster-ip-range=10.96.0.0/16",
		// Two cores shared by the whole suite: no API priority queues
		// and no profiling endpoints.
		"--enable-priority-and-fairness=false", "--profiling=false",
		"--v=2",
	}
}

// Start starts the apiserver on a fresh port and waits until /readyz
// answers ok (which includes the KMS provider's health).
func (a *APIServer) Start(ctx context.Context) error {
	return startPicking(ctx, a.Process, a.pick, a.Ready)
}

// Restart stops the apiserver gracefully and starts it again on the same
// port (its caches are cold), with the encryption config and etcd prefix
// as they are now, and waits until it is ready.
func (a *APIServer) Restart(ctx context.Context) error {
	if err := a.Process.Stop(); err != nil && !errors.Is(err, harness.ErrNotRunning) {
		return err
	}
	a.args()
	a.reset()
	if err := a.Process.Start(); err != nil {
		return err
	}
	return waitReady(ctx, a.Process, a.Ready)
}

// Ready asks /readyz once.
func (a *APIServer) Ready(ctx context.Context) error {
	code, body, err := a.Get(ctx, "/readyz")
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s/readyz: %d %s", a, code, body)
	}
	return nil
}

// Get does one GET of path with the admin token and returns the status
// code and at most 64 KiB of body.
func (a *APIServer) Get(ctx context.Context, path string) (int, string, error) {
	a.mu.Lock()
	if a.http == nil {
		a.http = &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: a.ca.Pool(), MinVersion: tls.VersionTLS12},
			Proxy:           nil, IdleConnTimeout: 10 * time.Second,
		}}
	}
	hc := a.http
	a.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL()+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+a.adminToken)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w", a.Name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), nil
}

// Admin returns a client-go clientset acting as the admin.
func (a *APIServer) Admin() (*kubernetes.Clientset, error) { return a.client("admin", a.adminToken) }

// Dev returns a client-go clientset acting as "dev", whom RBAC allows
// nothing.
func (a *APIServer) Dev() (*kubernetes.Clientset, error) { return a.client("dev", a.devToken) }

func (a *APIServer) client(who, token string) (*kubernetes.Clientset, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cs := a.clients[who]; cs != nil {
		return cs, nil
	}
	cfg := &rest.Config{
		Host: a.URL(), BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAData: a.ca.CertPEM},
		// The benchmark measures the apiserver, not client-go's limiter.
		QPS: 5000, Burst: 10000, Timeout: 30 * time.Second,
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to make a client of %s: %w", a, err)
	}
	if a.clients == nil {
		a.clients = map[string]*kubernetes.Clientset{}
	}
	a.clients[who] = cs
	return cs, nil
}

// reset drops the clients (a restart closes their connections anyway).
func (a *APIServer) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clients = nil
	dropHTTP(&a.http)
}

// Close kills the apiserver if it runs.
func (a *APIServer) Close() error {
	a.reset()
	return a.Process.KillIfRunning()
}
