package main

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

//go:embed scripts
var scripts embed.FS

// Options say where Build finds its inputs and writes the packages.
type Options struct {
	// Root is the repository (configs/ is read from there).
	Root string
	// BinDir holds the static binaries (holder, unsealer, kmsplugin).
	BinDir string
	// OutDir receives the .deb files.
	OutDir string
	// Version is the release version (v1.2.3, or git describe's output).
	Version string
	// Arch is the Debian architecture of the binaries (amd64).
	Arch string
	// MTime is every file's modification time, for reproducible packages.
	MTime time.Time
}

// Build writes one .deb per daemon to o.OutDir and returns their paths.
// Each package is written to a temporary file and renamed into place, so a
// failed build never leaves a half-written .deb behind.
func Build(o Options) ([]string, error) {
	ver, err := DebVersion(o.Version)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create the output folder %s: %w", o.OutDir, err)
	}
	stage, err := os.MkdirTemp("", "keyshare-deb-")
	if err != nil {
		return nil, fmt.Errorf("failed to create a staging folder: %w", err)
	}
	defer os.RemoveAll(stage)
	var out []string
	for _, d := range Daemons {
		p, err := buildOne(o, d, ver, filepath.Join(stage, d.Package))
		if err != nil {
			return out, fmt.Errorf("package %s: %w", d.Package, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func buildOne(o Options, d Daemon, ver, stage string) (string, error) {
	bin := filepath.Join(o.BinDir, d.Binary)
	if st, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("binary %s: %w (build it first: make deb)", bin, err)
	} else if st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("binary %s is not executable", bin)
	}
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return "", err
	}
	unit, err := packagedUnit(filepath.Join(o.Root, "configs", "systemd", d.Unit))
	if err != nil {
		return "", err
	}
	unitPath := filepath.Join(stage, d.UnitName)
	if err := os.WriteFile(unitPath, unit, 0o644); err != nil {
		return "", err
	}
	sc, err := renderScripts(d, stage)
	if err != nil {
		return "", err
	}

	root := &files.ContentFileInfo{Owner: "root", Group: "root", Mode: 0o644}
	contents := files.Contents{
		{Source: bin, Destination: "/usr/bin/" + d.Binary, FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: 0o755}},
		{Source: unitPath, Destination: "/lib/systemd/system/" + d.UnitName, FileInfo: root},
		// A conffile: dpkg keeps the operator's edits on upgrade and on
		// remove, and deletes it only on purge.
		{Source: filepath.Join(o.Root, "configs", d.Config), Destination: d.ConfigAs, Type: files.TypeConfigNoReplace,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: User, Mode: 0o640}},
	}
	for _, e := range d.Examples {
		contents = append(contents, &files.Content{Source: filepath.Join(o.Root, "configs", e),
			Destination: "/usr/share/doc/" + d.Package + "/examples/" + filepath.Base(e), FileInfo: root})
	}
	for _, dir := range d.Dirs {
		contents = append(contents, &files.Content{Destination: dir.Path, Type: files.TypeDir,
			FileInfo: &files.ContentFileInfo{Owner: dir.Owner, Group: dir.Group, Mode: dir.Mode | os.ModeDir}})
	}
	info := nfpm.WithDefaults(&nfpm.Info{
		Name: d.Package, Arch: o.Arch, Platform: "linux", Version: ver, VersionSchema: "none",
		Section: "admin", Priority: "optional",
		Maintainer:  "keyshare maintainers <keyshare@example.invalid>",
		Description: d.Summary + "\n" + d.Description,
		Homepage:    "https://github.com/keyshare/keyshare",
		MTime:       o.MTime,
		Overridables: nfpm.Overridables{
			Contents: contents,
			// The preinst creates the user with useradd (package passwd).
			Deb:     nfpm.Deb{Predepends: []string{"passwd"}},
			Scripts: sc,
		},
	})
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", err
	}
	if err := nfpm.Validate(info); err != nil {
		return "", err
	}
	dst := filepath.Join(o.OutDir, deb.Default.ConventionalFileName(info))
	return dst, writeAtomic(dst, func(f *os.File) error { return deb.Default.Package(info, f) })
}

// packagedUnit is the unit from configs/systemd with the binary where the
// package puts it (/usr/bin; the configs say /usr/local/bin for installs by
// hand).
func packagedUnit(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read the systemd unit: %w", err)
	}
	if !bytes.Contains(b, []byte("ExecStart=/usr/local/bin/")) {
		return nil, fmt.Errorf("systemd unit %s: no ExecStart=/usr/local/bin/... line to point at /usr/bin", path)
	}
	return bytes.ReplaceAll(b, []byte("/usr/local/bin/"), []byte("/usr/bin/")), nil
}

// renderScripts writes the maintainer scripts of d into dir.
func renderScripts(d Daemon, dir string) (nfpm.Scripts, error) {
	data := struct {
		Daemon
		User string
	}{d, User}
	paths := map[string]string{}
	for _, name := range []string{"preinst", "postinst", "prerm", "postrm"} {
		t, err := template.ParseFS(scripts, "scripts/"+name)
		if err != nil {
			return nfpm.Scripts{}, err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nfpm.Scripts{}, fmt.Errorf("maintainer script %s: %w", name, err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o755); err != nil {
			return nfpm.Scripts{}, err
		}
		paths[name] = p
	}
	return nfpm.Scripts{PreInstall: paths["preinst"], PostInstall: paths["postinst"],
		PreRemove: paths["prerm"], PostRemove: paths["postrm"]}, nil
}

// writeAtomic writes dst through a temporary file in its folder, fsyncs it
// and renames it into place.
func writeAtomic(dst string, write func(*os.File) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return fmt.Errorf("failed to create %s: %w", dst, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("failed to write %s: %w", dst, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("failed to sync %s: %w", dst, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

var (
	// git describe's form some commits after a tag: v1.2.3-4-gabc1234[-dirty].
	afterTag       = regexp.MustCompile(`^(.+)-([0-9]+)-g([0-9a-f]+)(-dirty)?$`)
	releaseVersion = regexp.MustCompile(`^v?([0-9]+\.[0-9]+\.[0-9]+)(-[0-9A-Za-z.-]+)?$`)
	debianSafe     = regexp.MustCompile(`[^0-9A-Za-z.+~]`)
)

// DebVersion turns a keyshare version into a Debian one: v1.2.3 is 1.2.3,
// v1.2.3-rc.1 is 1.2.3~rc.1 (sorts before 1.2.3), v1.2.3-4-gabc1234 (git
// describe, 4 commits after the tag) is 1.2.3+git4.abc1234 (sorts after
// it), and a build from a checkout without tags (a commit, maybe -dirty) is
// 0.0.0~git.<describe>.
func DebVersion(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", fmt.Errorf("empty version: pass -version (make deb sets it from git describe)")
	}
	if m := afterTag.FindStringSubmatch(v); m != nil && releaseVersion.MatchString(m[1]) {
		base, err := DebVersion(m[1])
		if err != nil {
			return "", err
		}
		out := base + "+git" + m[2] + "." + m[3]
		if m[4] != "" {
			out += ".dirty"
		}
		return out, nil
	}
	if m := releaseVersion.FindStringSubmatch(v); m != nil {
		if m[2] == "" {
			return m[1], nil
		}
		return m[1] + "~" + debianSafe.ReplaceAllString(m[2][1:], "."), nil
	}
	return "0.0.0~git." + debianSafe.ReplaceAllString(v, "."), nil
}
