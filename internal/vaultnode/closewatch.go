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
	"time"
)

// ConnEvent is what WatchClose reports about its held connection.
type ConnEvent struct {
	// Held is true when a connection was just opened and is now held
	// idle. Status is then the node's seal status as read on that very
	// connection when it opened.
	Held   bool
	Status Status
	// HeldFor is, when Held is false, how long the connection that just
	// ended was held.
	HeldFor time.Duration
}

// Pacing of WatchClose's connection attempts.
const (
	// retryFast is the pause between attempts while the node refuses
	// them, for retryFastFor after the connection ended: a restarted Vault
	// listens again about 0.15 s after it starts, and a refused connection
	// on a LAN costs microseconds. It is what notices a restarted node
	// first (the fast seal-status poll is every 50 ms), and its status
	// starts the unseal.
	retryFast    = 20 * time.Millisecond
	retryFastFor = 2 * time.Second
	// retryMax bounds the pause between attempts to a node that stays down.
	retryMax = time.Second
	// churnHold: a connection held for less than this that ended while the
	// node went on answering (something in between closes idle
	// connections) makes the next attempt wait longer, doubling up to
	// churnPauseMax, so a closing proxy costs no handshake storm.
	churnHold     = time.Second
	churnPause    = 50 * time.Millisecond
	churnPauseMax = 30 * time.Second
)

// WatchClose holds one idle keep-alive connection to the node and reports
// on events when it is held (with the seal status read on it) and when it
// ends: when Vault stops or restarts, the kernel closes its sockets at once,
// so a watcher learns of a restart without waiting for its next poll. Vault
// also closes idle connections after its http_idle_timeout (5 minutes by
// default), which costs one reconnect.
//
// Sends block until received or ctx is done, so no event is ever lost and
// their order is kept: every "ended" is followed by a "held" before the
// next "ended". Before it reports an end it drops the client's idle pooled
// connections (CloseIdle), so the poll that the event triggers dials afresh
// instead of asking a process that may be going away. It returns when ctx
// is done.
func (n *Node) WatchClose(ctx context.Context, events chan<- ConnEvent) {
	u, err := url.Parse(n.Addr)
	if err != nil {
		return
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "8200")
	}
	send := func(ev ConnEvent) bool {
		select {
		case events <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var pause time.Duration
	lost := time.Now() // fast retries at first, as after a loss
	churn := 0
	for ctx.Err() == nil {
		if pause > 0 && !sleepCtx(ctx, pause) {
			return
		}
		conn, br, st, err := n.openHeld(ctx, u, host)
		if err != nil {
			churn = 0 // the node is not answering: a restart, not a proxy
			switch {
			case !IsUnreachable(err) && !isTimeout(err):
				// It answers, but not as a Vault we trust (TLS, HTTP):
				// a misconfiguration, which retrying fast will not mend.
				pause = min(max(2*pause, retryFast), churnPauseMax)
			case time.Since(lost) < retryFastFor:
				pause = retryFast
			default:
				pause = min(max(2*pause, retryFast), retryMax)
			}
			continue
		}
		if !send(ConnEvent{Held: true, Status: st}) {
			conn.Close()
			return
		}
		began := time.Now()
		n.waitClosed(ctx, conn, br)
		if ctx.Err() != nil {
			return
		}
		lost = time.Now()
		held := lost.Sub(began)
		n.CloseIdle()
		if !send(ConnEvent{HeldFor: held}) {
			return
		}
		pause = 0
		if held < churnHold {
			churn++
			pause = min(churnPause<<churn, churnPauseMax)
		} else {
			churn = 0
		}
	}
}

// openHeld connects, asks for the seal status on the new connection so
// that the server treats it as an idle keep-alive one, and returns it.
func (n *Node) openHeld(ctx context.Context, u *url.URL, host string) (net.Conn, *bufio.Reader, Status, error) {
	timeout := n.http.Timeout
	// TCP keepalive once a minute rather than Go's 15 s: enough to keep
	// a NAT's state, and a thousand held connections cost no probes to
	// speak of. A silently dead peer is the safety net's to find.
	d := &net.Dialer{Timeout: timeout, KeepAlive: time.Minute}
	raw, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, nil, Status{}, err
	}
	conn := raw
	if u.Scheme == "https" {
		cfg := n.tlsConfig.Clone() // shares the session cache: resumed handshakes
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname() // as http.Transport does
		}
		cfg.NextProtos = []string{"http/1.1"} // the request below is HTTP/1.1
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, nil, Status{}, err
		}
		conn = tc
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, "GET /v1/sys/seal-status HTTP/1.1\r\nHost: "+u.Host+"\r\n\r\n"); err != nil {
		conn.Close()
		return nil, nil, Status{}, err
	}
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, Status{}, err
	}
	st, err := decodeStatus(resp)
	resp.Body.Close()
	if err == nil && resp.Close {
		err = fmt.Errorf("vault node %s: the server will not keep the connection open", n.Name)
	}
	if err != nil {
		conn.Close()
		return nil, nil, Status{}, err
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, st, nil
}

// waitClosed blocks until the server closes conn (or sends anything, which
// an idle HTTP/1.1 connection never gets), or ctx is done; conn is closed.
func (n *Node) waitClosed(ctx context.Context, conn net.Conn, br *bufio.Reader) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	_, _ = br.ReadByte()
}

// isTimeout reports a dial or handshake that timed out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sleepCtx waits d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
