// Package tlstest runs one real TLS handshake between two configs, for
// tests that check who accepts whom (roles, trust domains, revocation),
// and records a client's first flight for tests that replay it slowly.
package tlstest

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// Handshake runs one TLS handshake over loopback TCP (buffered, unlike a
// pipe, so that an alert never blocks) and returns each side's error. One
// byte crosses each way after the handshake, so that a verdict sent after
// the peer's Finished (TLS 1.3 client authentication) is seen too.
func Handshake(tb testing.TB, server, client *tls.Config) (serverErr, clientErr error) {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer lis.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan error, 1)
	go func() {
		c, err := lis.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		s := tls.Server(c, server)
		if err = s.Handshake(); err == nil {
			_, err = s.Read(make([]byte, 1))
		}
		done <- err
	}()
	cc, err := net.DialTimeout("tcp", lis.Addr().String(), 10*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	_ = cc.SetDeadline(deadline)
	c := tls.Client(cc, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		_, clientErr = c.Write([]byte{1})
	}
	if clientErr == nil {
		// The server's verdict on the client arrives after the client's
		// Finished; a read surfaces it (or EOF once the server is done).
		if _, rerr := c.Read(make([]byte, 1)); rerr != nil && !errors.Is(rerr, io.EOF) {
			clientErr = rerr
		}
	}
	cc.Close()
	serverErr = <-done
	return serverErr, clientErr
}

// Refusal runs Handshake and returns the refusing side's error, the
// server's first, or nil when both sides accepted.
func Refusal(tb testing.TB, server, client *tls.Config) error {
	tb.Helper()
	serverErr, clientErr := Handshake(tb, server, client)
	if serverErr != nil {
		return fmt.Errorf("server: %w (client: %v)", serverErr, clientErr)
	}
	return clientErr
}

// ClientHello returns the first TLS record a client with cfg sends (its
// ClientHello), read over a pipe with nothing answering it.
func ClientHello(tb testing.TB, cfg *tls.Config) []byte {
	tb.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _ = tls.Client(a, cfg).Handshake() }()
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		tb.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(b, body); err != nil {
		tb.Fatal(err)
	}
	return append(hdr, body...)
}
