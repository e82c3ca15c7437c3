package sharerpc

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/keyshare/keyshare/pkg/transport/sharerpc/sharepb"
)

// The conversions below check every input that crosses the wire. Their
// errors name indices and lengths, never share bytes.

func releaseFromPB(m *sharepb.ReleaseRequest) (ReleaseRequest, error) {
	n := m.GetVaultNode()
	if n == "" {
		return ReleaseRequest{}, errors.New("vault_node is empty")
	}
	if err := checkText("vault_node", n, MaxVaultNodeBytes); err != nil {
		return ReleaseRequest{}, err
	}
	if err := checkText("rekey_nonce", m.GetRekeyNonce(), MaxRekeyNonceBytes); err != nil {
		return ReleaseRequest{}, err
	}
	return ReleaseRequest{VaultNode: n, Generation: m.GetGeneration(), RekeyNonce: m.GetRekeyNonce()}, nil
}

// checkText bounds a string field and refuses invalid UTF-8 and control
// characters, so that it is safe to log and to compare.
func checkText(field, v string, limit int) error {
	switch {
	case len(v) > limit:
		return fmt.Errorf("%s is %d bytes, more than %d", field, len(v), limit)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not UTF-8", field)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s holds a control character", field)
		}
	}
	return nil
}

// sharesFromPB copies the shares out of ms, so that the caller may zero the
// message, and checks their indices and lengths.
func sharesFromPB(ms []*sharepb.Share) ([]Share, error) {
	out := make([]Share, 0, len(ms))
	seen := map[uint32]bool{}
	for i, m := range ms {
		idx, n := m.GetIndex(), len(m.GetValue())
		switch {
		case idx < 1 || idx > 255:
			return nil, fmt.Errorf("share %d has index %d, want 1 to 255", i, idx)
		case seen[idx]:
			return nil, fmt.Errorf("share index %d appears twice", idx)
		case n == 0 || n > MaxShareBytes:
			return nil, fmt.Errorf("share %d is %d bytes, want 1 to %d", idx, n, MaxShareBytes)
		}
		seen[idx] = true
		out = append(out, Share{Index: uint8(idx), Value: append([]byte(nil), m.GetValue()...)})
	}
	return out, nil
}

func sharesToPB(ss []Share) []*sharepb.Share {
	out := make([]*sharepb.Share, len(ss))
	for i, s := range ss {
		out[i] = &sharepb.Share{Index: uint32(s.Index), Value: s.Value}
	}
	return out
}

// zeroShares overwrites the share values held by a message.
func zeroShares(ms []*sharepb.Share) {
	for _, m := range ms {
		clear(m.GetValue())
	}
}

func manifestFromPB(m *sharepb.Manifest) (Manifest, error) {
	if m == nil {
		return Manifest{}, errors.New("manifest is missing")
	}
	t, total := m.GetThreshold(), m.GetTotalShares()
	if m.GetGeneration() == 0 {
		// A holder that holds no generation yet answers with an empty
		// manifest: reachable, holding nothing.
		if total != 0 || t != 0 || len(m.GetDigests()) != 0 {
			return Manifest{}, errors.New("manifest of generation 0 must be empty")
		}
		return Manifest{HolderID: m.GetHolderId()}, nil
	}
	switch {
	case total < 1 || total > 255:
		return Manifest{}, fmt.Errorf("manifest total_shares is %d, want 1 to 255", total)
	case t < 1 || t > total:
		return Manifest{}, fmt.Errorf("manifest threshold is %d, want 1 to total_shares (%d)", t, total)
	case len(m.GetDigests()) != int(total):
		return Manifest{}, fmt.Errorf("manifest lists %d digests for %d shares", len(m.GetDigests()), total)
	}
	out := Manifest{Generation: m.GetGeneration(), Threshold: int(t), Total: int(total), HolderID: m.GetHolderId()}
	seen := map[uint32]bool{}
	for _, d := range m.GetDigests() {
		idx := d.GetIndex()
		switch {
		case idx < 1 || idx > 255:
			return Manifest{}, fmt.Errorf("manifest digest has index %d, want 1 to 255", idx)
		case seen[idx]:
			return Manifest{}, fmt.Errorf("manifest digest index %d appears twice", idx)
		case len(d.GetSha256()) != 32:
			return Manifest{}, fmt.Errorf("manifest digest %d is %d bytes, want 32", idx, len(d.GetSha256()))
		}
		seen[idx] = true
		e := Digest{Index: uint8(idx)}
		copy(e.SHA256[:], d.GetSha256())
		out.Digests = append(out.Digests, e)
	}
	return out, nil
}

func manifestToPB(m Manifest) *sharepb.Manifest {
	out := &sharepb.Manifest{
		Generation:  m.Generation,
		Threshold:   uint32(m.Threshold),
		TotalShares: uint32(m.Total),
		HolderId:    m.HolderID,
	}
	for _, d := range m.Digests {
		out.Digests = append(out.Digests, &sharepb.ShareDigest{Index: uint32(d.Index), Sha256: d.SHA256[:]})
	}
	return out
}

func stageFromPB(m *sharepb.StageRequest) (StageRequest, error) {
	man, err := manifestFromPB(m.GetManifest())
	if err != nil {
		return StageRequest{}, err
	}
	if err := checkText("rekey_nonce", m.GetRekeyNonce(), MaxRekeyNonceBytes); err != nil {
		return StageRequest{}, err
	}
	if man.Generation != m.GetGeneration() {
		return StageRequest{}, fmt.Errorf("manifest is for generation %d, request for %d", man.Generation, m.GetGeneration())
	}
	if len(m.GetShares()) == 0 {
		return StageRequest{}, errors.New("no shares to stage")
	}
	shares, err := sharesFromPB(m.GetShares())
	if err != nil {
		return StageRequest{}, err
	}
	listed := map[uint8]bool{}
	for _, d := range man.Digests {
		listed[d.Index] = true
	}
	for _, s := range shares {
		if !listed[s.Index] {
			clearShares(shares)
			return StageRequest{}, fmt.Errorf("share %d is not in the manifest", s.Index)
		}
	}
	return StageRequest{Generation: m.GetGeneration(), Shares: shares, Manifest: man, RekeyNonce: m.GetRekeyNonce()}, nil
}

func stageToPB(r StageRequest) *sharepb.StageRequest {
	return &sharepb.StageRequest{Generation: r.Generation, Shares: sharesToPB(r.Shares), Manifest: manifestToPB(r.Manifest), RekeyNonce: r.RekeyNonce}
}

// manifestAnswerFromPB reads a Manifest answer: the current manifest and,
// when present, the staged and previous ones.
func manifestAnswerFromPB(r *sharepb.ManifestResponse) (Manifest, error) {
	m, err := manifestFromPB(r.GetManifest())
	if err != nil {
		return Manifest{}, err
	}
	for _, x := range []struct {
		name string
		pb   *sharepb.Manifest
		out  **Manifest
	}{{"staged", r.GetStaged(), &m.Staged}, {"previous", r.GetPrevious(), &m.Previous}} {
		if x.pb == nil {
			continue
		}
		o, err := manifestFromPB(x.pb)
		if err != nil {
			return Manifest{}, fmt.Errorf("%s manifest: %w", x.name, err)
		}
		if o.Generation == 0 {
			continue
		}
		o.HolderID = m.HolderID
		*x.out = &o
	}
	m.Proven = r.GetProvenGeneration()
	return m, nil
}

// manifestAnswerToPB writes a Manifest answer.
func manifestAnswerToPB(m Manifest) *sharepb.ManifestResponse {
	out := &sharepb.ManifestResponse{Manifest: manifestToPB(m), ProvenGeneration: m.Proven}
	if m.Staged != nil {
		out.Staged = manifestToPB(*m.Staged)
	}
	if m.Previous != nil {
		out.Previous = manifestToPB(*m.Previous)
	}
	return out
}

// clearShares overwrites share values.
func clearShares(ss []Share) {
	for _, s := range ss {
		clear(s.Value)
	}
}
