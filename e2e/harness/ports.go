package harness

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// DefaultVaultAddrs are the loopback addresses of the three Vault nodes. On
// Linux the whole of 127.0.0.0/8 answers without any setup, so every node
// gets an address of its own, as it would on separate hosts.
var DefaultVaultAddrs = []string{"127.0.0.101", "127.0.0.102", "127.0.0.103"}

// handedOut remembers every port FreePort returned in this process, so two
// callers never get the same one even if the kernel would hand it out again
// right after it was closed.
var (
	handedOutMu sync.Mutex
	handedOut   = map[string]bool{}
)

// FreePort returns a TCP port on the loopback address ip that was free a
// moment ago. It listens on ip:0, closes the listener and returns the port.
// Another process may still take the port before the caller binds it; callers
// that cannot tolerate that retry with a fresh port (VaultCluster.Start does).
func FreePort(ip string) (int, error) {
	if err := checkLoopback(ip); err != nil {
		return 0, err
	}
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, fmt.Errorf("failed to listen on %s to find a free port: %w", ip, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return 0, fmt.Errorf("failed to close probe listener on %s: %w", ip, err)
		}
		key := net.JoinHostPort(ip, strconv.Itoa(port))
		handedOutMu.Lock()
		seen := handedOut[key]
		handedOut[key] = true
		handedOutMu.Unlock()
		if !seen {
			return port, nil
		}
	}
	return 0, fmt.Errorf("failed to find a free port on %s that was not handed out before", ip)
}

// checkLoopback refuses anything but a 127.0.0.0/8 address: the harness
// never listens on a real network interface.
func checkLoopback(ip string) error {
	parsed := net.ParseIP(ip)
	if parsed == nil || parsed.To4() == nil || !parsed.IsLoopback() {
		return fmt.Errorf("address %q is not an IPv4 loopback address (127.0.0.0/8)", ip)
	}
	return nil
}
