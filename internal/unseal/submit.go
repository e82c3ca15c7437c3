package unseal

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/shares"
)

// Errors returned by Submit.
var (
	// ErrRejected is returned by Submit when Vault answered the last share
	// of a threshold with an error, which is how it reports that the
	// combined key is wrong: the shares belong to another key.
	ErrRejected = errors.New("vault rejected the combined key")
	// ErrNonceChanged is returned by Submit when the node's unseal nonce
	// changed midway (a reset, a restart): the attempt is void.
	ErrNonceChanged = errors.New("unseal nonce changed")
)

// Submit gives ss, exactly a threshold of one generation, to node one by
// one, and stops as soon as the node reports itself unsealed. After each
// share Vault accepted, progress (if set) is called with the node's status. When the last share leaves it sealed without an error, Submit
// asks the node for its status and returns that: the caller decides.
func Submit(ctx context.Context, node VaultNode, ss []shares.Share, progress func(vaultnode.Status)) (vaultnode.Status, error) {
	var st vaultnode.Status
	nonce := ""
	for i, s := range ss {
		var err error
		st, err = node.Unseal(ctx, s.Value)
		if err != nil {
			if i == len(ss)-1 && !vaultnode.IsUnreachable(err) && ctx.Err() == nil {
				return st, fmt.Errorf("%w: share %d of %d: %w", ErrRejected, i+1, len(ss), err)
			}
			return st, fmt.Errorf("share %d of %d: %w", i+1, len(ss), err)
		}
		if progress != nil {
			progress(st)
		}
		if !st.Sealed {
			return st, nil
		}
		switch {
		case nonce == "":
			nonce = st.Nonce
		case st.Nonce != nonce:
			return st, ErrNonceChanged
		}
	}
	return node.SealStatus(ctx)
}
