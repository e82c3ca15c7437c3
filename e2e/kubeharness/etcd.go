package kubeharness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// Etcd is a single-member etcd with TLS on both its client and its peer
// port, and client certificates required: the apiservers and the test
// connect with certificates from the harness's CA.
type Etcd struct {
	Name, IP   string
	Dir        string
	ClientPort int
	PeerPort   int
	CAFile     string
	// Client is the client certificate the apiservers and raw reads use.
	Client  certPair
	server  certPair
	ca      *devpki.CA
	Process *harness.Process

	mu     sync.Mutex
	cli    *clientv3.Client
	health *http.Client
}

// newEtcd lays out etcd's folder, certificates and process (not started).
func newEtcd(bin, dir, logDir, ip string, ca *devpki.CA, caFile string) (*Etcd, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create etcd folder %s: %w", dir, err)
	}
	e := &Etcd{Name: "etcd", IP: ip, Dir: dir, CAFile: caFile, ca: ca}
	var err error
	if e.server, err = issue(ca, dir, "etcd-server", "etcd", ip); err != nil {
		return nil, err
	}
	if e.Client, err = issue(ca, dir, "etcd-client", "etcd-client"); err != nil {
		return nil, err
	}
	e.Process = &harness.Process{Name: "etcd", Path: bin, LogPath: filepath.Join(logDir, "etcd.log")}
	return e, nil
}

// Endpoint is etcd's client URL.
func (e *Etcd) Endpoint() string {
	return "https://" + net.JoinHostPort(e.IP, strconv.Itoa(e.ClientPort))
}

func (e *Etcd) peerURL() string {
	return "https://" + net.JoinHostPort(e.IP, strconv.Itoa(e.PeerPort))
}

// pick chooses both ports and writes the arguments.
func (e *Etcd) pick() error {
	var err error
	if e.ClientPort, err = harness.FreePort(e.IP); err != nil {
		return fmt.Errorf("etcd client port: %w", err)
	}
	if e.PeerPort, err = harness.FreePort(e.IP); err != nil {
		return fmt.Errorf("etcd peer port: %w", err)
	}
	// A fresh data folder per attempt: a half-made member of a failed
	// attempt would name the old peer URL.
	data := filepath.Join(e.Dir, "data")
	if err := os.RemoveAll(data); err != nil {
		return fmt.Errorf("failed to clear etcd data folder %s: %w", data, err)
	}
	e.Process.Args = []string{
		"--name=" + e.Name, "--data-dir=" + data,
		"--listen-client-urls=" + e.Endpoint(), "--advertise-client-urls=" + e.Endpoint(),
		"--listen-peer-urls=" + e.peerURL(), "--initial-advertise-peer-urls=" + e.peerURL(),
		"--initial-cluster=" + e.Name + "=" + e.peerURL(), "--initial-cluster-state=new",
		"--cert-file=" + e.server.Cert, "--key-file=" + e.server.Key,
		"--trusted-ca-file=" + e.CAFile, "--client-cert-auth",
		"--peer-cert-file=" + e.server.Cert, "--peer-key-file=" + e.server.Key,
		"--peer-trusted-ca-file=" + e.CAFile, "--peer-client-cert-auth",
		"--log-level=info",
	}
	e.reset()
	return nil
}

// Start starts etcd on fresh ports and waits until it reports healthy.
func (e *Etcd) Start(ctx context.Context) error {
	return startPicking(ctx, e.Process, e.pick, e.Healthy)
}

// Restart stops etcd gracefully and starts it again on the same ports with
// the same data.
func (e *Etcd) Restart(ctx context.Context) error {
	if err := e.Process.Restart(); err != nil {
		return err
	}
	return waitReady(ctx, e.Process, e.Healthy)
}

func (e *Etcd) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(e.Client.Cert, e.Client.Key)
	if err != nil {
		return nil, fmt.Errorf("failed to load etcd client certificate %s: %w", e.Client.Cert, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Cert)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Healthy asks etcd's /health once.
func (e *Etcd) Healthy(ctx context.Context) error {
	e.mu.Lock()
	if e.health == nil {
		cfg, err := e.tlsConfig()
		if err != nil {
			e.mu.Unlock()
			return err
		}
		e.health = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, Proxy: nil, IdleConnTimeout: 10 * time.Second}}
	}
	hc := e.health
	e.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.Endpoint()+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", e.Endpoint(), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd %s/health: %s %s", e.Endpoint(), resp.Status, b)
	}
	return nil
}

// Raw returns an etcd client (shared; closed by Close) for raw reads,
// below the apiserver and its encryption.
func (e *Etcd) Raw() (*clientv3.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cli != nil {
		return e.cli, nil
	}
	cfg, err := e.tlsConfig()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{e.Endpoint()}, TLS: cfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to make etcd client for %s: %w", e.Endpoint(), err)
	}
	e.cli = cli
	return cli, nil
}

// KV is one raw key and value.
type KV struct {
	Key   string
	Value []byte
}

// Get reads key's raw value; ErrNoKey if there is none.
func (e *Etcd) Get(ctx context.Context, key string) ([]byte, error) {
	kvs, err := e.get(ctx, key)
	if err != nil {
		return nil, err
	}
	if len(kvs) == 0 {
		return nil, fmt.Errorf("etcd key %s: %w", key, ErrNoKey)
	}
	return kvs[0].Value, nil
}

// List reads every key under prefix, raw.
func (e *Etcd) List(ctx context.Context, prefix string) ([]KV, error) {
	return e.get(ctx, prefix, clientv3.WithPrefix())
}

// ErrNoKey is returned by Get when etcd has no such key.
var ErrNoKey = errors.New("no such key")

func (e *Etcd) get(ctx context.Context, key string, opts ...clientv3.OpOption) ([]KV, error) {
	cli, err := e.Raw()
	if err != nil {
		return nil, err
	}
	resp, err := cli.Get(ctx, key, opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s from etcd %s: %w", key, e.Endpoint(), err)
	}
	out := make([]KV, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, KV{Key: string(kv.Key), Value: kv.Value})
	}
	return out, nil
}

// reset drops the clients after the ports changed.
func (e *Etcd) reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cli != nil {
		_ = e.cli.Close()
		e.cli = nil
	}
	dropHTTP(&e.health)
}

// dropHTTP closes a cached HTTP client's idle connections and forgets it,
// so that the next request makes a new one (after a restart or new ports).
func dropHTTP(c **http.Client) {
	if *c != nil {
		(*c).CloseIdleConnections()
		*c = nil
	}
}

// Close closes the clients and kills etcd if it runs.
func (e *Etcd) Close() error {
	e.reset()
	return e.Process.KillIfRunning()
}
