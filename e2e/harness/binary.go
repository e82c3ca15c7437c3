package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// VaultVersion is the Vault server version the suite runs against.
const VaultVersion = "1.21.0"

// EnvVaultBin names an executable to use instead of building Vault. `make
// e2e` sets it from e2e/tools/vault/build.sh.
const EnvVaultBin = "KEYSHARE_VAULT_BIN"

// DefaultBuildTimeout bounds a cold build of Vault (about 11 minutes on 2
// cores, plus module downloads).
const DefaultBuildTimeout = 30 * time.Minute

// buildScript is the path of the build script inside the repository.
const buildScript = "e2e/tools/vault/build.sh"

// VaultBinary returns the path of a Vault v1.21.0 server: $KEYSHARE_VAULT_BIN
// if set, otherwise whatever e2e/tools/vault/build.sh prints (a matching
// `vault` on PATH, the cached build, or a fresh build, which can take many
// minutes). The script's progress goes to stderr.
func VaultBinary(ctx context.Context) (string, error) {
	if p := os.Getenv(EnvVaultBin); p != "" {
		if err := CheckExecutable(p); err != nil {
			return "", fmt.Errorf("$%s: %w", EnvVaultBin, err)
		}
		return p, nil
	}
	script, err := FindBuildScript(buildScript, "set $"+EnvVaultBin)
	if err != nil {
		return "", err
	}
	out, err := RunBuildScript(ctx, script)
	if err != nil {
		return "", fmt.Errorf("failed to build vault with %s: %w", script, err)
	}
	p := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(p, '\n'); i >= 0 {
		p = p[i+1:]
	}
	if err := CheckExecutable(p); err != nil {
		return "", fmt.Errorf("%s printed an unusable path: %w", script, err)
	}
	return p, nil
}

// RequireVaultBinary is VaultBinary for tests: it bounds the build by
// DefaultBuildTimeout and fails the test if no binary can be had.
func RequireVaultBinary(tb testing.TB) string {
	tb.Helper()
	return RequireBuilt(tb, "vault server binary", DefaultBuildTimeout, VaultBinary)
}

// RequireBuilt is for tests and benchmarks: it bounds find (which may
// build something) by timeout, fails (never skips) the test with "no
// <what>: <find's error>" if find fails, and logs how long a slow find took.
func RequireBuilt[T any](tb testing.TB, what string, timeout time.Duration, find func(context.Context) (T, error)) T {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	v, err := find(ctx)
	if err != nil {
		tb.Fatalf("no %s: %v", what, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		tb.Logf("%s ready in %s", what, d.Round(time.Second))
	}
	return v
}

// RunBuildScript runs script with bash and returns what it printed on
// stdout; its progress goes to stderr. The script runs `go build`: the end
// of ctx kills its whole process group.
func RunBuildScript(ctx context.Context, script string) ([]byte, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return out.Bytes(), err
}

// CheckExecutable says whether p is an executable file, and why not.
func CheckExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("failed to find binary: %w", err)
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// FindBuildScript looks for rel (a build script such as
// e2e/tools/vault/build.sh) in the working directory and its parents (tests
// run in their package folder, the demo from the repository root), then
// relative to this source file's repository. hint ends the error: what to
// set instead.
func FindBuildScript(rel, hint string) (string, error) {
	var tried []string
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, rel)
			tried = append(tried, p)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		p := filepath.Join(filepath.Dir(file), "..", "..", rel)
		tried = append(tried, p)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("failed to find " + rel + " (looked at " + strings.Join(tried, ", ") +
		"); run from inside the repository or " + hint)
}
