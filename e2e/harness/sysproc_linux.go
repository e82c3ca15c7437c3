package harness

import "syscall"

// sysProcAttr puts the child in its own process group, so that a Ctrl-C in
// the terminal reaches the harness only, and asks the kernel to SIGKILL the
// child if the harness dies without cleaning up (for example when `go test`
// times out and exits without running t.Cleanup).
//
// Pdeathsig fires when the thread that started the child exits. Go keeps its
// threads alive unless a goroutine locked to one exits, which the harness
// never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
