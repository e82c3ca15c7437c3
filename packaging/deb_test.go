package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDebInstall installs the three packages with dpkg and checks the user,
// the folders' owners and modes, the conffiles and that each installed
// binary runs --version as the keyshare user; then removes them (not purge)
// and checks that the holder's sealed store is untouched, reinstalls the
// holder over it, and purges.
func TestDebInstall(t *testing.T) {
	requireDpkg(t)
	unlock := lockRun(t)
	t.Cleanup(unlock)
	if err := finishKilledRun(); err != nil {
		t.Fatalf("cleaning up after an earlier killed run (%s): %v", stateFile, err)
	}
	st := preflight(t)
	if err := writeState(st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := undo(st); err != nil {
			t.Errorf("cleanup: %v (state kept in %s; the next run retries)", err, stateFile)
			return
		}
		_ = os.Remove(stateFile)
	})

	debs := buildDebs(t)
	dpkg(t, append([]string{"-i"}, debs...)...)

	// The user and group: a system account that cannot log in.
	u, err := user.Lookup(User)
	if err != nil {
		t.Fatalf("user %s after install: %v", User, err)
	}
	if uid, _ := strconv.Atoi(u.Uid); uid == 0 || uid >= 1000 {
		t.Errorf("user %s has uid %s: want a system uid (1..999)", User, u.Uid)
	}
	if pw := passwdLine(t, User); !strings.HasSuffix(pw, ":/var/lib/keyshare:/usr/sbin/nologin") {
		t.Errorf("passwd entry %q: want home /var/lib/keyshare and shell /usr/sbin/nologin", pw)
	}
	g, err := user.LookupGroup(User)
	if err != nil {
		t.Fatalf("group %s after install: %v", User, err)
	}
	if u.Gid != g.Gid {
		t.Errorf("user %s has gid %s, group %s is %s", User, u.Gid, User, g.Gid)
	}

	// Owners and modes, written out here rather than read from Daemons,
	// so that a wrong mode there fails this test.
	want := []struct {
		path         string
		owner, group string
		mode         fs.FileMode
	}{
		{"/etc/keyshare", "root", User, fs.ModeDir | 0o750},
		{"/etc/keyshare/tls", "root", User, fs.ModeDir | 0o750},
		{"/etc/keyshare/kms", User, User, fs.ModeDir | 0o700},
		{"/var/lib/keyshare", "root", "root", fs.ModeDir | 0o755},
		{"/var/lib/keyshare/holder", User, User, fs.ModeDir | 0o700},
		{"/etc/keyshare/holder.yaml", "root", User, 0o640},
		{"/etc/keyshare/unsealer.yaml", "root", User, 0o640},
		{"/etc/keyshare/kmsplugin.yaml", "root", User, 0o640},
		{"/usr/bin/holder", "root", "root", 0o755},
		{"/usr/bin/unsealer", "root", "root", 0o755},
		{"/usr/bin/kmsplugin", "root", "root", 0o755},
		{"/lib/systemd/system/keyshare-holder.service", "root", "root", 0o644},
		{"/lib/systemd/system/keyshare-unsealer.service", "root", "root", 0o644},
		{"/lib/systemd/system/keyshare-kmsplugin.service", "root", "root", 0o644},
		{"/usr/share/doc/keyshare-kmsplugin/examples/encryption-config.yaml", "root", "root", 0o644},
	}
	for _, w := range want {
		checkOwnerMode(t, w.path, w.owner, w.group, w.mode)
	}

	for _, d := range Daemons {
		// Conffiles: dpkg keeps the operator's edits.
		cf := dpkgQuery(t, "${Conffiles}", d.Package)
		if !strings.Contains(cf, d.ConfigAs+" ") {
			t.Errorf("%s conffiles %q: want %s", d.Package, cf, d.ConfigAs)
		}
		// The installed unit starts the installed binary.
		unit, err := os.ReadFile("/lib/systemd/system/" + d.UnitName)
		if err != nil {
			t.Fatal(err)
		}
		exec := "ExecStart=/usr/bin/" + d.Binary + " "
		if !bytes.Contains(unit, []byte("\n"+exec)) || !bytes.Contains(unit, []byte("\nUser="+User+"\n")) {
			t.Errorf("unit %s: want a line starting %q and User=%s", d.UnitName, exec, User)
		}
		// The binary runs, as the user the unit runs it as.
		out := runCmd(t, "runuser", "-u", User, "--", "/usr/bin/"+d.Binary, "--version")
		if !strings.HasPrefix(out, d.Binary+" ") || !strings.Contains(out, "(commit ") {
			t.Errorf("%s --version as %s printed %q: want %q", d.Binary, User, out, d.Binary+" <version> (commit <c>, <go>)")
		}
	}

	// A store, made as the holder would: the installed binary, run as the
	// keyshare user, writes its seal key there (so the user can write its
	// state folder), and a sealed generation file beside it.
	store := "/var/lib/keyshare/holder"
	runCmd(t, "runuser", "-u", User, "--", "/usr/bin/holder", "keygen", store+"/seal.key")
	sealed := make([]byte, 4096)
	if _, err := rand.Read(sealed); err != nil {
		t.Fatal(err)
	}
	runIn(t, string(sealed), "runuser", "-u", User, "--", "sh", "-c", "umask 077 && cat > "+store+"/gen-1.sealed")
	before := snapshot(t, store)
	if len(before) != 2 {
		t.Fatalf("store %s holds %d files, want 2 (seal.key, gen-1.sealed)", store, len(before))
	}

	// Remove, not purge: binaries and units go, conffiles and the store stay.
	dpkg(t, append([]string{"-r"}, packageNames()...)...)
	for _, d := range Daemons {
		if _, err := os.Stat("/usr/bin/" + d.Binary); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("/usr/bin/%s after remove: %v, want it gone", d.Binary, err)
		}
		if s := dpkgQuery(t, "${db:Status-Abbrev}", d.Package); strings.TrimSpace(s) != "rc" {
			t.Errorf("%s after remove: status %q, want rc (removed, config files kept)", d.Package, s)
		}
		if _, err := os.Stat(d.ConfigAs); err != nil {
			t.Errorf("conffile %s after remove: %v", d.ConfigAs, err)
		}
	}
	checkOwnerMode(t, store, User, User, fs.ModeDir|0o700)
	checkSame(t, store, before, "after dpkg -r")

	// Installed again over the kept store: still there, still 0700.
	dpkg(t, "-i", debs[0])
	checkOwnerMode(t, store, User, User, fs.ModeDir|0o700)
	checkSame(t, store, before, "after reinstalling "+Daemons[0].Package)
}

// buildDebs builds the packages from the static binaries in
// $KEYSHARE_STATIC_BIN (make deb-test sets it), or builds those first.
func buildDebs(t *testing.T) []string {
	bin := os.Getenv("KEYSHARE_STATIC_BIN")
	if bin == "" {
		bin = t.TempDir()
		buildStatic(t, bin, "v0.0.0-debtest")
	}
	debs, err := Build(Options{Root: "..", BinDir: bin, OutDir: t.TempDir(), Version: "v0.0.0-debtest", Arch: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	if len(debs) != len(Daemons) || !strings.Contains(debs[0], Daemons[0].Package) {
		t.Fatalf("built %v: want one package per daemon, %s first", debs, Daemons[0].Package)
	}
	return debs
}

// buildStatic builds the three binaries the way make deb does.
func buildStatic(t *testing.T, dir, version string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags",
		"-s -w -X github.com/keyshare/keyshare/internal/version.Version="+version,
		"-o", dir+"/", "./cmd/holder", "./cmd/unsealer", "./cmd/kmsplugin")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the static binaries: %v\n%s", err, out)
	}
}

// dpkgRun runs dpkg without prompts, retrying (bounded) while another
// dpkg or apt holds dpkg's own lock.
func dpkgRun(args ...string) (string, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, "dpkg", append([]string{"--force-confold"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil || !bytes.Contains(out, []byte("lock")) || time.Now().After(deadline) {
			return string(out), err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func dpkg(t *testing.T, args ...string) {
	t.Helper()
	out, err := dpkgRun(args...)
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("dpkg %s:\n%s", args[0], out)
}

// dpkgStatus is the package's abbreviated status ("ii", "rc"), or "" if
// dpkg does not know it.
func dpkgStatus(p string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}", p).Output()
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(out))
	if s == "un" {
		return ""
	}
	return s
}

func dpkgQuery(t *testing.T, format, p string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f="+format, p).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-query %s %s: %v: %s", format, p, err, out)
	}
	return string(out)
}

func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	return runIn(t, "", name, args...)
}

// runIn runs a command with stdin, bounded in time, and fails the test
// with its output if it fails.
func runIn(t *testing.T, stdin, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func passwdLine(t *testing.T, name string) string {
	out, err := exec.Command("getent", "passwd", name).Output()
	if err != nil {
		t.Fatalf("getent passwd %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

func checkOwnerMode(t *testing.T, path, owner, group string, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	s := fi.Sys().(*syscall.Stat_t)
	u, _ := user.LookupId(strconv.Itoa(int(s.Uid)))
	g, _ := user.LookupGroupId(strconv.Itoa(int(s.Gid)))
	var un, gn string
	if u != nil {
		un = u.Username
	}
	if g != nil {
		gn = g.Name
	}
	got := fi.Mode() & (fs.ModeType | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if un != owner || gn != group || got != mode {
		t.Errorf("%s is %s:%s %v, want %s:%s %v", path, un, gn, got, owner, group, mode)
	}
}

// snapshot maps each file in dir to its owner, mode and content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("store %s: %v", dir, err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := fi.Sys().(*syscall.Stat_t)
		m[e.Name()] = fmt.Sprintf("%d:%d %v %x", s.Uid, s.Gid, fi.Mode(), b)
	}
	return m
}

func checkSame(t *testing.T, dir string, before map[string]string, when string) {
	t.Helper()
	after := snapshot(t, dir)
	if len(after) != len(before) {
		t.Errorf("store %s %s: %d files, had %d", dir, when, len(after), len(before))
	}
	for name, b := range before {
		if after[name] != b {
			t.Errorf("store %s %s: %s changed or went missing", dir, when, name)
		}
	}
}
