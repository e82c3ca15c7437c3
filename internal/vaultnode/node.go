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
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

// DefaultTimeout bounds one request to a Vault node.
const DefaultTimeout = 3 * time.Second

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
	Name      string
	Addr      string
	api       *api.Client
	http      *http.Client
	tlsConfig *tls.Config
}

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

// New makes a client for the Vault node at addr (https://host:port).
func New(name, addr string, o Options) (*Node, error) {
	if !strings.HasPrefix(addr, "https://") && !strings.HasPrefix(addr, "http://") {
		return nil, fmt.Errorf("vault node %s: address %q must start with https://", name, addr)
	}
	if strings.HasPrefix(addr, "https://") && len(o.CACert) == 0 {
		return nil, fmt.Errorf("vault node %s: no CA certificate to pin: set the Vault CA file", name)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault node %s: %w", name, cfg.Error)
	}
	cfg.Address = addr
	cfg.Timeout = o.Timeout
	cfg.MaxRetries = 0 // the watcher has its own loop; retries hide a restart
	if strings.HasPrefix(addr, "https://") {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACertBytes: o.CACert, TLSServerName: o.ServerName}); err != nil {
			return nil, fmt.Errorf("vault node %s: failed to configure TLS: %w", name, err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault node %s: %w", name, err)
	}
	c.ClearToken() // seal-status, unseal and health need no token
	n := &Node{Name: name, Addr: addr, api: c, http: cfg.HttpClient, tlsConfig: &tls.Config{}}
	if tr, ok := cfg.HttpClient.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
		n.tlsConfig = tr.TLSClientConfig
	}
	return n, nil
}

// SealStatus asks the node for its seal status.
func (n *Node) SealStatus(ctx context.Context) (Status, error) {
	r, err := n.api.Sys().SealStatusWithContext(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("vault node %s (%s): seal-status: %w", n.Name, n.Addr, err)
	}
	return Status{Initialized: r.Initialized, Sealed: r.Sealed, T: r.T, N: r.N, Progress: r.Progress,
		Nonce: r.Nonce, Version: r.Version, ClusterName: r.ClusterName}, nil
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimRight(n.Addr, "/")+path, bytes.NewReader(body))
	if err != nil {
		return Status{}, fmt.Errorf("vault node %s: %w", n.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.http.Do(req)
	if err != nil {
		return Status{}, fmt.Errorf("vault node %s (%s): unseal: %w", n.Name, n.Addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Status{}, fmt.Errorf("vault node %s: failed to read unseal answer: %w", n.Name, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(b, &e)
		return Status{}, fmt.Errorf("vault node %s: unseal answered %d: %s", n.Name, resp.StatusCode, strings.Join(e.Errors, "; "))
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("vault node %s: bad unseal answer: %w", n.Name, err)
	}
	return st, nil
}

// Health returns the HTTP status of sys/health: 200 active, 429 standby,
// 472/473 performance or DR standby, 501 not initialized, 503 sealed.
func (n *Node) Health(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(n.Addr, "/")+"/v1/sys/health", nil)
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
