package shares

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// digestDomain separates share digests from every other SHA-256 use.
const digestDomain = "keyshare/share-digest/v1\x00"

// Errors returned by Manifest.Verify and Manifest.Validate.
var (
	// ErrDigestMismatch is returned by Verify when a share's bytes do not
	// match the digest recorded for its index.
	ErrDigestMismatch = errors.New("share does not match the manifest")
	// ErrUnknownIndex is returned by Verify for an index the manifest lacks.
	ErrUnknownIndex = errors.New("share index not in the manifest")
	// ErrBadManifest is returned by Validate for a malformed manifest.
	ErrBadManifest = errors.New("malformed manifest")
)

// Digest is the SHA-256 digest recorded for one share.
type Digest [sha256.Size]byte

// MarshalText encodes a digest as hex.
func (d Digest) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(d[:])), nil }

// UnmarshalText decodes a hex digest.
func (d *Digest) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(d) {
		return fmt.Errorf("%w: digest has %d hex characters, want %d", ErrBadManifest, len(b), 2*len(d))
	}
	_, err := hex.Decode(d[:], b)
	if err != nil {
		return fmt.Errorf("%w: digest: %w", ErrBadManifest, err)
	}
	return nil
}

// ShareDigest is SHA-256(domain || generation || index || share). Binding
// the generation means a share of an old generation never matches a new
// manifest, even at the same index.
func ShareDigest(generation uint64, s Share) Digest {
	h := sha256.New()
	h.Write([]byte(digestDomain))
	var g [8]byte
	binary.BigEndian.PutUint64(g[:], generation)
	h.Write(g[:])
	h.Write([]byte{s.Index})
	h.Write(s.Value)
	var d Digest
	h.Sum(d[:0])
	return d
}

// Manifest describes one generation of shares. It is public: it holds no
// share bytes, only their digests.
type Manifest struct {
	Generation uint64           `json:"generation"`
	Threshold  int              `json:"threshold"`
	Digests    map[uint8]Digest `json:"digests"`
}

// NewManifest builds the manifest for a full set of shares.
func NewManifest(generation uint64, threshold int, all []Share) Manifest {
	m := Manifest{Generation: generation, Threshold: threshold, Digests: make(map[uint8]Digest, len(all))}
	for _, s := range all {
		m.Digests[s.Index] = ShareDigest(generation, s)
	}
	return m
}

// Validate checks the manifest's shape.
func (m Manifest) Validate() error {
	if m.Generation == 0 {
		return fmt.Errorf("%w: generation 0 is reserved for 'none'", ErrBadManifest)
	}
	if m.Threshold < 2 || m.Threshold > len(m.Digests) {
		return fmt.Errorf("%w: threshold %d with %d shares", ErrBadManifest, m.Threshold, len(m.Digests))
	}
	for i := range m.Digests {
		if i == 0 {
			return fmt.Errorf("%w: share index 0 (indices start at 1)", ErrBadManifest)
		}
	}
	return nil
}

// Verify reports whether s is the share the manifest recorded for its index.
func (m Manifest) Verify(s Share) error {
	want, ok := m.Digests[s.Index]
	if !ok {
		return fmt.Errorf("share index %d: %w (generation %d)", s.Index, ErrUnknownIndex, m.Generation)
	}
	got := ShareDigest(m.Generation, s)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return fmt.Errorf("share index %d: %w (generation %d)", s.Index, ErrDigestMismatch, m.Generation)
	}
	return nil
}

// Indices returns the manifest's share indices in ascending order.
func (m Manifest) Indices() []uint8 {
	out := make([]uint8, 0, len(m.Digests))
	for i := range m.Digests {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out
}

// Hash is a digest of the whole manifest in a canonical encoding, used to
// compare the manifests that holders report (gossip metadata, majority).
func (m Manifest) Hash() Digest {
	h := sha256.New()
	h.Write([]byte("keyshare/manifest/v1\x00"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], m.Generation)
	h.Write(b[:])
	binary.BigEndian.PutUint64(b[:], uint64(m.Threshold))
	h.Write(b[:])
	for _, i := range m.Indices() {
		d := m.Digests[i]
		h.Write([]byte{i})
		h.Write(d[:])
	}
	var out Digest
	h.Sum(out[:0])
	return out
}

// Equal reports whether two manifests are the same.
func (m Manifest) Equal(o Manifest) bool { return m.Hash() == o.Hash() }

// ParseManifest decodes a JSON manifest and validates its shape.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}
