package lifecycle

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Initializer is what init needs of a Vault node besides unsealing it.
type Initializer interface {
	unseal.VaultNode
	Init(ctx context.Context, req vaultnode.InitRequest) (vaultnode.InitResult, error)
}

// Rekeyer is what rekey needs of a Vault node besides unsealing it.
type Rekeyer interface {
	unseal.VaultNode
	RekeyStatus(ctx context.Context) (vaultnode.RekeyStatus, error)
	RekeyInit(ctx context.Context, shares, threshold int) (vaultnode.RekeyStatus, error)
	RekeyUpdate(ctx context.Context, nonce string, share []byte) (vaultnode.RekeyUpdate, error)
	RekeyVerify(ctx context.Context, nonce string, share []byte) (vaultnode.VerifyStatus, error)
	// RekeyCancel cancels the rekey with nonce (Vault refuses any other).
	RekeyCancel(ctx context.Context, nonce string) error
}

// Holder is what the lifecycle needs of one holder's share service: the
// pipeline's Holder, and the writes of init and rekey; *sharerpc.Client
// has it.
type Holder interface {
	unseal.Holder
	ReleaseForRekey(ctx context.Context, vaultNode string, generation uint64, nonce string) ([]sharerpc.Share, error)
	Stage(ctx context.Context, req sharerpc.StageRequest) error
	Commit(ctx context.Context, generation uint64) error
	Abort(ctx context.Context, generation uint64) error
}

var (
	_ Holder      = (*sharerpc.Client)(nil)
	_ Initializer = (*vaultnode.Node)(nil)
	_ Rekeyer     = (*vaultnode.Node)(nil)
)

// HolderRef is one configured holder, named by its SPIFFE ID.
type HolderRef struct {
	ID     string
	Holder Holder
}

// refs are the holders as the pipeline sees them.
func refs(hs []HolderRef) []unseal.HolderRef {
	out := make([]unseal.HolderRef, len(hs))
	for i, h := range hs {
		out[i] = unseal.HolderRef{ID: h.ID, Holder: h.Holder}
	}
	return out
}

// Node is a named Vault node, to unseal.
type Node struct {
	Name  string
	Vault unseal.VaultNode
}

// InitNode is a Vault node to initialize (*vaultnode.Node is one).
type InitNode struct {
	Name  string
	Vault Initializer
}

// Node is n, to unseal.
func (n InitNode) Node() Node { return Node{Name: n.Name, Vault: n.Vault} }

// RekeyNode is a Vault node to rekey through (*vaultnode.Node is one).
type RekeyNode struct {
	Name  string
	Vault Rekeyer
}

// Node is n, to unseal.
func (n RekeyNode) Node() Node { return Node{Name: n.Name, Vault: n.Vault} }

// Step names a point in init or rekey, for progress and for tests that
// kill the process there (see Options.AfterStep).
type Step string

// Options are common to the lifecycle operations.
type Options struct {
	// Out receives progress lines for the operator (never share bytes).
	Out io.Writer
	// RetryFor is how long holder calls that must succeed on every holder
	// (stage, commit) are retried before giving up. DefaultRetryFor if 0.
	RetryFor time.Duration
	// AfterStep, if set, is called after each step; an error stops the
	// operation there without any clean-up, as a crash would.
	AfterStep func(Step) error
}

func (o *Options) defaults() {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.RetryFor <= 0 {
		o.RetryFor = DefaultRetryFor
	}
}

func (o *Options) printf(format string, args ...any) { fmt.Fprintf(o.Out, format+"\n", args...) }

func (o *Options) after(s Step) error {
	if o.AfterStep == nil {
		return nil
	}
	return o.AfterStep(s)
}
