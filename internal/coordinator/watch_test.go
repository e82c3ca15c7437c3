package coordinator

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/metrictest"

	"github.com/keyshare/keyshare/internal/vaultnode"
)

// tcpProxy forwards each client connection to backend on a connection of
// its own, the way a load balancer or a NAT in front of Vault would.
type tcpProxy struct {
	ln      net.Listener
	backend string
	// keepClientOpen: when the backend side ends, leave the client side
	// open and swallow whatever the client sends, so the client never
	// sees the end (a proxy that does not pass closes on).
	keepClientOpen bool
	// idleClose closes a connection whose client sent nothing for this
	// long (a proxy closing idle connections); 0 never does.
	idleClose time.Duration

	mu    sync.Mutex
	conns []net.Conn
	backs []net.Conn
	wg    sync.WaitGroup
}

// newProxy listens on ip:0 (the port read back from the listener).
func newProxy(t *testing.T, ip, backend string, keepClientOpen bool, idleClose time.Duration) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, backend: backend, keepClientOpen: keepClientOpen, idleClose: idleClose}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

// cut drops every backend connection at once, as a host that vanished
// would, without passing anything more (not even a TLS close_notify) to
// the clients. With keepClientOpen, the clients see nothing.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.backs {
		b.Close()
	}
	p.backs = nil
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(client)
		back, err := net.Dial("tcp", p.backend)
		if err != nil {
			client.Close()
			continue
		}
		p.track(back)
		p.mu.Lock()
		p.backs = append(p.backs, back)
		p.mu.Unlock()
		p.wg.Add(2)
		backDone := make(chan struct{})
		go func() { // backend to client
			defer p.wg.Done()
			_, _ = io.Copy(client, back)
			close(backDone)
			if !p.keepClientOpen {
				client.Close()
			}
		}()
		go func() { // client to backend
			defer p.wg.Done()
			buf := make([]byte, 4096)
			for {
				if p.idleClose > 0 {
					_ = client.SetReadDeadline(time.Now().Add(p.idleClose))
				}
				n, err := client.Read(buf)
				if err != nil {
					client.Close()
					back.Close()
					return
				}
				select {
				case <-backDone: // swallowed: the client's side stays open
					continue
				default:
				}
				if _, err := back.Write(buf[:n]); err != nil && !p.keepClientOpen {
					client.Close()
					return
				}
			}
		}()
	}
}

// startBehind runs a coordinator whose node is reached through addr.
func (r *rig) startBehind(t *testing.T, addr string, timeout time.Duration, o Options) *Coordinator {
	t.Helper()
	node, err := vaultnode.New("vault-1", "https://"+addr, vaultnode.Options{CACert: r.caPEM, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	r.node = node
	c, _ := r.start(t, o)
	return c
}

// TestSafetyNetBehindProxy: a node restarted behind a proxy that keeps the
// client side of every connection open (so the held connection never
// ends) is still unsealed, by the safety-net poll, within its interval
// plus one request timeout. The control case shows that without the
// safety net it would stay sealed: nothing else notices this restart.
func TestSafetyNetBehindProxy(t *testing.T) {
	const (
		safetyNet = time.Second
		timeout   = 300 * time.Millisecond
		poll      = 100 * time.Millisecond
	)
	// The longest a working safety net may take: the jittered interval,
	// a timed-out request on the dead pooled connection, one poll
	// interval of back-off, and room for the unseal under -race.
	bound := safetyNet*6/5 + timeout + poll + 1500*time.Millisecond
	run := func(t *testing.T, ip string, interval time.Duration) (unsealed bool, c *Coordinator, m *Metrics) {
		r := newRig(t, ip)
		p := newProxy(t, ip, r.fake.Addr(), true, 0)
		m = NewMetrics()
		c = r.startBehind(t, p.addr(), timeout, Options{SafetyNetInterval: interval, PollInterval: poll, Metrics: m})
		waitUnsealed(t, r.fake, 10*time.Second)
		waitMode(t, c, ModeHeld)
		p.cut()
		r.fake.Stop()
		if err := r.fake.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(bound)
		for r.fake.Sealed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		noWaste(t, r.fake)
		return !r.fake.Sealed(), c, m
	}
	t.Run("ok/safety-net", func(t *testing.T) {
		unsealed, c, m := run(t, "127.0.0.81", safetyNet)
		if !unsealed {
			t.Fatalf("restarted node behind the proxy still sealed %s after the restart (safety net every %s)", bound, safetyNet)
		}
		if l := metrictest.Value(t, m.losses.WithLabelValues("vault-1")); l != 0 {
			t.Fatalf("the held connection ended %v times: the proxy let the restart through, so this tested nothing", l)
		}
		if mode := c.State()["vault-1"].Mode; mode == ModePoll {
			t.Fatalf("mode %q after the restart, want held or fast", mode)
		}
	})
	t.Run("control/no-safety-net", func(t *testing.T) {
		if unsealed, _, _ := run(t, "127.0.0.82", time.Hour); unsealed {
			t.Fatal("unsealed without a safety net: something else saw the restart, so the ok case does not prove the safety net")
		}
	})
}

// TestFallbackWhenConnectionsDoNotLast: behind a proxy that closes idle
// connections, the held connection keeps ending while the node runs on,
// so the watcher falls back to polling every PollInterval and says so in
// its state and metrics; a restart is then caught by that poll.
func TestFallbackWhenConnectionsDoNotLast(t *testing.T) {
	r := newRig(t, "127.0.0.83")
	p := newProxy(t, "127.0.0.83", r.fake.Addr(), false, 150*time.Millisecond)
	m := NewMetrics()
	c := r.startBehind(t, p.addr(), time.Second, Options{SafetyNetInterval: time.Hour, PollInterval: 100 * time.Millisecond,
		MinHold: time.Second, Metrics: m})
	waitUnsealed(t, r.fake, 10*time.Second)
	waitMode(t, c, ModePoll)
	if g := metrictest.Value(t, m.mode.WithLabelValues("vault-1", ModePoll)); g != 1 {
		t.Fatalf("watch_mode{mode=poll} = %v, want 1", g)
	}
	if g := metrictest.Value(t, m.mode.WithLabelValues("vault-1", ModeHeld)); g != 0 {
		t.Fatalf("watch_mode{mode=held} = %v, want 0", g)
	}
	// Sealed by an operator: no connection ends, the 100 ms poll sees it
	// (the safety net, an hour, would not).
	r.fake.Seal()
	waitUnsealed(t, r.fake, 5*time.Second)
	noWaste(t, r.fake)
}

// TestHeldModeStopsRegularPolls: with the connection held, a healthy node
// costs one poll per safety-net interval, not one per PollInterval.
func TestHeldModeStopsRegularPolls(t *testing.T) {
	r := newRig(t, "127.0.0.84")
	m := NewMetrics()
	c, _ := r.start(t, Options{SafetyNetInterval: time.Hour, PollInterval: 20 * time.Millisecond, Metrics: m})
	waitUnsealed(t, r.fake, 10*time.Second)
	waitMode(t, c, ModeHeld)
	before := metrictest.Value(t, m.polls.WithLabelValues("vault-1"))
	time.Sleep(500 * time.Millisecond) // a window in which 25 polls would fit
	if after := metrictest.Value(t, m.polls.WithLabelValues("vault-1")); after != before {
		t.Fatalf("%v polls in 0.5 s while the connection was held, want 0", after-before)
	}
}

// waitMode polls the coordinator's state until vault-1 is watched in mode.
func waitMode(t *testing.T, c *Coordinator, mode string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.State()["vault-1"].Mode != mode {
		if time.Now().After(deadline) {
			t.Fatalf("mode %q after 10s, want %q", c.State()["vault-1"].Mode, mode)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestInSlot: a safety-net wait ends at the start of a 250 ms slot, never
// later than asked and less than a slot earlier.
func TestInSlot(t *testing.T) {
	for _, d := range []time.Duration{0, time.Millisecond, safetyNetSlot, safetyNetSlot + time.Nanosecond, 8 * time.Second, 12*time.Second + 7*time.Millisecond} {
		now := time.Now()
		got := inSlot(d)
		if got > d || got < d-safetyNetSlot-time.Millisecond {
			t.Fatalf("inSlot(%s) = %s, want within a slot below it", d, got)
		}
		if d > safetyNetSlot {
			// now was read a moment before inSlot's own clock reading.
			if rem := now.Add(got).Sub(now.Add(got).Truncate(safetyNetSlot)); rem > 5*time.Millisecond && rem < safetyNetSlot-5*time.Millisecond {
				t.Fatalf("inSlot(%s) = %s ends %s into its slot", d, got, rem)
			}
		}
	}
}
