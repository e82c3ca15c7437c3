package shares

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The disk-full test runs its Stage in a child process (this test binary,
// re-executed) whose RLIMIT_FSIZE is smaller than a sealed file, so that
// the write fails as on a full disk without touching the parent's limits.
const diskFullEnv = "KEYSHARE_TEST_DISKFULL_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(diskFullEnv); dir != "" {
		os.Exit(stageWithTinyDisk(dir))
	}
	os.Exit(m.Run())
}

// stageWithTinyDisk is the child: stage generation 2 with at most 200 bytes
// per file. It exits 0 if Stage failed with a write error, 1 otherwise.
func stageWithTinyDisk(dir string) int {
	signal.Ignore(syscall.SIGXFSZ) // get EFBIG instead of being killed
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 200, Max: 200}); err != nil {
		return 2
	}
	key, _ := KeyFromBytes(make([]byte, KeyLen))
	s, err := OpenStore(dir, "a", key)
	if err != nil {
		return 3
	}
	_, all := split(&testing.T{})
	err = s.Stage(bundleFor(&testing.T{}, "a", 2, all, []uint8{1, 2}))
	if err != nil && errors.Is(err, syscall.EFBIG) {
		return 0
	}
	return 1
}

// TestStageOnFullDisk: a Stage that cannot write leaves the committed
// generation usable, the state unchanged and no temp file behind.
func TestStageOnFullDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	key, _ := KeyFromBytes(make([]byte, KeyLen))
	s, err := OpenStore(dir, "a", key)
	if err != nil {
		t.Fatal(err)
	}
	_, all := split(t)
	if err := s.Stage(bundleFor(t, "a", 1, all, []uint8{1, 2})); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(1); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), diskFullEnv+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the child did not see Stage fail with EFBIG: %v\n%s", err, out)
	}
	st, err := s.State()
	if err != nil || st.Current != 1 || st.Staged != 0 || st.Mark != 1 || len(st.Kept) != 0 {
		t.Fatalf("state after the failed stage = %+v, %v; want current 1, nothing staged", st, err)
	}
	b, err := s.LoadCurrent()
	if err != nil {
		t.Fatalf("current generation after the failed stage: %v", err)
	}
	b.Destroy()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") || e.Name() == "gen-2.sealed" {
			t.Fatalf("left behind: %s", e.Name())
		}
	}
}
