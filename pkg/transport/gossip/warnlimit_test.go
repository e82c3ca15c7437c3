package gossip

import (
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

// TestGossipWarningsBounded: an operator certificate of the deployment's
// CA (a role gossip does not admit) connecting 30 times from one address
// costs warnBurst warnings, not 30. Members on 127.0.0.231, the caller on
// .232.
func TestGossipWarningsBounded(t *testing.T) {
	ca := newCA(t, testTrustDomain)
	server, client := tlsPair(ca, issue(t, ca, ca.ID("holder", "w1"), hostIP(231)))
	var logs proctest.Buffer
	tr, err := NewTransport(TransportConfig{
		BindAddr: net.JoinHostPort(hostIP(231).String(), "0"), ServerTLS: server, ClientTLS: client,
		TrustDomain: spiffeid.RequireTrustDomainFromString(ca.TrustDomain),
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown() })
	_, op := tlsPair(ca, issue(t, ca, ca.ID("operator", "mallory"), hostIP(232)))
	for range 30 {
		cfg := op.Clone()
		cfg.NextProtos = []string{alpnProtocol}
		cfg.ServerName = hostIP(231).String()
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: hostIP(232)}}
		conn, err := d.Dial("tcp", tr.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		tc := tlsClient(conn, cfg)
		_ = tc.Handshake()
		expectClosed(t, tc)
	}
	if n := strings.Count(logs.String(), `msg="refusing gossip connection"`); n != warnBurst {
		t.Fatalf("%d warnings for 30 refused connections from one address, want %d:\n%s", n, warnBurst, logs.String())
	}
}

func tlsClient(c net.Conn, cfg *tls.Config) *tls.Conn { return tls.Client(c, cfg) }
