package vaultnode

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// pollConn is the node's seal-status connection: one kept-alive HTTP/1.1
// connection that SealStatus uses synchronously, on the caller's
// goroutine. net/http's client hands every request to a writer and a
// reader goroutine of the connection and allocates a good deal around it;
// for the coordinator, which polls a thousand nodes as a safety net, that
// was most of its idle cost. Only seal-status goes this way; a caller that
// finds it busy (concurrent checks in a holder) uses the pooled client.
type pollConn struct {
	mu   sync.Mutex // held for a whole request
	conn net.Conn
	br   *bufio.Reader
	req  []byte // the request, built once
	// gen is the CloseIdle generation the connection was opened in; a
	// connection of an older one is closed before use.
	gen uint64

	genMu  sync.Mutex
	curGen uint64
}

// newer marks connections opened so far as not to be reused.
func (p *pollConn) newer() {
	p.genMu.Lock()
	p.curGen++
	p.genMu.Unlock()
}

func (p *pollConn) generation() uint64 {
	p.genMu.Lock()
	defer p.genMu.Unlock()
	return p.curGen
}

// errBusy: another seal-status request holds the connection.
var errBusy = errors.New("seal-status connection busy")

// sealStatusConn asks for the seal status on the poll connection.
func (n *Node) sealStatusConn(ctx context.Context) (Status, error) {
	var st Status
	err := n.connDo(ctx, nil, func(resp *http.Response) error {
		var err error
		st, err = decodeStatus(resp)
		return err
	})
	return st, err
}

// connDo makes one request on the poll connection, opening it if needed:
// req is the whole request (nil: seal-status), handle reads the answer. A
// reused connection that fails before any answer (the server closed it,
// typically because the process went away) is retried once on a fresh
// one, as net/http does, so that a restarted node reads as refused or as
// its new self, not as an error. Only requests that may be repeated come
// here: seal-status, and unseal (Vault ignores a share it has already).
func (n *Node) connDo(ctx context.Context, req []byte, handle func(*http.Response) error) error {
	p := &n.poll
	if !p.mu.TryLock() {
		return errBusy
	}
	defer p.mu.Unlock()
	if p.conn != nil && p.gen != p.generation() {
		p.close()
	}
	reused := p.conn != nil
	answered, err := n.roundTrip(ctx, req, handle)
	if err != nil && reused && !answered && ctx.Err() == nil {
		_, err = n.roundTrip(ctx, req, handle)
	}
	return err
}

// roundTrip makes one request on the poll connection (dialing if there is
// none) and reports whether any answer came back.
func (n *Node) roundTrip(ctx context.Context, req []byte, handle func(*http.Response) error) (bool, error) {
	p := &n.poll
	if p.conn == nil {
		if err := n.dialPoll(ctx); err != nil {
			return false, err
		}
	}
	if req == nil {
		req = p.req
	}
	deadline := time.Now().Add(n.http.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn := p.conn
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(req); err != nil {
		p.close()
		return false, err
	}
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		p.close()
		if errors.Is(err, io.EOF) && ctx.Err() == nil {
			err = io.ErrUnexpectedEOF // the server closed the connection
		}
		return false, err
	}
	err = handle(resp)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil || resp.Close || !stop() {
		// A bad answer, a server closing, or ctx done mid-way: the
		// connection's state is unknown; start afresh next time.
		p.close()
	}
	return true, err
}

// putRequest is an HTTP/1.1 PUT of a JSON body on the poll connection.
// The caller zeroes it after use when the body is secret.
func (n *Node) putRequest(path string, body []byte) []byte {
	host := strings.TrimPrefix(strings.TrimPrefix(n.Addr, "https://"), "http://")
	req := make([]byte, 0, 160+len(body))
	req = fmt.Appendf(req, "PUT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: keyshare\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		path, host, len(body))
	return append(req, body...)
}

// dialPoll opens the poll connection: TCP, TLS against the pinned CA (the
// session cache makes a reconnect a resumed handshake), HTTP/1.1.
func (n *Node) dialPoll(ctx context.Context) error {
	p := &n.poll
	u, err := url.Parse(n.Addr)
	if err != nil {
		return err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "8200")
	}
	gen := p.generation()
	d := &net.Dialer{Timeout: n.http.Timeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	conn := raw
	if u.Scheme == "https" {
		cfg := n.tlsConfig.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, n.http.Timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return err
		}
		conn = tc
	}
	if p.req == nil {
		p.req = fmt.Appendf(nil, "GET /v1/sys/seal-status HTTP/1.1\r\nHost: %s\r\nUser-Agent: keyshare\r\n\r\n", u.Host)
	}
	p.conn, p.br, p.gen = conn, bufio.NewReaderSize(conn, 2048), gen
	return nil
}

func (p *pollConn) close() {
	if p.conn != nil {
		p.conn.Close()
	}
	p.conn, p.br = nil, nil
}
