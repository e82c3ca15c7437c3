package sharerpc

import (
	"context"
	"net/netip"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Peer is the verified caller of a request.
type Peer struct {
	// ID is the SPIFFE ID of the peer's verified certificate.
	ID spiffeid.ID
	// Role is the role in ID: holder, unsealer or operator.
	Role string
	// Addr is the peer's source address and port.
	Addr netip.AddrPort
}

// Handler serves the share service. The Server calls it only for peers that
// passed the TLS handshake, with inputs already checked (see the types'
// doc). A refusal is a *policy.Denial; any other error is reported to the
// peer as an internal error and logged, so it must not contain share bytes.
type Handler interface {
	// Release returns the shares for unsealing req.VaultNode. The Server
	// zeroes the returned share values once the response is written, so
	// return slices no one else uses (a bundle opened for this release).
	Release(ctx context.Context, p Peer, req ReleaseRequest) ([]Share, error)
	// Manifest returns the manifest of the current generation, with the
	// staged and previous ones the holder holds.
	Manifest(ctx context.Context, p Peer) (Manifest, error)
	// Stage stores a new generation without making it current. The
	// Handler owns req's slices.
	Stage(ctx context.Context, p Peer, req StageRequest) error
	// Commit makes the staged generation current.
	Commit(ctx context.Context, p Peer, generation uint64) error
	// Abort drops the staged generation.
	Abort(ctx context.Context, p Peer, generation uint64) error
}

// MaxShareBytes bounds the length of one share value. A Vault share of a
// 32-byte key is 33 bytes.
const MaxShareBytes = 1024

// MaxVaultNodeBytes bounds the length of a Vault node name.
const MaxVaultNodeBytes = 256

// MaxRekeyNonceBytes bounds the length of a rekey nonce (Vault's are UUIDs).
const MaxRekeyNonceBytes = 128

// Share is one unseal-key share. Value is secret: never log or print it.
type Share struct {
	// Index is the share's index, 1 to 255.
	Index uint8
	Value []byte
}

// Digest is the manifest entry of one share.
type Digest struct {
	Index uint8
	// SHA256 is SHA-256(domain || generation || index || share).
	SHA256 [32]byte
}

// Manifest describes one generation of shares. It holds no secret.
type Manifest struct {
	Generation uint64
	// Threshold is how many shares unseal; 1 <= Threshold <= Total.
	Threshold int
	// Total is how many shares exist; at most 255.
	Total int
	// Digests has one entry per share, Total in all, indices unique.
	Digests []Digest
	// HolderID is the SPIFFE ID of the holder that answers Manifest.
	// Stage does not require it.
	HolderID string
	// Staged and Previous are what a Manifest answer reports besides the
	// current generation: the generation staged by an unfinished init or
	// rekey, and the committed one before the current, while the holder
	// keeps it. Nil when there is none (and always nil inside a Stage).
	Staged, Previous *Manifest
	// Proven is the newest generation the holder has seen unseal a Vault
	// node; 0 if none. Only in a Manifest answer.
	Proven uint64
}

// ReleaseRequest asks for the shares to unseal one Vault node. VaultNode is
// non-empty, at most MaxVaultNodeBytes and free of control characters.
type ReleaseRequest struct {
	VaultNode  string
	Generation uint64
	// RekeyNonce, when set, asks for the shares to feed Vault's rekey of
	// VaultNode with this nonce rather than an unseal. At most
	// MaxRekeyNonceBytes, free of control characters.
	RekeyNonce string
}

// StageRequest carries a new generation: the holder's shares (at least one,
// indices unique, each listed in the manifest) and the whole manifest, whose
// generation equals Generation.
type StageRequest struct {
	Generation uint64
	Shares     []Share
	Manifest   Manifest
	// RekeyNonce names the Vault rekey the generation comes from, for a
	// holder that already holds a committed generation: it accepts the
	// stage only while its own check of a Vault node shows that rekey in
	// progress. Empty for a first init. At most MaxRekeyNonceBytes, free
	// of control characters.
	RekeyNonce string
}
