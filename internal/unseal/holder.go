package unseal

import (
	"context"

	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Holder is what the pipeline needs of one holder's share service;
// *sharerpc.Client has it.
type Holder interface {
	Manifest(ctx context.Context) (sharerpc.Manifest, error)
	Release(ctx context.Context, vaultNode string, generation uint64) ([]sharerpc.Share, error)
}

var _ Holder = (*sharerpc.Client)(nil)

// HolderRef is one way to reach a holder, named by its SPIFFE ID. A holder
// may appear more than once (its configured address, and an extra address
// gossip reported); it still counts once toward the majority.
type HolderRef struct {
	ID     string
	Holder Holder
}

// VaultNode is what the pipeline needs of a Vault server; *vaultnode.Node
// has it.
type VaultNode interface {
	SealStatus(ctx context.Context) (vaultnode.Status, error)
	Unseal(ctx context.Context, share []byte) (vaultnode.Status, error)
	ResetUnseal(ctx context.Context) (vaultnode.Status, error)
}

var _ VaultNode = (*vaultnode.Node)(nil)

// Which names the generation a collection is for, among the ones every
// holder reports in its Manifest answer.
type Which int

const (
	// Current is the committed generation.
	Current Which = iota
	// Staged is the generation staged by an unfinished init or rekey.
	Staged
	// Previous is the committed one before Current, while holders keep it.
	Previous
)

func (w Which) String() string {
	switch w {
	case Staged:
		return "staged"
	case Previous:
		return "previous"
	}
	return "committed"
}

// Pick returns the manifest of w's generation from a holder's answer, or a
// zero manifest if the holder holds none.
func (w Which) Pick(m sharerpc.Manifest) shares.Manifest {
	var p *sharerpc.Manifest
	switch w {
	case Current:
		p = &m
	case Staged:
		p = m.Staged
	case Previous:
		p = m.Previous
	}
	if p == nil || p.Generation == 0 {
		return shares.Manifest{}
	}
	return p.Shares()
}
