package sharerpc

import "github.com/keyshare/keyshare/pkg/shares"

// ManifestFromShares converts a pkg/shares manifest to the service's form.
func ManifestFromShares(m shares.Manifest) Manifest {
	out := Manifest{Generation: m.Generation, Threshold: m.Threshold, Total: len(m.Digests)}
	for _, i := range m.Indices() {
		out.Digests = append(out.Digests, Digest{Index: i, SHA256: m.Digests[i]})
	}
	return out
}

// Shares converts the manifest to the pkg/shares form, which verifies shares.
func (m Manifest) Shares() shares.Manifest {
	out := shares.Manifest{Generation: m.Generation, Threshold: m.Threshold, Digests: make(map[uint8]shares.Digest, len(m.Digests))}
	for _, d := range m.Digests {
		out.Digests[d.Index] = d.SHA256
	}
	return out
}
