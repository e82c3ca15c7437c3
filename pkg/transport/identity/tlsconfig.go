package identity

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ServerConfig returns a TLS 1.3 server config that requires a client
// certificate and accepts only clients whose verified ID authz allows. The
// certificate served and the bundle and CRL checked against are the current
// ones at each handshake. Session tickets are off, so every connection
// proves its certificate afresh.
func (s *Source) ServerConfig(authz Authorizer) *tls.Config {
	base := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		ClientAuth:             tls.RequireAnyClientCert,
		SessionTicketsDisabled: true,
		GetCertificate:         s.getCertificate,
	}
	base.VerifyConnection = func(cs tls.ConnectionState) error {
		return s.verifyPeer(cs, authz, "client", "")
	}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		remote := ""
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr().String()
		}
		if err := s.cur.Load().usable(); err != nil {
			s.logRefusal("refused TLS client", remote, err)
			return nil, err
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			return s.verifyPeer(cs, authz, "client", remote)
		}
		return c, nil
	}
	return base
}

// ClientConfig returns a TLS 1.3 client config that presents the current
// certificate and accepts only servers whose verified ID expect allows.
// Host names play no part: the server is verified by its SPIFFE ID against
// the current bundle and CRL in VerifyConnection.
func (s *Source) ClientConfig(expect Authorizer) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		// The standard host name check is replaced, not dropped: the chain,
		// the SPIFFE ID, the CRL and the authorizer are all checked in
		// VerifyConnection, which runs on every handshake.
		InsecureSkipVerify:   true,
		GetClientCertificate: s.getClientCertificate,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.verifyPeer(cs, expect, "server", "")
		},
	}
}

func (s *Source) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m := s.cur.Load()
	if err := m.usable(); err != nil {
		return nil, err
	}
	return m.creds.cert, nil
}

func (s *Source) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return s.getCertificate(nil)
}

// verifyPeer checks the peer's chain against the current bundle and CRL,
// its SPIFFE ID, and the authorizer. side names the peer ("client" or
// "server") in errors.
func (s *Source) verifyPeer(cs tls.ConnectionState, authz Authorizer, side, remote string) error {
	err := s.checkPeer(cs, authz)
	if err != nil {
		err = fmt.Errorf("refused TLS %s: %w", side, err)
		if remote != "" {
			s.logRefusal("refused TLS "+side, remote, err)
		}
	}
	return err
}

// logRefusal logs a refused handshake, at most refusalBurst per source
// address per refusalWindow (see lograte.go).
func (s *Source) logRefusal(msg, remote string, err error) {
	ok, left := s.refusals.allow(remote)
	if !ok {
		return
	}
	if left > 0 {
		s.log.Warn(msg, "remote", remote, "err", err, "not_logged_before", left)
		return
	}
	s.log.Warn(msg, "remote", remote, "err", err)
}

func (s *Source) checkPeer(cs tls.ConnectionState, authz Authorizer) error {
	m := s.cur.Load()
	if err := m.usable(); err != nil {
		return err
	}
	if cs.Version != tls.VersionTLS13 {
		return errors.New("TLS 1.3 is required")
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate presented; configure a client certificate from the deployment CA")
	}
	id, _, err := IDFromLeaf(cs.PeerCertificates[0])
	if err != nil {
		return err
	}
	_, chains, err := x509svid.Verify(cs.PeerCertificates, m.creds.bundle)
	if err != nil {
		return fmt.Errorf("certificate of %s does not verify against the CA bundle %s: %w", id, s.opts.CAFile, err)
	}
	now := time.Now()
	for _, chain := range chains {
		if err := m.revs.check(chain, now); err != nil {
			return fmt.Errorf("peer %s: %w", id, err)
		}
	}
	return authz.Authorize(id)
}
