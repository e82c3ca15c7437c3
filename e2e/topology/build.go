package topology

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// modulePath is the module whose commands BuildBinaries builds.
const modulePath = "github.com/keyshare/keyshare"

// Binaries are the keyshare executables a topology runs.
type Binaries struct {
	Holder   string
	Unsealer string
}

// BuildBinaries builds cmd/holder and cmd/unsealer into dir with `go
// build`, from the module root found above the working directory. race
// adds -race (for tests; the demo builds without it).
func BuildBinaries(ctx context.Context, dir string, race bool) (Binaries, error) {
	root, err := ModuleRoot()
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{Holder: filepath.Join(dir, "holder"), Unsealer: filepath.Join(dir, "unsealer")}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/holder", "./cmd/unsealer")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("failed to build holder and unsealer in %s: %w\n%s", root, err, out.String())
	}
	return b, nil
}

// ModuleRoot returns the folder of keyshare's go.mod: the working directory
// or the nearest parent that holds it.
func ModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("failed to get the working directory: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module "+modulePath+"\n") {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", errors.New("failed to find keyshare's go.mod in " + wd + " or above: run from inside the repository")
		}
	}
}
