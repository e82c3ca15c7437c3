package gossip

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

const testTrustDomain = "keyshare.test"

// hostIP returns the loopback address of simulated host n: 127.0.0.n.
func hostIP(n int) net.IP { return net.IPv4(127, 0, 0, byte(n)).To4() }

func newCA(t testing.TB, td string) *devpki.CA {
	t.Helper()
	ca, err := devpki.NewCA(td)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// tlsPair builds the mutual TLS configs a node would get from the identity
// package: TLS 1.3, client certificates required and verified against ca.
func tlsPair(ca *devpki.CA, leaf *devpki.Leaf) (server, client *tls.Config) {
	cert := leaf.TLSCertificate()
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca.Pool(),
	}
	return server, client
}

func issue(t testing.TB, ca *devpki.CA, uri string, ips ...net.IP) *devpki.Leaf {
	t.Helper()
	leaf, err := ca.Issue(devpki.LeafOptions{URIs: []string{uri}, IPs: ips})
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// testLogger logs to the test at the level in KEYSHARE_TEST_LOG (default
// warn), and stops before the test ends so late goroutines cannot panic it.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	level := slog.LevelWarn
	if v := os.Getenv("KEYSHARE_TEST_LOG"); v != "" {
		_ = level.UnmarshalText([]byte(v))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

// node describes one simulated host.
type node struct {
	name      string // role/name
	ip        int    // last byte of 127.0.0.x
	advertise string // optional host:port (a proxy)
	certIPs   []net.IP
	seeds     []string
}

func testConfig(t testing.TB, ca *devpki.CA, n node) Config {
	t.Helper()
	id := ca.ID(strings.Split(n.name, "/")[0], strings.Split(n.name, "/")[1])
	leaf := issue(t, ca, id, append([]net.IP{hostIP(n.ip)}, n.certIPs...)...)
	server, client := tlsPair(ca, leaf)
	return Config{
		Name:           id,
		BindAddr:       net.JoinHostPort(hostIP(n.ip).String(), "0"),
		AdvertiseAddr:  n.advertise,
		Seeds:          n.seeds,
		ServerTLS:      server,
		ClientTLS:      client,
		Meta:           Meta{RPCAddr: net.JoinHostPort(hostIP(n.ip).String(), "8443"), Version: "test"},
		Tuning:         LoopbackTuning(),
		Logger:         testLogger(t),
		RejoinInterval: time.Second,
	}
}

func start(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("failed to start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	return c
}

// startCluster starts n holders on 127.0.0.(base+1)..(base+n), all seeded
// with the first one.
func startCluster(t testing.TB, ca *devpki.CA, base, n int) []*Cluster {
	t.Helper()
	var out []*Cluster
	var seed string
	for i := 1; i <= n; i++ {
		cfg := testConfig(t, ca, node{name: fmt.Sprintf("holder/h%d", i), ip: base + i})
		if seed != "" {
			cfg.Seeds = []string{seed}
		}
		c := start(t, cfg)
		if seed == "" {
			seed = c.AdvertiseAddr()
		}
		out = append(out, c)
	}
	return out
}

// stateOf returns c's view of name, or 0 if name is not listed.
func stateOf(c *Cluster, name string) State {
	for _, m := range c.Members() {
		if m.Name == name {
			return m.State
		}
	}
	return 0
}

// converged reports whether every cluster lists exactly names, all alive.
func converged(cs []*Cluster) error {
	for _, c := range cs {
		alive := 0
		for _, m := range c.Members() {
			if m.State == StateAlive {
				alive++
			}
		}
		if alive != len(cs) {
			return fmt.Errorf("%s sees %d alive members, want %d", c.Name(), alive, len(cs))
		}
		for _, o := range cs {
			if s := stateOf(c, o.Name()); s != StateAlive {
				return fmt.Errorf("%s sees %s as %v", c.Name(), o.Name(), s)
			}
		}
	}
	return nil
}
