// Command packaging builds keyshare's Debian packages (holder, unsealer and
// the KMS plugin) with nfpm used as a Go library:
//
//	go run . -root .. -bin ../bin/static -out ../bin/deb -version v1.2.3
//
// `make deb` builds the static binaries and runs it. This is a module of its
// own (packaging/go.mod) so that nfpm's dependencies (go-git, ssh, several
// compressors, sprig) never enter keyshare's go.mod or its daemons' builds.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "packaging:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("packaging", flag.ContinueOnError)
	var o Options
	fs.StringVar(&o.Root, "root", "..", "the keyshare repository (configs/ is read from it)")
	fs.StringVar(&o.BinDir, "bin", "../bin/static", "folder with the static holder, unsealer and kmsplugin binaries")
	fs.StringVar(&o.OutDir, "out", "../bin/deb", "folder for the .deb files")
	fs.StringVar(&o.Version, "version", "", "release version (v1.2.3, or git describe's output)")
	fs.StringVar(&o.Arch, "arch", "amd64", "Debian architecture of the binaries")
	epoch := fs.Int64("mtime", 0, "file modification time in the packages, Unix seconds (0: SOURCE_DATE_EPOCH, else now)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *epoch != 0 {
		o.MTime = time.Unix(*epoch, 0).UTC()
	}
	debs, err := Build(o)
	if err != nil {
		return err
	}
	for _, d := range debs {
		fmt.Println(d)
	}
	return nil
}
