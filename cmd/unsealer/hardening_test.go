package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

// coreLimit returns the "Max core file size" line of a process's limits.
func coreLimit(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Skipf("no /proc limits: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Max core file size") {
			return strings.Join(strings.Fields(l), " ")
		}
	}
	t.Fatalf("no core limit in /proc/%d/limits", pid)
	return ""
}

// TestNoCoreDumpsWhileHoldingShares: an unsealer paused in a rekey right
// after collecting a threshold of shares, and a running holder, both have
// RLIMIT_CORE 0/0, so no crash or signal can write their shares to disk.
// Before, only the holder daemon turned core dumps off; the unsealer kept
// the inherited hard limit (here "unlimited").
func TestNoCoreDumpsWhileHoldingShares(t *testing.T) {
	c := newCluster(t, true)
	c.fake.Unseal()
	oldFile := c.path("old.txt")
	must(t, os.WriteFile(oldFile, []byte(c.keys[1].Hex()+"\n"+c.keys[2].Hex()+"\n"+c.keys[4].Hex()+"\n"), 0o600))
	p := start(t, []string{pauseEnv + "=collect"}, unsealerBin, "rekey", "-c", c.cfg, "--old-shares-file", oldFile)
	proctest.WaitFor(t, 60*time.Second, "pause after collecting shares", func() bool { return strings.Contains(p.Out.String(), "paused at step collect") })
	const want = "Max core file size 0 0 bytes"
	if got := coreLimit(t, p.Cmd.Process.Pid); got != want {
		t.Errorf("unsealer holding shares: %q, want %q", got, want)
	}
	if got := coreLimit(t, c.holders[0].Cmd.Process.Pid); got != want {
		t.Errorf("holder: %q, want %q", got, want)
	}
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
}
