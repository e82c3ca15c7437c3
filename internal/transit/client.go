// Package transit is a small client for the parts of Vault the KMS plugin
// needs: the transit engine (encrypt, decrypt, key metadata, rotation), the
// token self-service endpoints (lookup, renew, revoke), and a generic call
// for the operator's provisioning commands.
//
// It talks to every listed Vault node over TLS with a pinned CA. It sends
// calls to the active node once PreferActive has found it, else to the
// last node that answered; when a node is down, sealed or has no active
// leader it tries the next one (standbys forward to the active node, so any
// unsealed node will do, one hop slower). Nothing is read from the environment:
// VAULT_ADDR, VAULT_CACERT, VAULT_SKIP_VERIFY and the proxy variables have
// no effect, because the HTTP transport is built here and not by the Vault
// API package's DefaultConfig.
//
// Errors are *Error values with a Kind an operator can act on. They carry
// the node, the path and Vault's own message, never a request body, a
// plaintext, a ciphertext or a token.
package transit

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTimeout bounds one request to one Vault node.
const DefaultTimeout = 3 * time.Second

// maxBody bounds a response body read from Vault.
const maxBody = 1 << 20

// Options configure New.
type Options struct {
	// Addrs are the Vault nodes' API addresses, https://host:port, all of
	// them: the client fails over between them.
	Addrs []string
	// CACert is the PEM CA bundle the nodes' certificates must chain to. It
	// is the only trust: no system roots, no skip-verify.
	CACert []byte
	// ServerName overrides the name verified in the nodes' certificates.
	ServerName string
	// SourceAddr is the local IP to connect from (the address a token is
	// bound to); empty lets the OS pick.
	SourceAddr string
	// Timeout bounds one request to one node; DefaultTimeout if zero.
	Timeout time.Duration
	// ClientCertFile and ClientKeyFile, if set, are this host's TLS
	// certificate, presented to Vault for its cert auth method. They are
	// read at each TLS handshake, so a renewed certificate is used without
	// a restart.
	ClientCertFile, ClientKeyFile string
}

// Client calls Vault. It is safe for concurrent use.
type Client struct {
	addrs     []string
	hc        *http.Client
	timeout   time.Duration
	preferred atomic.Int32

	mu    sync.RWMutex
	token string
}

// DefaultMaxConnsPerNode bounds the connections to one Vault node: a burst
// of calls queues for a connection instead of opening hundreds of TLS
// sessions against Vault.
const DefaultMaxConnsPerNode = 32

// New builds a client. It fails on an address that is not https, or a CA
// bundle with no certificate.
func New(o Options) (*Client, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("transit: no vault address: list every vault node")
	}
	for _, a := range o.Addrs {
		if !strings.HasPrefix(a, "https://") {
			return nil, fmt.Errorf("transit: vault address %q must start with https://", a)
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	hc, err := NewHTTPClient(o)
	if err != nil {
		return nil, err
	}
	return &Client{addrs: append([]string(nil), o.Addrs...), hc: hc, timeout: o.Timeout}, nil
}

// NewHTTPClient is the HTTP client New builds for o: TLS verified with only
// the pinned CA, no proxy, no redirects, connections from o.SourceAddr kept
// alive, and HTTP/1.1.
//
// HTTP/1.1 rather than HTTP/2, because it is faster against Vault for calls
// one at a time: Vault's HTTP/1.1 server answers on the connection's own
// goroutine, while its HTTP/2 server hands every request through a
// connection loop, a handler goroutine and a write scheduler. On the 2-core
// dev machine a transit encrypt or decrypt took about 0.2 ms less over
// HTTP/1.1 (p50 about 0.95 ms against 1.15 ms; BENCHMARKS.md, "KMS plugin").
// Concurrent calls use up to DefaultMaxConnsPerNode connections per node.
//
// It is exported so that a benchmark's floor can call Vault over the very
// same transport as the plugin.
func NewHTTPClient(o Options) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(o.CACert) {
		return nil, errors.New("transit: the vault CA file holds no PEM certificate")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	d := &net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}
	if o.SourceAddr != "" {
		ip, err := netip.ParseAddr(o.SourceAddr)
		if err != nil {
			return nil, fmt.Errorf("transit: source address %q: %w", o.SourceAddr, err)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip.AsSlice()}
	}
	tc := &tls.Config{RootCAs: pool, ServerName: o.ServerName, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if o.ClientCertFile != "" || o.ClientKeyFile != "" {
		if _, err := tls.LoadX509KeyPair(o.ClientCertFile, o.ClientKeyFile); err != nil {
			return nil, fmt.Errorf("transit: client certificate %s / %s: %w", o.ClientCertFile, o.ClientKeyFile, err)
		}
		certFile, keyFile := o.ClientCertFile, o.ClientKeyFile
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("client certificate %s: %w", certFile, err)
			}
			return &c, nil
		}
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	tr := &http.Transport{
		Proxy:               nil, // never HTTPS_PROXY: the path to Vault is the configured one
		DialContext:         d.DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: o.Timeout,
		Protocols:           &protos,
		MaxIdleConnsPerHost: 16,
		MaxConnsPerHost:     DefaultMaxConnsPerNode,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: tr, CheckRedirect: noRedirect}, nil
}

// noRedirect keeps the token on the configured nodes: Vault standbys do not
// redirect API calls in a healthy cluster, and a redirect elsewhere is not
// followed.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// SetToken sets the token sent with every request.
func (c *Client) SetToken(tok string) { c.mu.Lock(); c.token = tok; c.mu.Unlock() }

func (c *Client) currentToken() string { c.mu.RLock(); defer c.mu.RUnlock(); return c.token }

// Addrs returns the configured node addresses.
func (c *Client) Addrs() []string { return append([]string(nil), c.addrs...) }

// Close drops idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Do sends one API call (path without /v1/, for example
// "transit/encrypt/k") with body as JSON if not nil, and decodes the JSON
// answer into out if not nil. It tries the nodes in turn, starting with the
// last one that answered, while a node is unreachable, sealed or without an
// active leader; any other answer is final.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var raw []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("transit: failed to encode the request to %s: %w", path, err)
		}
		raw = b
		defer clear(raw)
	}
	n := len(c.addrs)
	start := int(c.preferred.Load())
	var tried []*Error
	for i := range n {
		idx := (start + i) % n
		err := c.once(ctx, c.addrs[idx], method, path, raw, out)
		if err == nil {
			if idx != start {
				c.preferred.Store(int32(idx))
			}
			return nil
		}
		if !err.tryNext() {
			return err
		}
		tried = append(tried, err)
		if ctx.Err() != nil {
			break
		}
	}
	return combine(path, tried)
}

func (c *Client) once(ctx context.Context, addr, method, path string, body []byte, out any) *Error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, addr+"/v1/"+path, rd)
	if err != nil {
		return &Error{Kind: KindBadRequest, Node: addr, Path: path, Err: err}
	}
	if tok := c.currentToken(); tok != "" && ctx.Value(noTokenKey{}) == nil {
		req.Header.Set("X-Vault-Token", tok)
	}
	req.Header.Set("X-Vault-Request", "true")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &Error{Kind: KindUnreachable, Node: addr, Path: path, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	defer clear(data)
	if err != nil {
		return &Error{Kind: KindUnreachable, Node: addr, Path: path, Err: err}
	}
	if resp.StatusCode >= 300 {
		return httpError(addr, path, resp.StatusCode, data)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return &Error{Kind: KindServer, Node: addr, Path: path, Status: resp.StatusCode,
				Err: fmt.Errorf("unreadable answer: %w", err)}
		}
	}
	return nil
}

// noTokenKey marks a context whose calls carry no token (logins).
type noTokenKey struct{}
