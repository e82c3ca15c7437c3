package identity

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// reloadFixture is a holder server with a CRL and an unsealer client.
type reloadFixture struct {
	p              *testPKI
	server, client *Source
	serverOpts     Options
	clientLeaf     *devpki.Leaf
	log            *logBuffer
}

func newReloadFixture(t *testing.T) *reloadFixture {
	t.Helper()
	f := &reloadFixture{p: newPKI(t, "ks.test"), log: &logBuffer{}}
	f.serverOpts = f.p.writeLeaf(t, f.p.leaf(t, RoleHolder, "h1"), "holder")
	f.serverOpts.CRLFile = filepath.Join(f.p.dir, "crl.pem")
	f.serverOpts.Logger = f.log.logger()
	if err := f.p.ca.WriteCRL(f.serverOpts.CRLFile); err != nil {
		t.Fatal(err)
	}
	f.server = mustNew(t, f.serverOpts)
	f.clientLeaf = f.p.leaf(t, RoleUnsealer, "u1")
	f.client = mustNew(t, f.p.writeLeaf(t, f.clientLeaf, "unsealer"))
	return f
}

func (f *reloadFixture) handshake(t *testing.T) outcome {
	t.Helper()
	return handshake(t, f.server.ServerConfig(AllowRoles(RoleUnsealer)), f.client.ClientConfig(AllowRoles(RoleHolder)))
}

func TestRevocationWithoutRestart(t *testing.T) {
	type tc struct{ watch bool }
	run := func(t *testing.T, c tc) {
		f := newReloadFixture(t)
		if c.watch {
			watch(t, f.server)
		}
		if o := f.handshake(t); !o.ok() {
			t.Fatalf("handshake before revocation: server: %v; client: %v", o.serverErr, o.clientErr)
		}
		if err := f.p.ca.WriteCRL(f.serverOpts.CRLFile, f.clientLeaf.Cert); err != nil {
			t.Fatal(err)
		}
		if !c.watch {
			if err := f.server.Reload(); err != nil {
				t.Fatal(err)
			}
		}
		var last outcome
		eventually(t, "the revoked client to be refused", func() bool {
			last = f.handshake(t)
			return !last.ok()
		})
		if !errContains(last.serverErr, "revoked") {
			t.Fatalf("server error %v; want it to name the revocation", last.serverErr)
		}
		if !strings.Contains(f.log.String(), "revoked") {
			t.Fatalf("refusal not logged; log:\n%s", f.log)
		}
	}
	t.Run("ok/reload-call", func(t *testing.T) { run(t, tc{}) })
	t.Run("ok/file-watch", func(t *testing.T) { run(t, tc{watch: true}) })
}

func TestCorruptCRLFailsClosed(t *testing.T) {
	f := newReloadFixture(t)
	watch(t, f.server)
	writeFile(t, f.serverOpts.CRLFile, []byte("-----BEGIN X509 CRL-----\nZ2FyYmFnZQ==\n-----END X509 CRL-----\n"))
	eventually(t, "handshakes to be refused", func() bool { return !f.handshake(t).ok() })
	if err := f.server.Reload(); !errContains(err, f.serverOpts.CRLFile) {
		t.Fatalf("Reload: %v; want an error naming %s", err, f.serverOpts.CRLFile)
	}
	if log := f.log.String(); !strings.Contains(log, "CRL unusable") {
		t.Fatalf("log does not say the CRL is unusable:\n%s", log)
	}
	// A CRL signed by another CA is refused the same way.
	if err := newPKI(t, "ks.test").ca.WriteCRL(f.serverOpts.CRLFile); err != nil {
		t.Fatal(err)
	}
	if err := f.server.Reload(); !errContains(err, "not signed by any CA") {
		t.Fatalf("Reload: %v; want a signature error", err)
	}
	if o := f.handshake(t); o.ok() {
		t.Fatal("handshake succeeded with a foreign CRL")
	}
	// Fixing the file opens the door again.
	if err := f.p.ca.WriteCRL(f.serverOpts.CRLFile); err != nil {
		t.Fatal(err)
	}
	eventually(t, "handshakes to succeed after the fix", func() bool { return f.handshake(t).ok() })
}

func TestRotationWithoutRestart(t *testing.T) {
	f := newReloadFixture(t)
	watch(t, f.server)
	o := f.handshake(t)
	if !o.ok() {
		t.Fatalf("handshake: server: %v; client: %v", o.serverErr, o.clientErr)
	}
	oldSerial := o.client.PeerCertificates[0].SerialNumber

	fresh := f.p.leaf(t, RoleHolder, "h1")
	f.p.writeLeaf(t, fresh, "holder")
	eventually(t, "the new certificate to be served", func() bool {
		o := f.handshake(t)
		return o.ok() && o.client.PeerCertificates[0].SerialNumber.Cmp(fresh.Cert.SerialNumber) == 0
	})
	if fresh.Cert.SerialNumber.Cmp(oldSerial) == 0 {
		t.Fatal("test bug: the new leaf has the old serial")
	}

	// Garbage in place of the certificate: the new one stays, and the
	// failure is logged by the watcher.
	writeFile(t, f.serverOpts.CertFile, []byte("garbage"))
	eventually(t, "the failed reload to be logged", func() bool {
		for _, line := range strings.Split(f.log.String(), "\n") {
			if strings.Contains(line, "identity reload failed") && strings.Contains(line, f.serverOpts.CertFile) &&
				strings.Contains(line, "failed to find any PEM data") {
				return true
			}
		}
		return false
	})
	if err := f.server.Reload(); !errContains(err, f.serverOpts.CertFile) {
		t.Fatalf("Reload: %v; want an error naming %s", err, f.serverOpts.CertFile)
	}
	o = f.handshake(t)
	if !o.ok() || o.client.PeerCertificates[0].SerialNumber.Cmp(fresh.Cert.SerialNumber) != 0 {
		t.Fatalf("after a failed reload: ok=%v, want the last good certificate served", o.ok())
	}
	// A key that does not match the certificate is refused too.
	writeFile(t, f.serverOpts.CertFile, fresh.CertPEM)
	writeFile(t, f.serverOpts.KeyFile, f.clientLeaf.KeyPEM)
	if err := f.server.Reload(); !errContains(err, "belong together") {
		t.Fatalf("Reload with a mismatched key: %v", err)
	}
	if o := f.handshake(t); !o.ok() {
		t.Fatalf("handshake after a refused key: server: %v; client: %v", o.serverErr, o.clientErr)
	}
}
