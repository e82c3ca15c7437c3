package identity

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"
)

// revocations is a parsed, signature-checked set of CRLs, one per issuer.
type revocations struct {
	path  string
	lists []revocationList
}

type revocationList struct {
	issuer     []byte // raw subject of the CA that signed the list
	nextUpdate time.Time
	serials    map[string]struct{}
}

// parseCRL parses one or more PEM "X509 CRL" blocks (or a single DER CRL)
// from b and checks that each is signed by one of cas.
func parseCRL(path string, b []byte, cas []*x509.Certificate) (*revocations, error) {
	var ders [][]byte
	rest := b
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("CRL %s holds a PEM block of type %q, want \"X509 CRL\"", path, block.Type)
		}
		ders = append(ders, block.Bytes)
	}
	if len(ders) == 0 {
		if len(bytes.TrimSpace(b)) == 0 {
			return nil, fmt.Errorf("CRL %s is empty; write a CRL signed by the CA, or remove the setting", path)
		}
		ders = [][]byte{b}
	}
	revs := &revocations{path: path}
	for i, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("failed to parse CRL %s (entry %d): %w", path, i+1, err)
		}
		if !signedByOneOf(crl, cas) {
			return nil, fmt.Errorf("CRL %s (entry %d, issuer %q): %w", path, i+1, crl.Issuer.String(), errNoCRLIssuer)
		}
		l := revocationList{issuer: crl.RawIssuer, nextUpdate: crl.NextUpdate, serials: map[string]struct{}{}}
		for _, e := range crl.RevokedCertificateEntries {
			l.serials[string(e.SerialNumber.Bytes())] = struct{}{}
		}
		revs.lists = append(revs.lists, l)
	}
	return revs, nil
}

func signedByOneOf(crl *x509.RevocationList, cas []*x509.Certificate) bool {
	for _, ca := range cas {
		if bytes.Equal(ca.RawSubject, crl.RawIssuer) && crl.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}

// check returns an error if a certificate of chain (root excluded) is
// revoked, or if a CRL that covers it is past its next update, since a stale
// CRL may miss a revocation.
func (r *revocations) check(chain []*x509.Certificate, now time.Time) error {
	if r == nil {
		return nil
	}
	for i, c := range chain {
		if i == len(chain)-1 && i > 0 {
			break // the trust anchor itself
		}
		for _, l := range r.lists {
			if !bytes.Equal(l.issuer, c.RawIssuer) {
				continue
			}
			if !l.nextUpdate.IsZero() && now.After(l.nextUpdate) {
				return fmt.Errorf("CRL %s expired at %s; publish a fresh CRL", r.path, l.nextUpdate.UTC().Format(time.RFC3339))
			}
			if _, revoked := l.serials[string(c.SerialNumber.Bytes())]; revoked {
				return fmt.Errorf("certificate %q (serial %x) is revoked by CRL %s", c.Subject.CommonName, c.SerialNumber, r.path)
			}
		}
	}
	return nil
}
