package gossip

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/memberlist"

	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// Meta is the metadata each member gossips about itself. It is public: it
// carries no secrets, only what a coordinator needs to pick whom to call.
// Encoded, it must fit in memberlist.MetaMaxSize (512) bytes.
type Meta struct {
	// Role is the member's role; it must equal the role in its SPIFFE ID.
	Role identity.Role `json:"r,omitempty"`
	// RPCAddr is the host:port of the member's share service.
	RPCAddr string `json:"a,omitempty"`
	// Generation is the share generation the member holds.
	Generation uint64 `json:"g,omitempty"`
	// Shares are the indices of the shares the member holds.
	Shares []uint8 `json:"s,omitempty"`
	// ManifestHash is the hash of the manifest the member holds.
	ManifestHash []byte `json:"m,omitempty"`
	// Version is the member's software version.
	Version string `json:"v,omitempty"`
}

// ErrMetaTooLarge is returned by New, UpdateMeta and EncodeMeta when the
// encoded Meta exceeds memberlist.MetaMaxSize.
var ErrMetaTooLarge = fmt.Errorf("node metadata exceeds %d bytes", memberlist.MetaMaxSize)

// EncodeMeta encodes m compactly and checks it against the size limit.
func EncodeMeta(m Meta) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("failed to encode node metadata: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes encoded; shorten the RPC address, version or share list", ErrMetaTooLarge, len(b))
	}
	return b, nil
}

// DecodeMeta decodes metadata produced by EncodeMeta.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) > memberlist.MetaMaxSize {
		return Meta{}, fmt.Errorf("%w: got %d bytes", ErrMetaTooLarge, len(b))
	}
	if len(b) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("failed to decode node metadata: %w", err)
	}
	return m, nil
}
