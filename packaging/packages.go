package main

import "os"

// User is the system user and group every keyshare daemon runs as (the
// systemd units say User=keyshare, Group=keyshare). Each package's preinst
// creates it if it is missing; nothing deletes it (see scripts/postrm).
const User = "keyshare"

// Dir is a folder a package owns, with the owner and mode the daemon needs.
type Dir struct {
	Path  string
	Owner string
	Group string
	Mode  os.FileMode
}

// Daemon is one .deb: a binary from cmd/, its systemd unit from
// configs/systemd, its example config from configs/ (a conffile), and the
// folders it needs.
type Daemon struct {
	// Package is the Debian package name.
	Package string
	// Binary is the command name, installed as /usr/bin/<Binary>.
	Binary string
	// Unit is the unit file in configs/systemd; UnitName the name it is
	// installed under in /lib/systemd/system.
	Unit, UnitName string
	// Config is the example config in configs/; ConfigAs where it goes.
	Config, ConfigAs string
	// Examples are more files from configs/, installed as documentation.
	Examples []string
	// Dirs are created by dpkg with these owners and modes.
	Dirs []Dir
	// Summary and Description go to the control file.
	Summary, Description string
	// KeepOnPurge names the folder purge leaves in place, if any.
	KeepOnPurge string
}

// The folders shared by the packages: configuration is root's and readable
// by the daemons' group, never writable by them.
var (
	etcDir = Dir{Path: "/etc/keyshare", Owner: "root", Group: User, Mode: 0o750}
	tlsDir = Dir{Path: "/etc/keyshare/tls", Owner: "root", Group: User, Mode: 0o750}
)

// Daemons are the three packages.
var Daemons = []Daemon{
	{
		Package: "keyshare-holder", Binary: "holder",
		Unit: "keyshare-holder.service", UnitName: "keyshare-holder.service",
		Config: "holder-a.yaml", ConfigAs: "/etc/keyshare/holder.yaml",
		Dirs: []Dir{etcDir, tlsDir,
			{Path: "/var/lib/keyshare", Owner: "root", Group: "root", Mode: 0o755},
			// The sealed store and the audit log (store.dir, audit.file):
			// the holder refuses a store folder that group or others can
			// read or write.
			{Path: "/var/lib/keyshare/holder", Owner: User, Group: User, Mode: 0o700},
		},
		Summary:     "keyshare holder: keeps Vault unseal-key shares sealed on disk",
		Description: "Holds Shamir shares of a Vault unseal key, encrypted at rest, and releases them over mutual TLS only to an authorized keyshare unsealer while the Vault node is sealed.",
		KeepOnPurge: "/var/lib/keyshare/holder",
	},
	{
		Package: "keyshare-unsealer", Binary: "unsealer",
		Unit: "keyshare-unsealer.service", UnitName: "keyshare-unsealer.service",
		Config: "unsealer.yaml", ConfigAs: "/etc/keyshare/unsealer.yaml",
		Dirs:        []Dir{etcDir, tlsDir},
		Summary:     "keyshare unsealer: unseals Vault from the holders' shares",
		Description: "Watches every Vault node and unseals a sealed one with a threshold of verified shares collected from keyshare holders; also the operator CLI (status, init, unseal, rekey).",
	},
	{
		Package: "keyshare-kmsplugin", Binary: "kmsplugin",
		Unit: "kmsplugin.service", UnitName: "keyshare-kmsplugin.service",
		Config: "kmsplugin.yaml", ConfigAs: "/etc/keyshare/kmsplugin.yaml",
		Examples: []string{"k8s/encryption-config.yaml", "k8s/kmsplugin-pod.yaml"},
		Dirs: []Dir{etcDir, tlsDir,
			// The host's Vault token (vault.token_file), mode 0600, written
			// by `kmsplugin token create|rotate` run as the keyshare user.
			{Path: "/etc/keyshare/kms", Owner: User, Group: User, Mode: 0o700},
		},
		Summary:     "keyshare KMS v2 plugin: Kubernetes Secrets encrypted by Vault transit",
		Description: "A Kubernetes KMS v2 plugin for the kube-apiserver on this node: it wraps the apiserver's seeds with a Vault transit key.",
	},
}
