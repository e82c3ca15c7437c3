package kmsplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kmsservice "k8s.io/kms/pkg/service"

	"github.com/keyshare/keyshare/internal/transit"
)

// Vault is what the plugin needs from Vault's transit engine.
type Vault interface {
	ReadKey(ctx context.Context, mount, name string) (transit.Key, error)
	Encrypt(ctx context.Context, mount, name string, plaintext, ad []byte, version int) (string, int, error)
	Decrypt(ctx context.Context, mount, name, ciphertext string, ad []byte) ([]byte, error)
}

// Service is the KMS v2 service: Encrypt and Decrypt go to Vault transit,
// Status answers from the cache the Prober keeps.
type Service struct {
	vault      Vault
	mount, key string
	log        *slog.Logger
	m          *Metrics

	state atomic.Pointer[State]
	now   func() time.Time
	// maxAge is how old the last good round trip may be for "ok".
	maxAge time.Duration

	mu     sync.Mutex
	keyIDs map[int]string // version -> key_id, from the last key read
}

var _ kmsservice.Service = (*Service)(nil)

// State is the cached outcome of the last round trip through Vault.
type State struct {
	// OK is true when the last check succeeded, at Checked.
	OK bool
	// Reason says why not, in words an operator can act on.
	Reason string
	// KeyID and Version are the transit key's latest version as last seen
	// (kept across failures).
	KeyID   string
	Version int
	// LastOK is when a round trip last succeeded; Checked when it was last
	// tried.
	LastOK, Checked time.Time
}

// NewService makes the service. Status answers "not checked yet" until the
// first probe.
func NewService(v Vault, mount, key string, maxAge time.Duration, log *slog.Logger, m *Metrics) *Service {
	s := &Service{vault: v, mount: mount, key: key, log: log, m: m, maxAge: maxAge, now: time.Now, keyIDs: map[int]string{}}
	s.state.Store(&State{Reason: "vault not checked yet"})
	return s
}

// Current returns the cached state.
func (s *Service) Current() State { return *s.state.Load() }

// Healthy reports whether Status answers ok now, and the reason if not.
func (s *Service) Healthy() (bool, string) {
	st := s.state.Load()
	if !st.OK {
		return false, st.Reason
	}
	if age := s.now().Sub(st.LastOK); age > s.maxAge {
		return false, fmt.Sprintf("no successful vault round trip for %s", age.Round(time.Second))
	}
	return true, ""
}

// Status answers from the cache: it never waits for Vault.
func (s *Service) Status(context.Context) (*kmsservice.StatusResponse, error) {
	st := s.state.Load()
	ok, reason := s.Healthy()
	h := "ok"
	if !ok {
		h = reason
	}
	s.m.Requests.WithLabelValues("status", boolResult(ok)).Inc()
	return &kmsservice.StatusResponse{Version: "v2", Healthz: h, KeyID: st.KeyID}, nil
}

// Encrypt wraps a seed with the key version Status last reported, so the
// key_id it returns is always the one Status gave for that version.
func (s *Service) Encrypt(ctx context.Context, uid string, data []byte) (*kmsservice.EncryptResponse, error) {
	start := s.now()
	st := s.state.Load()
	if st.Version == 0 {
		s.done("encrypt", start, errNoKeyYet)
		return nil, fmt.Errorf("encrypt (uid %s): %w: %s", uid, errNoKeyYet, st.Reason)
	}
	ct, v, err := s.vault.Encrypt(ctx, s.mount, s.key, data, associatedData, st.Version)
	if err != nil {
		s.done("encrypt", start, err)
		return nil, fmt.Errorf("encrypt (uid %s) with transit key %s/%s v%d: %w", uid, s.mount, s.key, st.Version, err)
	}
	id, err := s.keyIDFor(ctx, v)
	if err != nil {
		s.done("encrypt", start, err)
		return nil, fmt.Errorf("encrypt (uid %s): %w", uid, err)
	}
	s.done("encrypt", start, nil)
	return &kmsservice.EncryptResponse{Ciphertext: []byte(ct), KeyID: id}, nil
}

// Decrypt unwraps a seed. The ciphertext names its key version; transit
// refuses it if it was not made by this key for this use.
func (s *Service) Decrypt(ctx context.Context, uid string, req *kmsservice.DecryptRequest) ([]byte, error) {
	start := s.now()
	ct := string(req.Ciphertext)
	if _, err := transit.CiphertextVersion(ct); err != nil {
		err = fmt.Errorf("decrypt (uid %s, key_id %q): not a vault transit ciphertext: %w", uid, req.KeyID, err)
		s.done("decrypt", start, err)
		return nil, err
	}
	pt, err := s.vault.Decrypt(ctx, s.mount, s.key, ct, associatedData)
	s.done("decrypt", start, err)
	if err != nil {
		return nil, fmt.Errorf("decrypt (uid %s, key_id %q) with transit key %s/%s: %w", uid, req.KeyID, s.mount, s.key, err)
	}
	return pt, nil
}

var errNoKeyYet = errors.New("no transit key version known yet")

func (s *Service) done(op string, start time.Time, err error) {
	s.m.Latency.WithLabelValues(op).Observe(s.now().Sub(start).Seconds())
	if err == nil {
		s.m.Requests.WithLabelValues(op, "ok").Inc()
		return
	}
	label := "error"
	if k := transitKind(err); k != "" {
		label = k
		s.m.VaultErrors.WithLabelValues(k).Inc()
	}
	s.m.Requests.WithLabelValues(op, label).Inc()
	s.log.Warn("kms call failed", "op", op, "err", err)
}

func boolResult(ok bool) string {
	if ok {
		return "ok"
	}
	return "not_ok"
}

// keyIDFor returns the key_id of version v, reading the key again if v is
// newer than the last read (a rotation since).
func (s *Service) keyIDFor(ctx context.Context, v int) (string, error) {
	s.mu.Lock()
	id, ok := s.keyIDs[v]
	s.mu.Unlock()
	if ok {
		return id, nil
	}
	k, err := s.vault.ReadKey(ctx, s.mount, s.key)
	if err != nil {
		return "", fmt.Errorf("read transit key %s/%s for the key_id of v%d: %w", s.mount, s.key, v, err)
	}
	s.learn(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.keyIDs[v]; ok {
		return id, nil
	}
	return "", fmt.Errorf("transit key %s/%s has no version %d", s.mount, s.key, v)
}

// learn records the key_id of every version of k. A version whose creation
// time changed (the key was deleted and made again) gets its new key_id.
func (s *Service) learn(k transit.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make(map[int]string, len(k.Created))
	for v, t := range k.Created {
		ids[v] = KeyID(s.mount, s.key, v, t)
	}
	s.keyIDs = ids
	s.m.KeyVersion.Set(float64(k.LatestVersion))
}

// Reason turns a failed Vault call into what the operator should read.
func Reason(err error, host, mount, key string) string {
	switch transit.KindOf(err) {
	case transit.KindSealed:
		return "vault is sealed"
	case transit.KindUnreachable:
		return "no vault node reachable"
	case transit.KindDenied:
		return "token revoked or not allowed from " + host
	case transit.KindNotFound:
		return fmt.Sprintf("transit key missing: %s/keys/%s (run kmsplugin vault setup)", mount, key)
	}
	msg := err.Error()
	if i := strings.Index(msg, "\n"); i >= 0 {
		msg = msg[:i]
	}
	return "vault error: " + msg
}

func (s *Service) countVaultError(err error) {
	if k := transitKind(err); k != "" {
		s.m.VaultErrors.WithLabelValues(k).Inc()
	}
}

func transitKind(err error) string {
	if k := transit.KindOf(err); k != 0 {
		return k.String()
	}
	return ""
}
