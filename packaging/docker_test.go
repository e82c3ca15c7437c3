package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// There is no Docker daemon where this runs, so the image is not built
// here. What can be checked without one is: the final stages are
// distroless/static or scratch, run as a non-root user, have no RUN and an
// exec-form ENTRYPOINT (no shell needed, none present); and the build
// stage's own `go build` line, run here, makes static binaries.

// stage is one FROM ... AS name block of a Dockerfile.
type stage struct {
	name, from string
	instrs     [][2]string // instruction, rest of the line
}

// parseDockerfile reads the stages, joining continued lines.
func parseDockerfile(path string) ([]stage, map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var stages []stage
	args := map[string]string{}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		instr = strings.ToUpper(instr)
		rest = strings.TrimSpace(rest)
		switch {
		case instr == "FROM":
			f := strings.Fields(rest)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "as") {
				s.name = f[2]
			}
			stages = append(stages, s)
		case len(stages) == 0:
			return nil, nil, fmt.Errorf("%s line %d: %s before the first FROM", path, n+1, instr)
		default:
			if instr == "ARG" {
				k, v, _ := strings.Cut(rest, "=")
				args[k] = v
			}
			s := &stages[len(stages)-1]
			s.instrs = append(s.instrs, [2]string{instr, rest})
		}
	}
	return stages, args, nil
}

// staticELF returns an error unless the file is an ELF executable with no
// interpreter and no shared libraries.
func staticELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return fmt.Errorf("%s is dynamically linked (has %v)", path, p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return fmt.Errorf("%s needs shared libraries %v", path, libs)
	}
	return nil
}

func TestStaticELFCatchesDynamic(t *testing.T) {
	for _, p := range []string{"/bin/sh", "/usr/bin/dpkg"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := staticELF(p); err == nil {
			t.Errorf("staticELF(%s) = nil: a dynamically linked system binary passed as static", p)
		}
		return
	}
	t.Skip("no dynamically linked binary to check against")
}

func TestDockerfile(t *testing.T) {
	stages, args, err := parseDockerfile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]stage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	build, ok := byName["build"]
	if !ok {
		t.Fatal("Dockerfile: no stage named build")
	}
	var goBuild string
	for _, in := range build.instrs {
		if in[0] == "RUN" && strings.Contains(in[1], "go build") {
			goBuild = in[1]
		}
	}
	if !strings.HasPrefix(goBuild, "CGO_ENABLED=0 ") {
		t.Fatalf("build stage's go build line %q: want it to start with CGO_ENABLED=0", goBuild)
	}
	binaries := map[string]bool{}
	for _, target := range []string{"kmsplugin", "unsealer"} {
		s, ok := byName[target]
		if !ok {
			t.Errorf("Dockerfile: no stage %s (docker build --target %s)", target, target)
			continue
		}
		if !regexp.MustCompile(`^(gcr\.io/distroless/static(-debian\d+)?(:[\w.-]+)?(@sha256:[0-9a-f]{64})?|scratch)$`).MatchString(s.from) {
			t.Errorf("stage %s is FROM %s: want gcr.io/distroless/static or scratch (no shell, no libc)", target, s.from)
		}
		var user, entry string
		for _, in := range s.instrs {
			switch in[0] {
			case "RUN", "SHELL":
				t.Errorf("stage %s has %s %s: a final stage must not need a shell", target, in[0], in[1])
			case "USER":
				user = in[1]
			case "ENTRYPOINT":
				entry = in[1]
			case "COPY":
				if !strings.HasPrefix(in[1], "--from=build ") {
					t.Errorf("stage %s: COPY %s: want only binaries from the build stage", target, in[1])
				}
			}
		}
		if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
			t.Errorf("stage %s runs as user %q: want a non-root numeric uid (runAsNonRoot checks numbers)", target, user)
		}
		var argv []string
		if err := json.Unmarshal([]byte(entry), &argv); err != nil || len(argv) == 0 {
			t.Errorf("stage %s ENTRYPOINT %s: want the exec (JSON) form, which needs no shell", target, entry)
			continue
		}
		if filepath.Base(argv[0]) != target {
			t.Errorf("stage %s runs %s", target, argv[0])
		}
		binaries[target] = true
	}
	// The KMS plugin's static pod runs the image's binary by path.
	pod, err := os.ReadFile("../configs/k8s/kmsplugin-pod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(pod, []byte(`command: ["/usr/local/bin/kmsplugin"`)) {
		t.Error("configs/k8s/kmsplugin-pod.yaml does not run /usr/local/bin/kmsplugin, where the image puts it")
	}

	// Run the build stage's line here, into a temporary folder instead of
	// /out/, with the ARG defaults, and check what it makes.
	out := t.TempDir()
	line := strings.ReplaceAll(goBuild, " -o /out/ ", " -o "+out+"/ ")
	if line == goBuild {
		t.Fatalf("go build line %q: want -o /out/", goBuild)
	}
	for k, v := range args {
		line = strings.ReplaceAll(line, "${"+k+"}", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, b)
	}
	for name := range binaries {
		p := filepath.Join(out, name)
		if err := staticELF(p); err != nil {
			t.Error(err)
		}
		if _, err := exec.LookPath("file"); err == nil {
			b, _ := exec.Command("file", p).Output()
			if !bytes.Contains(b, []byte("statically linked")) {
				t.Errorf("file %s: %s", p, b)
			}
		}
		v, err := exec.CommandContext(ctx, p, "--version").Output()
		if err != nil || !strings.HasPrefix(string(v), name+" "+args["VERSION"]+" (commit "+args["COMMIT"]) {
			t.Errorf("%s --version: %q, %v: want the version and commit of the build args", name, v, err)
		}
	}
}
