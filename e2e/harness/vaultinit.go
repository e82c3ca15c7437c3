package harness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"
)

// InitResult is what sys/init returns: the unseal key shares and the root
// token. They are secrets. The harness hands them to its caller and never
// prints them; String, GoString and LogValue redact them, so a stray %v or
// slog attribute does not leak them either.
type InitResult struct {
	// KeysHex and KeysB64 are the same shares in the two encodings Vault
	// accepts.
	KeysHex []string
	KeysB64 []string
	// RootToken is the initial root token.
	RootToken string
	// Shares and Threshold echo the request.
	Shares, Threshold int
}

// String redacts the secrets.
func (r *InitResult) String() string {
	return fmt.Sprintf("InitResult{%d shares, threshold %d, keys and root token redacted}", r.Shares, r.Threshold)
}

// GoString redacts the secrets from %#v.
func (r *InitResult) GoString() string { return r.String() }

// LogValue redacts the secrets from slog.
func (r *InitResult) LogValue() slog.Value { return slog.StringValue(r.String()) }

// Init initializes the cluster through its first node with a Shamir seal
// of shares and threshold. The nodes stay sealed.
func (c *VaultCluster) Init(ctx context.Context, shares, threshold int) (*InitResult, error) {
	n := c.nodes[0]
	if err := n.WaitAPI(ctx); err != nil {
		return nil, err
	}
	cl, err := n.Client()
	if err != nil {
		return nil, err
	}
	resp, err := cl.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: shares, SecretThreshold: threshold})
	if err != nil {
		return nil, fmt.Errorf("failed to initialize vault through %s: %w", n, err)
	}
	if len(resp.Keys) != shares || len(resp.KeysB64) != shares || resp.RootToken == "" {
		return nil, fmt.Errorf("initializing %s returned %d hex and %d base64 keys, want %d, and a root token",
			n, len(resp.Keys), len(resp.KeysB64), shares)
	}
	c.logf("vault cluster: initialized through %s with %d shares, threshold %d", n.Name, shares, threshold)
	return &InitResult{KeysHex: resp.Keys, KeysB64: resp.KeysB64, RootToken: resp.RootToken,
		Shares: shares, Threshold: threshold}, nil
}

// UnsealAll unseals every running node with keys: the first node alone,
// then the others at once. This order works both for a fresh cluster, where
// the others can join only once the first is active, and after a restart.
func (c *VaultCluster) UnsealAll(ctx context.Context, keys []string) error {
	var running []*VaultNode
	for _, n := range c.nodes {
		if n.Process.Running() {
			running = append(running, n)
		}
	}
	if len(running) == 0 {
		return errors.New("no vault node is running")
	}
	if err := running[0].Unseal(ctx, keys); err != nil {
		return err
	}
	errs := make([]error, len(running))
	var wg sync.WaitGroup
	for i, n := range running[1:] {
		wg.Go(func() { errs[i] = n.Unseal(ctx, keys) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// WaitLeader polls sys/health on every running node until one of them is
// active (the 200 case) and returns it.
func (c *VaultCluster) WaitLeader(ctx context.Context) (*VaultNode, error) {
	var leader *VaultNode
	err := c.pollHealth(ctx, "an active node", func(hs map[*VaultNode]*api.HealthResponse) bool {
		for n, h := range hs {
			if Active(h) {
				leader = n
				return true
			}
		}
		return false
	})
	return leader, err
}

// WaitActive polls sys/health on every running node until exactly one is
// active and all the others are unsealed standbys, and returns the active
// node. Stopped nodes are not waited for.
func (c *VaultCluster) WaitActive(ctx context.Context) (*VaultNode, error) {
	var leader *VaultNode
	err := c.pollHealth(ctx, "one active node and unsealed standbys", func(hs map[*VaultNode]*api.HealthResponse) bool {
		leader = nil
		for n, h := range hs {
			switch {
			case h == nil || !h.Initialized || h.Sealed:
				return false
			case !h.Standby:
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		return leader != nil
	})
	return leader, err
}

// pollHealth asks every running node for sys/health until done accepts
// the answers (nil for a node that did not answer).
func (c *VaultCluster) pollHealth(ctx context.Context, what string, done func(map[*VaultNode]*api.HealthResponse) bool) error {
	var last error
	return PollEvery(ctx, pollInterval, what, func() (bool, error) {
		hs := map[*VaultNode]*api.HealthResponse{}
		for _, n := range c.nodes {
			if !n.Process.Running() {
				continue
			}
			actx, cancel := context.WithTimeout(ctx, attemptTimeout)
			h, err := n.Health(actx)
			cancel()
			if err != nil {
				last = err
			}
			hs[n] = h
		}
		if len(hs) > 0 && done(hs) {
			return true, nil
		}
		if last != nil {
			return false, fmt.Errorf("%s (last error: %w)", c.describe(hs), last)
		}
		return false, errors.New(c.describe(hs))
	})
}

// describe summarizes health answers, in node order, for a timeout message.
func (c *VaultCluster) describe(hs map[*VaultNode]*api.HealthResponse) string {
	var parts []string
	for _, n := range c.nodes {
		h, asked := hs[n]
		switch {
		case !asked:
			parts = append(parts, n.Name+": not running")
		case h == nil:
			parts = append(parts, n.Name+": no answer")
		default:
			parts = append(parts, fmt.Sprintf("%s: initialized=%t sealed=%t standby=%t", n.Name, h.Initialized, h.Sealed, h.Standby))
		}
	}
	return strings.Join(parts, ", ")
}

// Bootstrap starts the cluster, initializes it with a Shamir seal of shares
// and threshold, unseals every node and returns once one is active: the
// set-up of a test that needs a working Vault and no keyshare.
func (c *VaultCluster) Bootstrap(ctx context.Context, shares, threshold int) (*InitResult, *VaultNode, error) {
	if err := c.Start(ctx); err != nil {
		return nil, nil, err
	}
	init, err := c.Init(ctx, shares, threshold)
	if err != nil {
		return nil, nil, err
	}
	if err := c.UnsealAll(ctx, init.KeysB64); err != nil {
		return nil, nil, err
	}
	active, err := c.WaitActive(ctx)
	if err != nil {
		return nil, nil, err
	}
	return init, active, nil
}
