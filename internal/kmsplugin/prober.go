package kmsplugin

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"time"

	"github.com/keyshare/keyshare/internal/transit"
)

// Prober keeps the Service's Status cache fresh: a real round trip through
// Vault (read the key, encrypt a random probe with its latest version,
// decrypt it, compare) every Interval while healthy and every Retry while
// not, and at once when Kick is called (a new token file).
type Prober struct {
	svc             *Service
	host            string
	interval, retry time.Duration
	timeout         time.Duration
	// tokenProblem, if set, names a token file problem that explains a
	// denial better than Vault can.
	tokenProblem func() string
	// onDenied, if set, is called when Vault refuses the token.
	onDenied func()
	// preferActive, if set, steers the Vault client to the active node
	// before each check (transit.Client.PreferActive); active is the node
	// it last found, "" if none.
	preferActive func(context.Context) (string, error)
	activeMu     sync.Mutex
	active       string
	kick         chan struct{}
}

// NewProber makes a prober for svc. host names this host in reasons.
func NewProber(svc *Service, host string, interval, retry, timeout time.Duration, tokenProblem func() string) *Prober {
	return &Prober{svc: svc, host: host, interval: interval, retry: retry, timeout: timeout,
		tokenProblem: tokenProblem, kick: make(chan struct{}, 1)}
}

// Kick asks for a check now.
func (p *Prober) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run checks until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	for {
		st := p.Check(ctx)
		wait := p.interval
		if !st.OK {
			wait = p.retry
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-p.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// Check does one round trip and updates the cache; it logs when health
// changes, with the reason.
func (p *Prober) Check(ctx context.Context) State {
	s := p.svc
	p.steer(ctx)
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	prev := s.state.Load()
	next := *prev
	next.Checked = s.now()
	err := p.roundTrip(ctx, &next)
	if err != nil {
		next.OK = false
		next.Reason = Reason(err, p.host, s.mount, s.key)
		if transit.KindOf(err) == transit.KindDenied && p.onDenied != nil {
			p.onDenied()
		}
		if p.tokenProblem != nil {
			if tp := p.tokenProblem(); tp != "" {
				next.Reason = tp
			}
		}
	} else {
		next.OK, next.Reason, next.LastOK = true, "", next.Checked
	}
	s.state.Store(&next)
	if next.OK {
		s.m.Healthy.Set(1)
	} else {
		s.m.Healthy.Set(0)
	}
	switch {
	case next.OK && !prev.OK:
		s.log.Info("vault round trip ok", "key_id", next.KeyID, "key_version", next.Version)
	case next.OK && prev.KeyID != next.KeyID:
		s.log.Info("transit key rotated", "key_id", next.KeyID, "key_version", next.Version, "previous_key_id", prev.KeyID)
	case !next.OK && (prev.OK || prev.Reason != next.Reason):
		s.log.Error("vault round trip failed", "reason", next.Reason, "err", err)
	}
	return next
}

// steer points the Vault client at the active node, so that calls do not
// pay a standby's forwarding, and says when that node changes or none is
// found. It has its own deadline: a node that hangs costs the round trip
// nothing.
func (p *Prober) steer(ctx context.Context) {
	if p.preferActive == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	addr, err := p.preferActive(ctx)
	p.activeMu.Lock()
	prev := p.active
	p.active = addr
	p.activeMu.Unlock()
	if err != nil {
		p.svc.m.ActiveNode.Set(0)
	} else {
		p.svc.m.ActiveNode.Set(1)
	}
	switch {
	case err != nil && prev != "":
		p.svc.log.Warn("no active vault node found; calls go to any node that answers", "err", err)
	case err == nil && addr != prev:
		p.svc.log.Info("calls go to the active vault node", "node", addr)
	}
}

var errProbeMismatch = errors.New("transit round trip returned a different plaintext")

func (p *Prober) roundTrip(ctx context.Context, st *State) error {
	s := p.svc
	k, err := s.vault.ReadKey(ctx, s.mount, s.key)
	if err != nil {
		s.countVaultError(err)
		return err
	}
	s.learn(k)
	st.Version = k.LatestVersion
	st.KeyID = KeyID(s.mount, s.key, k.LatestVersion, k.Created[k.LatestVersion])
	probe := make([]byte, 32)
	_, _ = rand.Read(probe)
	ct, _, err := s.vault.Encrypt(ctx, s.mount, s.key, probe, associatedData, k.LatestVersion)
	if err != nil {
		s.countVaultError(err)
		return err
	}
	got, err := s.vault.Decrypt(ctx, s.mount, s.key, ct, associatedData)
	if err != nil {
		s.countVaultError(err)
		return err
	}
	if !bytes.Equal(got, probe) {
		return errProbeMismatch
	}
	return nil
}
