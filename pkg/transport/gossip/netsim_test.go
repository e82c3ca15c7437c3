package gossip

import (
	"io"
	"net"
	"sync"
	"testing"
)

// netsim is a tiny simulated network for partition tests. Every member
// advertises a proxy that forwards to its real listener; because the
// transport dials from the member's own 127.0.0.x address, a proxy knows
// which host each connection comes from. Cutting a host refuses new
// connections from or to it and resets the open ones, in both directions.
type netsim struct {
	mu    sync.Mutex
	cut   map[string]bool
	links map[*link]struct{}
	wg    sync.WaitGroup
}

type link struct {
	hosts      [2]string // source host, destination host
	down, back net.Conn
}

func newNetsim(t *testing.T) *netsim {
	n := &netsim{cut: make(map[string]bool), links: make(map[*link]struct{})}
	t.Cleanup(n.wg.Wait)
	return n
}

// proxy listens on listenIP and forwards to target, the real listener of
// the host targetIP. It returns the proxy's address.
func (n *netsim) proxy(t *testing.T, listenIP net.IP, targetIP net.IP, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(listenIP.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			src := c.RemoteAddr().(*net.TCPAddr).IP.String()
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.forward(c, src, targetIP.String(), target)
			}()
		}
	}()
	t.Cleanup(n.closeAll)
	return ln.Addr().String()
}

func (n *netsim) forward(down net.Conn, src, dstHost, target string) {
	if n.isCut(src, dstHost) {
		_ = down.Close()
		return
	}
	back, err := net.Dial("tcp", target)
	if err != nil {
		_ = down.Close()
		return
	}
	l := &link{hosts: [2]string{src, dstHost}, down: down, back: back}
	n.mu.Lock()
	if n.cut[src] || n.cut[dstHost] {
		n.mu.Unlock()
		_ = down.Close()
		_ = back.Close()
		return
	}
	n.links[l] = struct{}{}
	n.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
	}
	go pipe(back, down)
	go pipe(down, back)
	wg.Wait()
	n.mu.Lock()
	delete(n.links, l)
	n.mu.Unlock()
}

func (n *netsim) isCut(hosts ...string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range hosts {
		if n.cut[h] {
			return true
		}
	}
	return false
}

// isolate cuts host off from everyone, closing its open connections.
func (n *netsim) isolate(host net.IP) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[host.String()] = true
	for l := range n.links {
		if l.hosts[0] == host.String() || l.hosts[1] == host.String() {
			_ = l.down.Close()
			_ = l.back.Close()
		}
	}
}

// heal reconnects host.
func (n *netsim) heal(host net.IP) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.cut, host.String())
}

func (n *netsim) closeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for l := range n.links {
		_ = l.down.Close()
		_ = l.back.Close()
	}
}
