package main

import (
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

// TestUnsealTypedShares drives `unsealer unseal` through a pseudo-terminal:
// shares are typed without echo, a wrong one is named and asked for again,
// and the node unseals once three valid shares are in.
func TestUnsealTypedShares(t *testing.T) {
	c := newCluster(t, true)
	old := newCluster(t, true).keys
	cmd := exec.Command(unsealerBin, "unseal", "-c", c.cfg)
	tty, err := pty.Start(cmd)
	must(t, err)
	defer tty.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	var mu sync.Mutex
	var seen strings.Builder
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := tty.Read(buf)
			mu.Lock()
			seen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return // EOF or EIO once the process is gone
			}
		}
	}()
	text := func() string { mu.Lock(); defer mu.Unlock(); return seen.String() }
	prompts := 0
	typeAt := func(prompt, line string) {
		t.Helper()
		prompts++
		proctest.WaitFor(t, 30*time.Second, "prompt "+prompt, func() bool { return strings.Count(text(), "(input is hidden)") >= prompts })
		if !strings.Contains(text()[strings.LastIndex(text(), "\n")+1:], prompt) {
			t.Fatalf("prompt %q not shown; terminal so far:\n%s", prompt, text())
		}
		// The prompt is printed just before the program turns echo off:
		// type only once it has, as a person would see no difference.
		proctest.WaitFor(t, 10*time.Second, "echo off", func() bool {
			tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
			return err == nil && tio.Lflag&unix.ECHO == 0
		})
		if _, err := tty.Write([]byte(line + "\r")); err != nil {
			t.Fatal(err)
		}
	}
	typeAt("share 1 of 3", c.keys[3].Hex())
	typeAt("share 2 of 3", old[0].Hex()) // another generation: rejected
	typeAt("share 2 of 3", c.keys[3].Base64())
	typeAt("share 2 of 3", c.keys[0].Hex())
	typeAt("share 3 of 3", c.keys[1].Base64())
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("unseal: %v\n%s", err, text())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("unseal did not finish:\n%s", text())
	}
	proctest.WaitFor(t, 5*time.Second, "final output", func() bool { return strings.Contains(text(), "unsealed 1 node(s)") })
	out := text()
	for _, want := range []string{"share 2: share matches no share of the current generation 1", "share 2: duplicate share: same as share 1", "vault-1: 2/3", "vault-1: unsealed"} {
		if !strings.Contains(out, want) {
			t.Fatalf("terminal lacks %q:\n%s", want, out)
		}
	}
	noSecrets(t, out, append(c.keys, old...)) // nothing echoed
	if c.fake.Sealed() || c.fake.Stats().Submitted != 3 || c.fake.Stats().Wasted != 0 {
		t.Fatalf("sealed %v, stats %+v", c.fake.Sealed(), c.fake.Stats())
	}
}
