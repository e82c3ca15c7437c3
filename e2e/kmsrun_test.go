//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"maps"
	"os"
	"sync"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2"
	kmsservice "k8s.io/kms/pkg/service"

	"github.com/keyshare/keyshare/e2e/topology"
)

// kmsRun is what the two KMS stories (kms_test.go, kube_story_test.go)
// share: the operator's story with Vault initialized and unsealed by
// keyshare, the kmsplugin binary, and every secret of the run for the leak
// check at the end.
type kmsRun struct {
	*story
	// parent is the whole story's test: plugins and clients live until it
	// ends.
	parent *testing.T
	bin    string

	// mu guards secrets, and whatever else the stories keep beside them.
	mu      sync.Mutex
	secrets map[string][]byte
}

// newKMSRun starts the story, builds the plugin, and brings Vault up, within
// the returned context (5 minutes for the whole story):
// init unseals vault-1 through the holders; then the coordinator unseals
// the followers as they join (started after init, so that it does not race
// init for vault-1).
func newKMSRun(t *testing.T) (*kmsRun, context.Context) {
	t.Helper()
	r := &kmsRun{story: newStory(t), parent: t, secrets: map[string][]byte{}}
	ctx := scenarioCtx(t, 5*time.Minute)
	r.bin = requireKMSPlugin(t)
	if _, err := r.topo.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.topo.StartCoordinator(); err != nil {
		t.Fatal(err)
	}
	r.waitAllUnsealed(t, ctx)
	r.secret("root token", []byte(r.topo.RootToken()))
	return r, ctx
}

// secret adds v, under name, to what no log may hold.
func (r *kmsRun) secret(name string, v []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets[name] = bytes.Clone(v)
}

// rememberTokenFile adds the Vault token in file to the leak check, named
// by what and its last four characters, and returns the file's bytes.
func (r *kmsRun) rememberTokenFile(t *testing.T, what, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tok := bytes.TrimSpace(b)
	r.secret(what+" "+string(tok[len(tok)-4:]), tok)
	return b
}

// dialKMS dials a plugin's socket with the apiserver's own KMS v2 client,
// which lives until the whole story ends.
func (r *kmsRun) dialKMS(t *testing.T, socket, provider string) kmsservice.Service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r.parent.Cleanup(cancel)
	c, err := kmsv2.NewGRPCService(ctx, "unix://"+socket, provider, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// settleVault waits until every node is unsealed, a healthy raft voter, and
// has applied the latest write: the leader is settled.
func (r *kmsRun) settleVault(t *testing.T, ctx context.Context) {
	t.Helper()
	r.waitAllUnsealed(t, ctx)
	if _, err := r.topo.Vault.WaitRaftHealthy(ctx, r.topo.RootToken()); err != nil {
		t.Fatal(err)
	}
	if err := r.topo.Vault.WaitReplicated(ctx, r.topo.RootToken()); err != nil {
		t.Fatal(err)
	}
}

// scanSecrets fails t for every remembered secret found in any file of the
// topology's logs, and returns how many files it read and how many secrets
// it looked for.
func (r *kmsRun) scanSecrets(t *testing.T) (files, secrets int) {
	t.Helper()
	r.mu.Lock()
	all := maps.Clone(r.secrets)
	r.mu.Unlock()
	leaks, files, err := topology.ScanSecrets(all, r.topo.LogDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leaks {
		t.Errorf("leak: %s", l)
	}
	return files, len(all)
}
