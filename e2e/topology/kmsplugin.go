package topology

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
)

// The KMS v2 plugin on simulated kube-apiserver hosts (the third part of
// the system): each plugin has its own loopback address, folder, config,
// token file and socket, and connects to Vault from its address, so Vault's
// token_bound_cidrs are exercised for real. Its log goes to LogDir with
// every other daemon's.

// KMS plugin hosts.
const (
	// KMSHostA and KMSHostB are two apiserver nodes; KMSHostC logs in
	// with its certificate instead of a token file.
	KMSHostA = "127.0.0.41"
	KMSHostB = "127.0.0.42"
	KMSHostC = "127.0.0.43"
	// KMSHostD presents host C's certificate from another address.
	KMSHostD = "127.0.0.44"
)

// BuildKMSPlugin builds cmd/kmsplugin into dir (with -race if race) and
// returns its path.
func BuildKMSPlugin(ctx context.Context, dir string, race bool) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", filepath.Join(dir, "kmsplugin")}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/kmsplugin")...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("failed to build kmsplugin in %s: %w\n%s", root, err, out.String())
	}
	return filepath.Join(dir, "kmsplugin"), nil
}

// KMSPlugin is one `kmsplugin serve` on an apiserver host.
type KMSPlugin struct {
	Name string
	// IP is the host's address: the plugin connects to Vault from it.
	IP        string
	Dir       string
	Config    string
	Socket    string
	TokenFile string
	Process   *harness.Process
	Bin       string
}

// KMSPluginOptions tune NewKMSPlugin.
type KMSPluginOptions struct {
	// StatusInterval, StatusRetry and TokenCheck default to 2s, 200ms and
	// 200ms: quick enough for tests, far below what the apiserver needs.
	StatusInterval, StatusRetry, TokenCheck time.Duration
	// LogLevel defaults to debug: the most text for the leak check.
	LogLevel string
	// CertFile, KeyFile and CertRole, if set, make the plugin log in with
	// Vault's cert auth method (vault.auth: cert) instead of a token file.
	CertFile, KeyFile, CertRole string
}

// NewKMSPlugin lays out plugin name on host ip: its folder (outside LogDir:
// it holds the token file), its config naming every Vault node and Vault's
// CA, and its process (not started). Metrics listen on ip:0; the address is
// in the "kms plugin serving" log line.
func (t *Topology) NewKMSPlugin(bin, name, ip string, o KMSPluginOptions) (*KMSPlugin, error) {
	if o.StatusInterval == 0 {
		o.StatusInterval = 2 * time.Second
	}
	if o.StatusRetry == 0 {
		o.StatusRetry = 200 * time.Millisecond
	}
	if o.TokenCheck == 0 {
		o.TokenCheck = 200 * time.Millisecond
	}
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	dir := t.path("kms", name)
	if err := mkdirs(dir); err != nil {
		return nil, err
	}
	p := &KMSPlugin{Name: name, IP: ip, Dir: dir, Config: filepath.Join(dir, "kmsplugin.yaml"),
		Socket: filepath.Join(dir, "kms.sock"), TokenFile: filepath.Join(dir, "vault-token"), Bin: bin}
	cfg := fmt.Sprintf(`# kmsplugin %[1]s on host %[2]s (written by e2e/topology)
provider_name: keyshare
socket:
  path: %[3]s
vault:
  ca_file: %[4]s
  timeout: 2s
  nodes:
%[5]s  source_addr: %[2]s
  mount: transit
  key: kubernetes
  token_file: %[6]s
  token_check: %[7]s
status:
  interval: %[8]s
  retry_interval: %[9]s
  max_age: 30s
metrics_listen: %[2]s:0
log_level: %[10]s
`, name, ip, p.Socket, t.Vault.CAPath, t.vaultNodesYAML(), p.TokenFile, o.TokenCheck, o.StatusInterval, o.StatusRetry, o.LogLevel)
	if o.CertRole != "" {
		cfg = strings.Replace(cfg, "  mount: transit\n", fmt.Sprintf("  auth: cert\n  cert_file: %s\n  key_file: %s\n  cert_role: %s\n  mount: transit\n",
			o.CertFile, o.KeyFile, o.CertRole), 1)
	}
	if err := writeConfig(p.Config, cfg); err != nil {
		return nil, err
	}
	p.Process = &harness.Process{
		Name: "kmsplugin-" + name, Path: bin, Args: []string{"serve", "-c", p.Config},
		LogPath: filepath.Join(t.LogDir, "kmsplugin-"+name+".log"),
	}
	return p, nil
}

// String names the plugin and its host.
func (p *KMSPlugin) String() string { return "kmsplugin " + p.Name + " (" + p.IP + ")" }

// WaitServing waits for the "kms plugin serving" log line after offset and
// returns the metrics address it names.
func (p *KMSPlugin) WaitServing(ctx context.Context, offset int64) (string, error) {
	e, err := WaitLog(ctx, p.Process, offset, map[string]string{"msg": "kms plugin serving"})
	if err != nil {
		return "", fmt.Errorf("%s never served: %w", p, err)
	}
	return e.Get("metrics"), nil
}

// KMSAdmin runs a kmsplugin provisioning command with the root token as
// VAULT_TOKEN (in the environment only: never in the transcript).
func (t *Topology) KMSAdmin(ctx context.Context, bin, config string, args ...string) (Result, error) {
	tok := t.RootToken()
	if tok == "" {
		return Result{}, fmt.Errorf("kmsplugin %s: no root token yet (run Init first)", strings.Join(args, " "))
	}
	return t.Run(ctx, CLI{Env: []string{"VAULT_TOKEN=" + tok}}, bin, append(args, "-c", config)...)
}

// SecretLeak is a named secret found in a file.
type SecretLeak struct {
	File, Name, Encoding string
}

func (l SecretLeak) String() string {
	return fmt.Sprintf("%s holds %s (%s)", l.File, l.Name, l.Encoding)
}

// ScanSecrets reads every regular file under roots and reports each named
// secret (a Vault token, a plaintext, a seed) found raw or in any encoding
// a share could take. Secrets shorter than 8 bytes are refused: they would
// match by chance.
func ScanSecrets(secrets map[string][]byte, roots ...string) ([]SecretLeak, int, error) {
	var needles []needle[SecretLeak]
	for name, v := range secrets {
		if len(v) < 8 {
			return nil, 0, fmt.Errorf("secret %s is %d bytes: too short to scan for", name, len(v))
		}
		needles = append(needles, needle[SecretLeak]{string(v), SecretLeak{Name: name, Encoding: "raw"}})
		for _, e := range encodings {
			needles = append(needles, needle[SecretLeak]{e.enc(v), SecretLeak{Name: name, Encoding: e.name}})
		}
	}
	return scanFiles(roots, needles, func(l SecretLeak, file string) SecretLeak { l.File = file; return l })
}
