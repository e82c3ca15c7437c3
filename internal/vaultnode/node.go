// Package vaultnode talks to one Vault server over TLS with a pinned CA:
// seal status, unseal with one share, reset of unseal progress, and health.
// The holder uses it for its own check of a target before a release, and
// the coordinator for watching and unsealing.
//
// Shares are sent from a byte buffer that is zeroed after the request, not
// from a Go string, so that a share leaves as few copies in memory as
// possible.
package vaultnode

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultTimeout bounds one request to a Vault node.
const DefaultTimeout = 3 * time.Second

// LifecycleTimeout bounds one init or rekey call. Vault's sys/init sets up
// its storage and barrier and can take several seconds on a busy host; a
// cut-off init leaves Vault initialized with keys no one received.
const LifecycleTimeout = time.Minute

// Status is a node's answer to sys/seal-status.
type Status struct {
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	T           int    `json:"t"`
	N           int    `json:"n"`
	Progress    int    `json:"progress"`
	Nonce       string `json:"nonce"`
	Version     string `json:"version"`
	ClusterName string `json:"cluster_name,omitempty"`
}

// Node is one Vault server.
type Node struct {
	Name string
	Addr string
	// api carries the token of lifecycle calls (SetToken); nothing else
	// of the node's configuration is mutable.
	api       *credentials
	http      *http.Client
	lifecycle *http.Client // init and rekey calls: same transport, LifecycleTimeout
	tlsConfig *tls.Config
	poll      pollConn // seal-status, see pollconn.go
}

// credentials is the Vault token sent with lifecycle calls. It is set only
// by SetToken, never read from the environment (VAULT_TOKEN).
type credentials struct {
	mu    sync.Mutex
	token string
}

func (c *credentials) SetToken(t string) { c.mu.Lock(); c.token = t; c.mu.Unlock() }
func (c *credentials) Token() string     { c.mu.Lock(); defer c.mu.Unlock(); return c.token }

// Options configure New.
type Options struct {
	// CACert is the PEM CA bundle that Vault's server certificate must
	// chain to. Required for https addresses: there is no system-CA
	// fallback and no skip-verify.
	CACert []byte
	// ServerName overrides the TLS server name (SNI and verification).
	ServerName string
	// Timeout bounds each request; DefaultTimeout if zero.
	Timeout time.Duration
}

// sessionCacheSize is how many TLS sessions a node's client keeps for
// resumption: one server, so a few tickets are plenty.
const sessionCacheSize = 4

// New makes a client for the Vault node at addr (https://host:port).
//
// Everything about where and how it talks to Vault comes from its
// arguments, which come from the config file: nothing from the environment.
// The Vault API's own client would read VAULT_ADDR, VAULT_AGENT_ADDR,
// VAULT_SKIP_VERIFY, VAULT_CACERT, VAULT_TOKEN, VAULT_HTTP_PROXY and more,
// and net/http's default transport reads HTTP(S)_PROXY, so neither is
// used: the transport here has no proxy, verifies the server against the
// pinned CA only, and follows a redirect only to the same host and scheme.
func New(name, addr string, o Options) (*Node, error) {
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("vault node %s: address %q must be https://host:port", name, addr)
	}
	if u.Scheme == "https" && len(o.CACert) == 0 {
		return nil, fmt.Errorf("vault node %s: no CA certificate to pin: set the Vault CA file", name)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(sessionCacheSize)}
	if u.Scheme == "https" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CACert) {
			return nil, fmt.Errorf("vault node %s: the Vault CA file holds no PEM certificate: check vault.ca_file", name)
		}
		tlsConfig.RootCAs = pool
		tlsConfig.ServerName = o.ServerName
	}
	tr := &http.Transport{
		Proxy:               nil, // never HTTP(S)_PROXY: shares go to Vault only
		DialContext:         (&net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: o.Timeout,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     idleConnTimeout,
	}
	hc := &http.Client{Transport: tr, Timeout: o.Timeout, CheckRedirect: sameHostRedirect(name)}
	lc := &http.Client{Transport: tr, Timeout: max(o.Timeout, LifecycleTimeout), CheckRedirect: sameHostRedirect(name)}
	return &Node{Name: name, Addr: strings.TrimRight(addr, "/"), api: &credentials{}, http: hc, lifecycle: lc, tlsConfig: tlsConfig}, nil
}

// idleConnTimeout bounds how long the pooled client (health, lifecycle
// calls, and seal-status or unseal when the poll connection is busy) keeps
// an idle connection.
const idleConnTimeout = 90 * time.Second

// sameHostRedirect refuses a redirect to another host or scheme: a node (or
// whoever answers in its name) must not send a share elsewhere.
func sameHostRedirect(name string) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		first := via[0].URL
		if req.URL.Host != first.Host || req.URL.Scheme != first.Scheme {
			return fmt.Errorf("vault node %s: refusing a redirect from %s to %s://%s: only the configured address is used", name, first.Host, req.URL.Scheme, req.URL.Host)
		}
		if len(via) >= 3 {
			return fmt.Errorf("vault node %s: stopped after %d redirects", name, len(via))
		}
		return nil
	}
}

// CloseIdle drops the client's idle pooled connections, so that the next
// request dials afresh. The connection watcher calls it whenever its held
// connection ends: a pooled connection opened before that may belong to a
// process that is going away, and its answer would describe that process.
func (n *Node) CloseIdle() {
	n.poll.newer()
	n.http.CloseIdleConnections()
}

// SealStatus asks the node for its seal status.
func (n *Node) SealStatus(ctx context.Context) (Status, error) {
	st, err := n.sealStatusConn(ctx)
	if errors.Is(err, errBusy) {
		st, err = n.sealStatusHTTP(ctx)
	}
	if err != nil {
		return Status{}, fmt.Errorf("vault node %s (%s): seal-status: %w", n.Name, n.Addr, err)
	}
	return st, nil
}

// sealStatusHTTP asks on the pooled client.
func (n *Node) sealStatusHTTP(ctx context.Context) (Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Addr+"/v1/sys/seal-status", nil)
	if err != nil {
		return Status{}, err
	}
	resp, err := n.http.Do(req)
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	return decodeStatus(resp)
}

// decodeStatus reads a seal-status answer, and the rest of its body.
func decodeStatus(resp *http.Response) (Status, error) {
	var st Status
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return st, fmt.Errorf("answered %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("bad answer: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return st, nil
}

// Unseal submits one share and returns the node's status after it. The
// share bytes are hex-encoded into a buffer that is zeroed afterwards.
func (n *Node) Unseal(ctx context.Context, share []byte) (Status, error) {
	body := make([]byte, 0, len(`{"key":""}`)+2*len(share))
	body = append(body, `{"key":"`...)
	body = hex.AppendEncode(body, share)
	body = append(body, `"}`...)
	defer clear(body)
	return n.put(ctx, "/v1/sys/unseal", body)
}

// ResetUnseal discards the node's unseal progress (its nonce changes).
func (n *Node) ResetUnseal(ctx context.Context) (Status, error) {
	return n.put(ctx, "/v1/sys/unseal", []byte(`{"reset":true}`))
}

func (n *Node) put(ctx context.Context, path string, body []byte) (Status, error) {
	// On the poll connection first: after a restart it is the one just
	// opened to the new process, so the shares need no new handshake.
	req := n.putRequest(path, body)
	defer clear(req)
	var st Status
	err := n.connDo(ctx, req, func(resp *http.Response) error {
		var err error
		st, err = n.unsealAnswer(resp)
		return err
	})
	if errors.Is(err, errBusy) {
		st, err = n.putHTTP(ctx, path, body)
	}
	if err != nil {
		return Status{}, fmt.Errorf("vault node %s (%s): unseal: %w", n.Name, n.Addr, err)
	}
	return st, nil
}

func (n *Node) putHTTP(ctx context.Context, path string, body []byte) (Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, n.Addr+path, bytes.NewReader(body))
	if err != nil {
		return Status{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.http.Do(req)
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	return n.unsealAnswer(resp)
}

// unsealAnswer reads the answer to sys/unseal.
func (n *Node) unsealAnswer(resp *http.Response) (Status, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Status{}, fmt.Errorf("failed to read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(b, &e)
		return Status{}, fmt.Errorf("answered %d: %s", resp.StatusCode, strings.Join(e.Errors, "; "))
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("bad answer: %w", err)
	}
	return st, nil
}

// Health returns the HTTP status of sys/health: 200 active, 429 standby,
// 472/473 performance or DR standby, 501 not initialized, 503 sealed.
func (n *Node) Health(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Addr+"/v1/sys/health", nil)
	if err != nil {
		return 0, fmt.Errorf("vault node %s: %w", n.Name, err)
	}
	resp, err := n.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("vault node %s (%s): health: %w", n.Name, n.Addr, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// HARole names a sys/health status code.
func HARole(code int) string {
	switch code {
	case 200:
		return "active"
	case 429:
		return "standby"
	case 472, 473:
		return "perf-standby"
	case 501:
		return "uninitialized"
	case 503:
		return "sealed"
	}
	return fmt.Sprintf("http-%d", code)
}

// IsUnreachable reports whether err means the node is down or restarting
// (connection refused or reset, or a kept-alive connection cut by a
// restart), as opposed to answering with an error.
func IsUnreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
