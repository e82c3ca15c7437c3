package identity

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// DefaultPollInterval is how often Watch reloads the files even without a
// change event, as a safety net for file systems and symlink layouts that
// inotify does not report. Unchanged files are not logged.
const DefaultPollInterval = time.Minute

// DefaultDebounce is how long Watch waits after a change event before it
// reloads, so that a certificate and key replaced one after the other are
// read together.
const DefaultDebounce = 100 * time.Millisecond

// Options name the PEM files that make up an identity.
type Options struct {
	// CAFile is the CA bundle: one or more PEM certificates. Required.
	CAFile string
	// CertFile is the leaf certificate, optionally followed by
	// intermediates. Required.
	CertFile string
	// KeyFile is the private key of CertFile. Required.
	KeyFile string
	// CRLFile is an optional PEM (or DER) CRL signed by a CA of the bundle.
	// Once configured, a CRL that cannot be read, parsed or verified makes
	// every handshake fail until it is fixed.
	CRLFile string
	// TrustDomain, if set, is the trust domain CertFile must belong to.
	// Peers must always belong to the trust domain of CertFile.
	TrustDomain string
	// Logger receives reload results and refused handshakes. Nil discards.
	Logger *slog.Logger
	// PollInterval overrides DefaultPollInterval for Watch.
	PollInterval time.Duration
	// Debounce overrides DefaultDebounce for Watch.
	Debounce time.Duration
}

// Source holds the current identity material and hands it to handshakes.
// It is safe for concurrent use.
type Source struct {
	opts Options
	log  *slog.Logger
	// refusals bounds the warnings for refused handshakes.
	refusals *refusalLimiter
	mu       sync.Mutex // serializes reloads
	cur      atomic.Pointer[material]
}

// New loads the files named in opts. Any error, including an unusable CRL,
// is returned: a daemon must not start with an identity it cannot use.
func New(opts Options) (*Source, error) {
	switch {
	case opts.CAFile == "":
		return nil, errors.New("identity: CA bundle file is not set")
	case opts.CertFile == "":
		return nil, errors.New("identity: certificate file is not set")
	case opts.KeyFile == "":
		return nil, errors.New("identity: key file is not set")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	s := &Source{opts: opts, log: opts.Logger, refusals: newRefusalLimiter()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	creds, err := loadCredentials(&s.opts)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	m := &material{creds: creds}
	if opts.CRLFile != "" {
		if m.revs, m.crlSum, err = loadCRL(opts.CRLFile, creds.bundle); err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
	}
	s.cur.Store(m)
	s.log.Info("identity loaded", "id", creds.id.String(), "cert", opts.CertFile,
		"not_after", creds.cert.Leaf.NotAfter, "crl", opts.CRLFile)
	return s, nil
}

// ID returns the SPIFFE ID of the current certificate.
func (s *Source) ID() spiffeid.ID { return s.cur.Load().creds.id }

// Role returns the role of the current certificate.
func (s *Source) Role() Role { return s.cur.Load().creds.role }

// Reload reads the files again. New material applies to new handshakes;
// established connections are left alone. If the CA bundle, certificate or
// key cannot be loaded, the previous ones stay in use, the reason is logged
// and returned. If the CRL cannot be loaded, every handshake is refused
// until a later reload succeeds, and the reason is logged and returned.
// Reloading unchanged files logs nothing.
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	next := *old
	var errs []error

	creds, err := loadCredentials(&s.opts)
	switch {
	case err != nil:
		s.log.Error("identity reload failed, keeping the previous certificate",
			"cert", s.opts.CertFile, "id", old.creds.id.String(), "err", err)
		errs = append(errs, err)
	case creds.sum != old.creds.sum:
		next.creds = creds
		s.log.Info("identity reloaded", "id", creds.id.String(), "cert", s.opts.CertFile,
			"serial", fmt.Sprintf("%x", creds.cert.Leaf.SerialNumber), "not_after", creds.cert.Leaf.NotAfter)
	}

	if s.opts.CRLFile != "" {
		revs, sum, err := loadCRL(s.opts.CRLFile, next.creds.bundle)
		switch {
		case err != nil:
			next.revs, next.crlErr, next.crlSum = nil, err, sum
			s.log.Error("CRL unusable, refusing all handshakes until it is fixed",
				"crl", s.opts.CRLFile, "err", err)
			errs = append(errs, err)
		default:
			next.revs, next.crlErr, next.crlSum = revs, nil, sum
			if sum != old.crlSum || old.crlErr != nil {
				s.log.Info("CRL reloaded", "crl", s.opts.CRLFile)
			}
		}
	}
	s.cur.Store(&next)
	return errors.Join(errs...)
}
