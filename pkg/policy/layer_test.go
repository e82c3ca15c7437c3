package policy

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsNoTransport: the policy engine uses the identity model from
// pkg/transport/identity but speaks no gRPC and no memberlist (DESIGN.md,
// Layout). identity keeps gRPC out for this reason: sharerpc reads the
// peer's TLS state itself.
func TestImportsNoTransport(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list not available: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"google.golang.org/grpc", "github.com/hashicorp/memberlist", "keyshare/pkg/transport/sharerpc", "keyshare/pkg/transport/gossip"} {
			if strings.Contains(dep, banned) {
				t.Errorf("pkg/policy depends on %s", dep)
			}
		}
	}
}
