package unsealer_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/rig"
	"github.com/keyshare/keyshare/internal/unsealer"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/internal/version"
)

// TestStatusJSONCarriesVersion: `unsealer status --json` names the build
// that made the report.
func TestStatusJSONCarriesVersion(t *testing.T) {
	r := rig.New(t, addrs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := json.Marshal(unsealer.Status(ctx, []*vaultnode.Node{r.Vault}, r.Holders))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Version version.Info `json:"version"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != version.Get() || got.Version.GoVersion == "" {
		t.Fatalf("status JSON version %+v; want %+v\n%s", got.Version, version.Get(), b)
	}
}
