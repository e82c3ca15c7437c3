package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"time"
)

// DefaultCRLDays is how long a CRL stays valid (its NextUpdate) when
// CRLOptions.Days is 0. The daemons refuse every peer once the CRL they
// load is past NextUpdate, so refresh it well before (`unsealer tls crl
// update`) and alert on it.
const DefaultCRLDays = 180

// CRLOptions shape a new CRL.
type CRLOptions struct {
	// Days until NextUpdate (DefaultCRLDays if 0).
	Days int
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// CRLInfo describes the CRL written.
type CRLInfo struct {
	Path       string
	Number     *big.Int
	Revoked    int
	NextUpdate time.Time
	// Already is true when Revoke found the serial revoked already.
	Already bool
}

// ErrNotIssuedByCA is returned by Revoke for a certificate another CA
// signed.
var ErrNotIssuedByCA = errors.New("certificate was not issued by this CA")

// currentCRL reads the CA's CRL, if there is one, and checks that the CA
// signed it. It returns nil (and no error) if there is no CRL yet.
func (ca *CA) currentCRL() (*x509.RevocationList, error) {
	b, err := os.ReadFile(ca.CRLPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read CRL %s: %w", ca.CRLPath(), err)
	}
	der := b
	if block, _ := pem.Decode(b); block != nil {
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("CRL %s holds a PEM block of type %q, want \"X509 CRL\"", ca.CRLPath(), block.Type)
		}
		der = block.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("failed to parse CRL %s (move it away to start a new one; its revocations would be lost): %w", ca.CRLPath(), err)
	}
	if !bytes.Equal(crl.RawIssuer, ca.Cert.RawSubject) || crl.CheckSignatureFrom(ca.Cert) != nil {
		return nil, fmt.Errorf("CRL %s is not signed by the CA %s; is it the CRL of another CA?", ca.CRLPath(), ca.CertPath())
	}
	return crl, nil
}

// UpdateCRL writes the CA's CRL again with the same revocations, a CRL
// number one higher and a fresh NextUpdate; with no CRL yet it writes an
// empty one (number 1), so that the daemons can be pointed at it before
// anything is revoked.
func (ca *CA) UpdateCRL(opts CRLOptions) (CRLInfo, error) {
	cur, err := ca.currentCRL()
	if err != nil {
		return CRLInfo{}, err
	}
	return ca.writeCRL(cur, nil, opts)
}

// Revoke adds the serial of cert to the CA's CRL and writes it (see
// UpdateCRL). cert must have been issued by ca. Revoking a certificate that
// is revoked already changes nothing and says so in CRLInfo.Already.
func (ca *CA) Revoke(cert *x509.Certificate, opts CRLOptions) (CRLInfo, error) {
	if !bytes.Equal(cert.RawIssuer, ca.Cert.RawSubject) || cert.CheckSignatureFrom(ca.Cert) != nil {
		return CRLInfo{}, fmt.Errorf("certificate %q (serial %x): %w %s; revoke it with the CA that issued it",
			cert.Subject.CommonName, cert.SerialNumber, ErrNotIssuedByCA, ca.CertPath())
	}
	return ca.RevokeSerial(cert.SerialNumber, opts)
}

// RevokeSerial is Revoke for a certificate known only by its serial (the
// file is lost). The serial is not checked against anything.
func (ca *CA) RevokeSerial(serial *big.Int, opts CRLOptions) (CRLInfo, error) {
	if serial == nil || serial.Sign() <= 0 {
		return CRLInfo{}, invalidf("serial number must be positive")
	}
	cur, err := ca.currentCRL()
	if err != nil {
		return CRLInfo{}, err
	}
	if cur != nil {
		for _, e := range cur.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(serial) == 0 {
				return CRLInfo{Path: ca.CRLPath(), Number: cur.Number, Revoked: len(cur.RevokedCertificateEntries),
					NextUpdate: cur.NextUpdate, Already: true}, nil
			}
		}
	}
	return ca.writeCRL(cur, serial, opts)
}

// writeCRL signs and writes cur's entries plus add (if not nil) with the
// next CRL number.
func (ca *CA) writeCRL(cur *x509.RevocationList, add *big.Int, opts CRLOptions) (CRLInfo, error) {
	days, err := validityDays("CRL", opts.Days, DefaultCRLDays)
	if err != nil {
		return CRLInfo{}, err
	}
	opts.Days = days
	t := clock(opts.Now)
	number := big.NewInt(1)
	var entries []x509.RevocationListEntry
	if cur != nil {
		if cur.Number != nil {
			number = new(big.Int).Add(cur.Number, big.NewInt(1))
		}
		for _, e := range cur.RevokedCertificateEntries {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: e.SerialNumber, RevocationTime: e.RevocationTime,
				ReasonCode: e.ReasonCode, Extensions: e.Extensions})
		}
	}
	if add != nil {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: add, RevocationTime: t})
	}
	next := t.AddDate(0, 0, opts.Days)
	if next.After(ca.Cert.NotAfter) {
		next = ca.Cert.NotAfter
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                t.Add(-5 * time.Minute),
		NextUpdate:                next,
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		return CRLInfo{}, fmt.Errorf("failed to sign the CRL with CA %s: %w", ca.CertPath(), err)
	}
	if err := replaceFile(ca.CRLPath(), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		return CRLInfo{}, err
	}
	return CRLInfo{Path: ca.CRLPath(), Number: number, Revoked: len(entries), NextUpdate: next}, nil
}

// ReadCert reads the first certificate of a PEM file.
func ReadCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read certificate %s: %w", path, err)
	}
	certs, err := readPEMCerts(path, b)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}
