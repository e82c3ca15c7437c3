package lifecycle

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Sealer is what unsealing needs of a Vault node.
type Sealer interface {
	SealStatus(ctx context.Context) (vaultnode.Status, error)
	Unseal(ctx context.Context, share []byte) (vaultnode.Status, error)
	ResetUnseal(ctx context.Context) (vaultnode.Status, error)
}

// Initializer is what init needs of a Vault node besides unsealing it.
type Initializer interface {
	Init(ctx context.Context, req vaultnode.InitRequest) (vaultnode.InitResult, error)
}

// Rekeyer is what rekey needs of a Vault node besides its seal status.
type Rekeyer interface {
	RekeyStatus(ctx context.Context) (vaultnode.RekeyStatus, error)
	RekeyInit(ctx context.Context, shares, threshold int) (vaultnode.RekeyStatus, error)
	RekeyUpdate(ctx context.Context, nonce string, share []byte) (vaultnode.RekeyUpdate, error)
	RekeyVerify(ctx context.Context, nonce string, share []byte) (vaultnode.VerifyStatus, error)
	// RekeyCancel cancels the rekey with nonce (Vault refuses any other).
	RekeyCancel(ctx context.Context, nonce string) error
}

// Holder is what the lifecycle needs of one holder's share service;
// *sharerpc.Client has it.
type Holder interface {
	Manifest(ctx context.Context) (sharerpc.Manifest, error)
	Release(ctx context.Context, vaultNode string, generation uint64) ([]sharerpc.Share, error)
	ReleaseForRekey(ctx context.Context, vaultNode string, generation uint64, nonce string) ([]sharerpc.Share, error)
	Stage(ctx context.Context, req sharerpc.StageRequest) error
	Commit(ctx context.Context, generation uint64) error
	Abort(ctx context.Context, generation uint64) error
}

var _ Holder = (*sharerpc.Client)(nil)

// HolderRef is one configured holder, named by its SPIFFE ID.
type HolderRef struct {
	ID     string
	Holder Holder
}

// Node is a named Vault node. Vault must be a Sealer; init needs an
// Initializer and rekey a Rekeyer as well (*vaultnode.Node is all three).
type Node struct {
	Name  string
	Vault Sealer
}

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
