package kmsplugin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/keyshare/keyshare/internal/transit"
)

// TokenClient is what the token keeper needs from Vault.
type TokenClient interface {
	SetToken(string)
	LookupSelf(ctx context.Context) (transit.Token, error)
	RenewSelf(ctx context.Context) (time.Duration, error)
}

// maxTokenFile bounds the token file.
const maxTokenFile = 4096

// Tokens keeps the Vault token fresh: it reads it from a file that only its
// owner may read, reads it again whenever the content changes (no
// restart), and renews a renewable token before half its TTL has passed.
// It logs the token's accessor, never the token.
type Tokens struct {
	path    string
	client  TokenClient
	host    string
	check   time.Duration
	timeout time.Duration
	log     *slog.Logger
	m       *Metrics
	// onChange is called after a new token was installed.
	onChange func()
	now      func() time.Time

	mu       sync.Mutex
	token    []byte
	problem  string // why there is no usable token file, or ""
	accessor string
	renew    time.Time // when to renew next; zero: never
	expires  time.Time // zero: unknown or never
	ttl      time.Duration
	// lookupAt is when to ask Vault about the token again after a lookup
	// failed (Vault sealed or down when the token was loaded).
	lookupAt time.Time

	// login, if set, replaces the file: it logs in and returns a token and
	// its accessor (vault.auth cert). source names it in logs.
	login     func(ctx context.Context) ([]byte, string, error)
	source    string
	needLogin bool
	loginAt   time.Time // not before: a refused login is retried every few seconds
}

// loginRetry spaces logins that failed.
const loginRetry = 2 * time.Second

// Invalidate tells the keeper that Vault refused the token: in login mode
// it logs in again at the next check (the file mode re-reads its file
// anyway).
func (t *Tokens) Invalidate() {
	t.mu.Lock()
	if t.login != nil {
		t.needLogin = true
	}
	t.mu.Unlock()
}

// NewTokens makes a keeper for the token in path.
func NewTokens(path string, c TokenClient, host string, check, timeout time.Duration, log *slog.Logger, m *Metrics, onChange func()) *Tokens {
	return &Tokens{path: path, client: c, host: host, check: check, timeout: timeout, log: log, m: m,
		onChange: onChange, now: time.Now}
}

// ReadTokenFile reads a token file, refusing one that group or others may
// read or write, or that is not a regular file. The mode is checked on the
// open descriptor.
func ReadTokenFile(path string) ([]byte, error) {
	f, err := os.Open(path) // symlinks followed: Kubernetes mounts secrets through them
	if err != nil {
		return nil, fmt.Errorf("vault token file %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("vault token file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("vault token file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("vault token file %s: mode %04o lets group or others read it: chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return nil, fmt.Errorf("vault token file %s: %w", path, err)
	}
	if len(b) > maxTokenFile {
		clear(b)
		return nil, fmt.Errorf("vault token file %s: larger than %d bytes: not a token", path, maxTokenFile)
	}
	tok := bytes.TrimSpace(b)
	if len(tok) == 0 || bytes.ContainsAny(tok, " \t\r\n") {
		clear(b)
		return nil, fmt.Errorf("vault token file %s: want one token on one line", path)
	}
	out := bytes.Clone(tok)
	clear(b)
	return out, nil
}

// Problem is why the plugin has no usable token file, or "".
func (t *Tokens) Problem() string { t.mu.Lock(); defer t.mu.Unlock(); return t.problem }

// Accessor is the current token's accessor, once looked up.
func (t *Tokens) Accessor() string { t.mu.Lock(); defer t.mu.Unlock(); return t.accessor }

// Reload reads the file and installs the token if it changed. It reports
// whether it did.
func (t *Tokens) Reload(ctx context.Context) bool {
	if t.login != nil {
		return t.relogin(ctx)
	}
	tok, err := ReadTokenFile(t.path)
	t.mu.Lock()
	if err != nil {
		changed := t.problem != err.Error()
		t.problem = err.Error()
		t.mu.Unlock()
		if changed {
			t.log.Error("cannot use the vault token file", "err", err, "fix", "write the token with kmsplugin token create|rotate")
		}
		return false
	}
	same := bytes.Equal(tok, t.token)
	hadProblem := t.problem != ""
	t.problem = ""
	if same {
		t.mu.Unlock()
		clear(tok)
		if hadProblem {
			t.log.Info("vault token file readable again", "file", t.path)
		}
		return false
	}
	clear(t.token)
	t.token = tok
	t.accessor, t.renew, t.expires, t.ttl = "", time.Time{}, time.Time{}, 0
	t.client.SetToken(string(tok))
	t.mu.Unlock()
	t.m.TokenReloads.Inc()
	t.lookup(ctx, "vault token loaded")
	if t.onChange != nil {
		t.onChange()
	}
	return true
}

// relogin logs in when there is no token yet, or Vault refused it, or it
// is about to expire.
func (t *Tokens) relogin(ctx context.Context) bool {
	now := t.now()
	t.mu.Lock()
	expiring := !t.expires.IsZero() && t.expires.Sub(now) < 2*t.check+t.timeout
	due := (t.token == nil || t.needLogin || expiring) && !now.Before(t.loginAt)
	t.mu.Unlock()
	if !due {
		return false
	}
	lctx, cancel := context.WithTimeout(ctx, t.timeout)
	tok, acc, err := t.login(lctx)
	cancel()
	t.mu.Lock()
	if err != nil {
		changed := t.problem != err.Error()
		t.problem, t.loginAt = err.Error(), now.Add(loginRetry)
		t.mu.Unlock()
		if changed {
			t.log.Error("vault login failed", "source", t.source, "err", err)
		}
		return false
	}
	clear(t.token)
	t.token, t.problem, t.needLogin = tok, "", false
	t.accessor, t.renew, t.expires, t.ttl = acc, time.Time{}, time.Time{}, 0
	t.client.SetToken(string(tok))
	t.mu.Unlock()
	t.m.TokenReloads.Inc()
	t.lookup(ctx, "vault login ok")
	if t.onChange != nil {
		t.onChange()
	}
	return true
}

// lookup asks Vault about the token and schedules its renewal.
func (t *Tokens) lookup(ctx context.Context, msg string) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	info, err := t.client.LookupSelf(ctx)
	now := t.now()
	if err != nil {
		t.mu.Lock()
		t.lookupAt = now.Add(5 * time.Second)
		t.mu.Unlock()
		t.refused(err, "vault token lookup failed")
		return
	}
	t.mu.Lock()
	t.accessor, t.lookupAt = info.Accessor, time.Time{}
	t.schedule(now, info.TTL(), info.Renewable)
	t.mu.Unlock()
	t.log.Info(msg, "file", t.path, "accessor", info.Accessor, "ttl", info.TTL().String(),
		"renewable", info.Renewable, "policies", info.Policies)
	if info.TTL() > 0 && !info.Renewable {
		t.log.Warn("vault token cannot be renewed: replace it before it expires (kmsplugin token rotate)",
			"accessor", info.Accessor, "ttl", info.TTL().String())
	}
}

// schedule sets the next renewal at a third of the TTL (before half), under
// t.mu.
func (t *Tokens) schedule(now time.Time, ttl time.Duration, renewable bool) {
	t.ttl = ttl
	t.expires, t.renew = time.Time{}, time.Time{}
	if ttl <= 0 {
		return
	}
	t.expires = now.Add(ttl)
	if renewable {
		t.renew = now.Add(ttl / 3)
	}
}

// refused logs a Vault refusal of the token in words an operator can act
// on.
func (t *Tokens) refused(err error, msg string) {
	acc := t.Accessor()
	if transit.KindOf(err) == transit.KindDenied {
		t.log.Error(msg+": the vault token is revoked, expired or not allowed from "+t.host,
			"accessor", acc, "file", t.path, "fix", "write a new token into the file (kmsplugin token rotate)", "err", err)
		return
	}
	t.log.Error(msg, "accessor", acc, "err", err)
}

// renewDue renews the token if its time has come.
func (t *Tokens) renewDue(ctx context.Context) {
	t.mu.Lock()
	due := !t.renew.IsZero() && !t.now().Before(t.renew)
	acc, ttl := t.accessor, t.ttl
	t.mu.Unlock()
	if !due {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	newTTL, err := t.client.RenewSelf(rctx)
	now := t.now()
	if err != nil {
		t.m.Renewals.WithLabelValues("failed").Inc()
		t.refused(err, "vault token renewal failed")
		if transit.KindOf(err) == transit.KindDenied {
			t.Invalidate()
		}
		t.mu.Lock()
		// Try again soon, but not in a tight loop.
		retry := min(max(ttl/10, time.Second), 30*time.Second)
		t.renew = now.Add(retry)
		t.mu.Unlock()
		return
	}
	t.m.Renewals.WithLabelValues("ok").Inc()
	t.mu.Lock()
	t.schedule(now, newTTL, true)
	t.mu.Unlock()
	t.log.Info("vault token renewed", "accessor", acc, "ttl", newTTL.String())
}

// Run re-reads the file every check interval, renews when due, and keeps
// the TTL gauge, until ctx ends.
func (t *Tokens) Run(ctx context.Context) {
	tick := time.NewTicker(t.check)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			t.mu.Lock()
			clear(t.token)
			t.mu.Unlock()
			return
		case <-tick.C:
		}
		t.Reload(ctx)
		t.mu.Lock()
		again := !t.lookupAt.IsZero() && !t.now().Before(t.lookupAt)
		t.mu.Unlock()
		if again {
			t.lookup(ctx, "vault token looked up")
		}
		t.renewDue(ctx)
		t.mu.Lock()
		left := time.Duration(0)
		if !t.expires.IsZero() {
			left = max(t.expires.Sub(t.now()), 0)
		}
		t.mu.Unlock()
		t.m.TokenTTL.Set(left.Seconds())
	}
}
