package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// ProxyMode is what a Proxy does with the bytes it carries.
type ProxyMode int

const (
	// ProxyPass forwards every byte at once.
	ProxyPass ProxyMode = iota
	// ProxyDelay forwards every chunk, in both directions, after the
	// proxy's Delay: a slow host or a congested link.
	ProxyDelay
	// ProxyBlackhole accepts connections and reads from them but forwards
	// nothing and never answers: a partition that drops packets.
	ProxyBlackhole
)

func (m ProxyMode) String() string {
	switch m {
	case ProxyPass:
		return "pass"
	case ProxyDelay:
		return "delay"
	case ProxyBlackhole:
		return "blackhole"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// Proxy is a TCP fault proxy in front of one address, for the fault tests:
// it listens on its own port and forwards to Upstream, dialing from
// SourceIP (so that a holder's source-address policy still sees the
// coordinator's host). SetMode changes what it does and closes every
// connection it carries, so the new mode applies from the next connection
// on and no half-forwarded TLS stream survives a change.
type Proxy struct {
	Addr     string // where it listens (host:port)
	Upstream string
	SourceIP string
	// Delay is ProxyDelay's delay per chunk.
	Delay time.Duration

	ln     net.Listener
	mu     sync.Mutex
	mode   ProxyMode
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewProxy listens on a free port of listenIP and forwards to upstream,
// dialing from sourceIP. It starts in ProxyPass. Close stops it.
func NewProxy(listenIP, upstream, sourceIP string) (*Proxy, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(listenIP, "0"))
	if err != nil {
		return nil, fmt.Errorf("proxy: failed to listen on %s: %w", listenIP, err)
	}
	p := &Proxy{Addr: ln.Addr().String(), Upstream: upstream, SourceIP: sourceIP, Delay: 5 * time.Second,
		ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// SetMode switches the mode and drops every open connection.
func (p *Proxy) SetMode(m ProxyMode) {
	p.mu.Lock()
	p.mode = m
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// Mode is the current mode.
func (p *Proxy) Mode() ProxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Close stops listening and drops every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.SetMode(ProxyPass)
	p.wg.Wait()
	return err
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *Proxy) handle(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	mode, delay := p.Mode(), p.Delay
	if mode == ProxyBlackhole {
		_, _ = io.Copy(io.Discard, c) // until the peer or SetMode closes it
		return
	}
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(p.SourceIP)}}
	up, err := d.DialContext(context.Background(), "tcp", p.Upstream)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(up) {
		return
	}
	if mode == ProxyPass {
		delay = 0
	}
	done := make(chan struct{}, 2)
	go func() { forward(up, c, delay); done <- struct{}{} }()
	go func() { forward(c, up, delay); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

// forward copies src to dst, each chunk delay after it was read. Chunks
// keep their order; the reader runs ahead, so the delay is a latency, not
// a throughput limit.
func forward(dst, src net.Conn, delay time.Duration) {
	if delay <= 0 {
		_, _ = io.Copy(dst, src)
		return
	}
	type chunk struct {
		at time.Time
		b  []byte
	}
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{at: time.Now().Add(delay), b: b[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		t := time.NewTimer(time.Until(ch.at))
		<-t.C
		if _, err := dst.Write(ch.b); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				src.Close()
			}
			for range q { // drain so the reader ends
			}
			return
		}
	}
}

// Route makes the coordinator's and the operator's configs send h's share
// service traffic to addr (a Proxy) instead of h.Listen; "" undoes it. A
// running coordinator reads its config only at start: restart it.
func (t *Topology) Route(h *Holder, addr string) error {
	h.route = addr
	if err := t.writeUnsealerConfig(t.UnsealerConfig, "unsealer/u1", CoordinatorIP, true); err != nil {
		return err
	}
	return t.writeUnsealerConfig(t.OperatorConfig, "operator/oncall", OperatorIP, false)
}

// dialAddr is where the coordinator reaches h's share service.
func (h *Holder) dialAddr() string {
	if h.route != "" {
		return h.route
	}
	return h.Listen
}
