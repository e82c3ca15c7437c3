package identity

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

const (
	serverIP = "127.0.0.21"
	clientIP = "127.0.0.22"
	// waitFor bounds every poll: the test machine is small and busy.
	waitFor = 30 * time.Second
)

// testPKI is a CA with its bundle written into a temporary folder.
type testPKI struct {
	dir    string
	ca     *devpki.CA
	caFile string
}

func newPKI(t *testing.T, trustDomain string) *testPKI {
	t.Helper()
	ca, err := devpki.NewCA(trustDomain)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &testPKI{dir: dir, ca: ca, caFile: filepath.Join(dir, "ca.pem")}
	if err := ca.WriteCA(p.caFile); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *testPKI) id(t *testing.T, role Role, name string) spiffeid.ID {
	t.Helper()
	return spiffeid.RequireFromString(p.ca.ID(string(role), name))
}

func (p *testPKI) leaf(t *testing.T, role Role, name string) *devpki.Leaf {
	t.Helper()
	l, err := p.ca.IssueID(string(role), name, net.ParseIP(serverIP))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// writeLeaf writes l as <dir>/<base>.crt and .key and returns Options for it.
func (p *testPKI) writeLeaf(t *testing.T, l *devpki.Leaf, base string) Options {
	t.Helper()
	cert, key, err := l.WriteFiles(p.dir, base)
	if err != nil {
		t.Fatal(err)
	}
	return Options{CAFile: p.caFile, CertFile: cert, KeyFile: key, Debounce: 20 * time.Millisecond}
}

func mustNew(t *testing.T, opts Options) *Source {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// watch runs s.Watch until the test ends.
func watch(t *testing.T, s *Source) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
}

// logBuffer collects slog output for assertions.
type logBuffer struct{ proctest.Buffer }

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// outcome is the result of one handshake, seen from both ends.
type outcome struct {
	serverErr, clientErr error
	server, client       tls.ConnectionState
}

func (o outcome) ok() bool { return o.serverErr == nil && o.clientErr == nil }

// handshake runs one TLS handshake from clientIP to serverIP. The server
// writes one byte after its handshake, so that a client whose certificate
// the server refused sees the refusal.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) outcome {
	t.Helper()
	ln, err := net.Listen("tcp", serverIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	var o outcome
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			o.serverErr = err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(waitFor))
		tc := tls.Server(c, serverCfg)
		if o.serverErr = tc.HandshakeContext(ctx); o.serverErr == nil {
			o.server = tc.ConnectionState()
			_, o.serverErr = tc.Write([]byte{'k'})
		}
	}()

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}}
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitFor))
	tc := tls.Client(c, clientCfg)
	if o.clientErr = tc.HandshakeContext(ctx); o.clientErr == nil {
		o.client = tc.ConnectionState()
		var b [1]byte
		if _, err := io.ReadFull(tc, b[:]); err != nil {
			o.clientErr = err
		}
	}
	if o.clientErr != nil {
		c.Close() // unblock a server still waiting for us
	}
	<-done
	return o
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	proctest.WaitFor(t, waitFor, what, cond)
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func errContains(err error, sub string) bool {
	return err != nil && strings.Contains(err.Error(), sub)
}
