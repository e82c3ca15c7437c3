package harness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/api"
)

// pollInterval is how often the Wait helpers ask a node. A refused
// connection on loopback costs next to nothing, and a short interval keeps
// the measured start and unseal times close to the truth.
const pollInterval = 20 * time.Millisecond

// attemptTimeout bounds each single poll request.
const attemptTimeout = 2 * time.Second

// Start starts the node's process with its existing config and data.
func (n *VaultNode) Start() error { return n.Process.Start() }

// Stop stops the node gracefully (SIGTERM, then SIGKILL after a bound).
func (n *VaultNode) Stop() error { return n.Process.Stop() }

// Kill kills the node with SIGKILL, like kill -9 or a power cut.
func (n *VaultNode) Kill() error { return n.Process.Kill() }

// Restart stops the node (if running) and starts it again. It comes back
// sealed.
func (n *VaultNode) Restart() error { return n.Process.Restart() }

// Client returns a new API client for this node. It trusts only the
// cluster's CA, does no retries of its own and carries no token; the
// caller's VAULT_* environment is ignored. Clients of one node share their
// connections, so polling does not pile up idle TLS connections.
func (n *VaultNode) Client() (*api.Client, error) {
	n.clientMu.Lock()
	defer n.clientMu.Unlock()
	if n.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: n.cluster.CA.Pool(), MinVersion: tls.VersionTLS12}
		tr.Proxy = nil
		tr.IdleConnTimeout = 10 * time.Second
		cl, err := api.NewClient(&api.Config{
			Address:    n.APIAddr(),
			HttpClient: &http.Client{Transport: tr},
			MaxRetries: 0,
			Timeout:    60 * time.Second,
		})
		if err != nil {
			return nil, fmt.Errorf("failed to make api client for %s: %w", n, err)
		}
		cl.ClearToken()
		cl.ClearNamespace()
		n.client = cl
	}
	cl, err := n.client.Clone()
	if err != nil {
		return nil, fmt.Errorf("failed to clone api client for %s: %w", n, err)
	}
	// Clone reads VAULT_TOKEN and VAULT_NAMESPACE again; drop them.
	cl.ClearToken()
	cl.ClearNamespace()
	return cl, nil
}

// resetClient drops the cached client, after the node's ports changed.
func (n *VaultNode) resetClient() {
	n.clientMu.Lock()
	defer n.clientMu.Unlock()
	if n.client != nil {
		n.client.CloneConfig().HttpClient.CloseIdleConnections()
	}
	n.client = nil
}

// SealStatus asks the node for sys/seal-status once.
func (n *VaultNode) SealStatus(ctx context.Context) (*api.SealStatusResponse, error) {
	cl, err := n.Client()
	if err != nil {
		return nil, err
	}
	st, err := cl.Sys().SealStatusWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to get seal status of %s: %w", n, err)
	}
	return st, nil
}

// Health asks the node for sys/health once. The status code Vault would
// return is folded into the fields: Active reports the 200 case.
func (n *VaultNode) Health(ctx context.Context) (*api.HealthResponse, error) {
	cl, err := n.Client()
	if err != nil {
		return nil, err
	}
	h, err := cl.Sys().HealthWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to get health of %s: %w", n, err)
	}
	return h, nil
}

// Active reports whether h is what sys/health returns with code 200: the
// node is initialized, unsealed and the active node.
func Active(h *api.HealthResponse) bool {
	return h != nil && h.Initialized && !h.Sealed && !h.Standby
}

// Leader asks the node for sys/leader once.
func (n *VaultNode) Leader(ctx context.Context) (*api.LeaderResponse, error) {
	cl, err := n.Client()
	if err != nil {
		return nil, err
	}
	l, err := cl.Sys().LeaderWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to get leader from %s: %w", n, err)
	}
	return l, nil
}

// WaitAPI polls sys/seal-status until the node answers, and returns early if
// the node's process exits.
func (n *VaultNode) WaitAPI(ctx context.Context) error {
	_, err := n.waitStatus(ctx, "answering its API", func(*api.SealStatusResponse) bool { return true })
	return err
}

// WaitUnsealed polls sys/seal-status until the node reports sealed: false.
func (n *VaultNode) WaitUnsealed(ctx context.Context) error {
	_, err := n.waitStatus(ctx, "unsealed", func(st *api.SealStatusResponse) bool { return !st.Sealed })
	return err
}

// WaitInitialized polls sys/seal-status until the node reports initialized.
// A node that has not joined the raft cluster yet says so only once it has
// fetched a join challenge from an active leader (retry_join).
func (n *VaultNode) WaitInitialized(ctx context.Context) (*api.SealStatusResponse, error) {
	return n.waitStatus(ctx, "initialized", func(st *api.SealStatusResponse) bool { return st.Initialized })
}

// waitStatus polls seal-status until ok accepts an answer.
func (n *VaultNode) waitStatus(ctx context.Context, what string, ok func(*api.SealStatusResponse) bool) (*api.SealStatusResponse, error) {
	var st *api.SealStatusResponse
	err := PollProcess(ctx, n.Process, pollInterval, n.String()+" to be "+what, func() (bool, error) {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		var err error
		if st, err = n.SealStatus(actx); err != nil {
			return false, err
		}
		return ok(st), fmt.Errorf("%s answered sealed=%t initialized=%t progress=%d/%d",
			n, st.Sealed, st.Initialized, st.Progress, st.T)
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// ErrNotEnoughKeys is returned by Unseal when every key was submitted and
// the node still needs more.
var ErrNotEnoughKeys = errors.New("not enough unseal keys")

// Unseal submits keys (hex or base64) one at a time until the node reports
// unsealed, then waits for sealed: false. A node that is joining the raft
// cluster through retry_join is first waited for until it reports
// initialized; its last key blocks until the join is done, and it unseals a
// moment later in the background. Keys never appear in errors or logs.
func (n *VaultNode) Unseal(ctx context.Context, keys []string) error {
	st, err := n.WaitInitialized(ctx)
	if err != nil {
		return err
	}
	if !st.Sealed {
		return nil
	}
	cl, err := n.Client()
	if err != nil {
		return err
	}
	for i, key := range keys {
		st, err = cl.Sys().UnsealWithContext(ctx, key)
		if err != nil {
			// The error text comes from Vault and never echoes the key.
			return fmt.Errorf("failed to submit unseal key %d of %d to %s: %w", i+1, len(keys), n, err)
		}
		if !st.Sealed || (st.Progress == 0 && i+1 >= st.T) {
			return n.WaitUnsealed(ctx)
		}
	}
	return fmt.Errorf("%s is still sealed after %d keys (progress %d/%d): %w", n, len(keys), st.Progress, st.T, ErrNotEnoughKeys)
}
