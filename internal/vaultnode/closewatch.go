package vaultnode

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// closeWatchRetry is the pause between connection attempts while the node
// does not accept one (the seal-status poller is in its fast mode then).
const closeWatchRetry = 200 * time.Millisecond

// WatchClose holds one idle keep-alive connection to the node and sends on
// wake whenever that connection ends: when Vault stops or restarts, the
// kernel closes its sockets at once, so a watcher learns of a restart
// without waiting for its next poll. Vault also closes idle connections
// after its http_idle_timeout (5 minutes by default), which only costs one
// extra poll. It returns when ctx is done. Sends never block.
func (n *Node) WatchClose(ctx context.Context, wake chan<- struct{}) {
	u, err := url.Parse(n.Addr)
	if err != nil {
		return
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "8200")
	}
	for ctx.Err() == nil {
		if n.holdOpen(ctx, u, host) {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
		t := time.NewTimer(closeWatchRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// holdOpen connects, makes one cheap request so that the server treats the
// connection as an idle keep-alive one, and blocks until it closes. It
// reports whether a connection was up and then ended (not ctx).
func (n *Node) holdOpen(ctx context.Context, u *url.URL, host string) bool {
	d := &net.Dialer{Timeout: DefaultTimeout}
	raw, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return false
	}
	conn := raw
	if u.Scheme == "https" {
		cfg := n.tlsConfig.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname() // as http.Transport does
		}
		cfg.NextProtos = []string{"http/1.1"} // the request below is HTTP/1.1
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return false
		}
		conn = tc
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(DefaultTimeout))
	if _, err := io.WriteString(conn, "GET /v1/sys/seal-status HTTP/1.1\r\nHost: "+u.Host+"\r\n\r\n"); err != nil {
		return false
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	_ = conn.SetDeadline(time.Time{})
	_, _ = br.ReadByte() // blocks until the server closes the connection
	return ctx.Err() == nil
}
