package holder

import (
	"fmt"
	"os"
	"strconv"

	"github.com/keyshare/keyshare/internal/cliexit"
	"github.com/keyshare/keyshare/pkg/shares"
)

// ParseGeneration parses a generation named on the command line. A bad one
// is a usage error (exit 2).
func ParseGeneration(s string) (uint64, error) {
	gen, err := strconv.ParseUint(s, 10, 64)
	if err != nil || gen == 0 {
		return 0, cliexit.Usagef("generation %q: want a positive number, as 'holder status' shows", s)
	}
	return gen, nil
}

// ReadManifest reads the manifest file `holder import --manifest` names. A
// file that cannot be read is a usage error; one that does not parse says
// which file and why.
func ReadManifest(path string) (shares.Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return shares.Manifest{}, cliexit.Usagef("--manifest: %w", err)
	}
	m, err := shares.ParseManifest(b)
	if err != nil {
		return shares.Manifest{}, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}
