package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// The dpkg test installs the packages on this machine, so it runs only where
// keyshare is not installed, one run at a time (lockFile), and leaves the
// machine as it found it: t.Cleanup purges the packages, deletes the store
// it made and the keyshare user if the packages created it. A run killed
// before its cleanup (a test timeout) leaves stateFile behind, and the next
// run finishes that cleanup first.
const (
	lockFile  = "/run/lock/keyshare-debtest.lock"
	stateFile = "/var/tmp/keyshare-debtest.state"
)

// debState is what a run must undo.
type debState struct {
	Packages    []string `json:"packages"`
	Paths       []string `json:"paths"`        // folders the run may have created, removed at the end
	DeleteUser  bool     `json:"delete_user"`  // the keyshare user did not exist before
	DeleteGroup bool     `json:"delete_group"` // nor its group
}

func packageNames() []string {
	var n []string
	for _, d := range Daemons {
		n = append(n, d.Package)
	}
	return n
}

// requireDpkg skips the test where it cannot run: not root, or no dpkg.
// KEYSHARE_DEB_TEST=require (set by make test) turns the skip into a
// failure, so that CI cannot pass without it.
func requireDpkg(t *testing.T) {
	why := ""
	switch {
	case runtime.GOOS != "linux":
		why = "not linux"
	case os.Geteuid() != 0:
		why = "not root (dpkg -i needs root)"
	default:
		for _, c := range []string{"dpkg", "dpkg-query", "runuser", "useradd", "userdel", "groupdel"} {
			if _, err := exec.LookPath(c); err != nil {
				why = c + " not found"
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("KEYSHARE_DEB_TEST") == "require" {
		t.Fatalf("the dpkg test cannot run here (%s) and KEYSHARE_DEB_TEST=require", why)
	}
	t.Skipf("the dpkg test cannot run here: %s", why)
}

// lockRun waits (polling, bounded) for the machine-wide lock, so that two
// runs at once (two checkouts, -count=2) take turns.
func lockRun(t *testing.T) func() {
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("failed to open the lock %s: %v", lockFile, err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			t.Fatalf("failed to take the lock %s (another dpkg test run holds it?): %v", lockFile, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return func() { _ = f.Close() } // closing releases the lock
}

// preflight refuses a machine that has keyshare on it, and says what the
// run will have to undo.
func preflight(t *testing.T) debState {
	for _, p := range packageNames() {
		if s := dpkgStatus(p); s != "" {
			t.Fatalf("package %s is on this machine (status %q), not installed by this test: not touching it", p, s)
		}
	}
	for _, p := range []string{"/etc/keyshare", "/var/lib/keyshare"} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists on this machine, not made by this test: not touching it (run the test on a machine without keyshare)", p)
		}
	}
	st := debState{Packages: packageNames(), Paths: []string{"/var/lib/keyshare/holder", "/var/lib/keyshare", "/etc/keyshare/kms", "/etc/keyshare/tls", "/etc/keyshare"}}
	if _, err := user.Lookup(User); err != nil {
		st.DeleteUser = true
	}
	if _, err := user.LookupGroup(User); err != nil {
		st.DeleteGroup = true
	}
	return st
}

func writeState(st debState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return os.WriteFile(stateFile, b, 0o600)
}

// finishKilledRun undoes what a killed earlier run left, if anything.
func finishKilledRun() error {
	b, err := os.ReadFile(stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st debState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("state file %s: %w (delete it after checking the machine by hand)", stateFile, err)
	}
	if err := undo(st); err != nil {
		return err
	}
	return os.Remove(stateFile)
}

// undo purges the packages, removes the folders the run made (the store
// files included), and the user and group if the run created them.
func undo(st debState) error {
	var errs []error
	var installed []string
	for _, p := range st.Packages {
		if dpkgStatus(p) != "" {
			installed = append(installed, p)
		}
	}
	if len(installed) > 0 {
		if out, err := dpkgRun(append([]string{"-P"}, installed...)...); err != nil {
			errs = append(errs, fmt.Errorf("dpkg -P: %w: %s", err, out))
		}
	}
	for _, p := range st.Paths {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	if st.DeleteUser {
		if _, err := user.Lookup(User); err == nil {
			if out, err := exec.Command("userdel", User).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("userdel %s: %w: %s", User, err, out))
			}
		}
	}
	if st.DeleteGroup {
		if _, err := user.LookupGroup(User); err == nil {
			if out, err := exec.Command("groupdel", User).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("groupdel %s: %w: %s", User, err, out))
			}
		}
	}
	return errors.Join(errs...)
}
