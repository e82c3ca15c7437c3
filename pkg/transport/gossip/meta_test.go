package gossip

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

func TestMetaEncoding(t *testing.T) {
	hash := sha256.Sum256([]byte("manifest"))
	full := Meta{
		Role:         "holder",
		RPCAddr:      "holder-07.keyshare.internal.example.com:8443",
		Generation:   1<<64 - 1,
		Shares:       []uint8{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		ManifestHash: hash[:],
		Version:      "v1.2.3-rc.1+build.20261129",
	}
	type tc struct {
		name    string
		meta    Meta
		wantErr error
	}
	tests := []tc{
		{name: "ok/empty", meta: Meta{}},
		{name: "ok/full", meta: full},
		{name: "ok/many shares", meta: Meta{Role: "holder", Shares: bytes.Repeat([]byte{255}, 255)}},
		{name: "fail/over 512 bytes", meta: Meta{Role: "holder", Version: strings.Repeat("v", memberlist.MetaMaxSize)}, wantErr: ErrMetaTooLarge},
	}
	run := func(t *testing.T, tc tc) {
		b, err := EncodeMeta(tc.meta)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("EncodeMeta error = %v, want %v", err, tc.wantErr)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > memberlist.MetaMaxSize {
			t.Fatalf("encoded %d bytes, over the limit", len(b))
		}
		got, err := DecodeMeta(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.meta) {
			t.Fatalf("round trip = %+v, want %+v", got, tc.meta)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, tc) })
	}
	b, _ := EncodeMeta(full)
	t.Logf("a full Meta encodes to %d of %d bytes", len(b), memberlist.MetaMaxSize)

	if _, err := DecodeMeta([]byte("{not json")); err == nil {
		t.Error("DecodeMeta accepted garbage")
	}
	if _, err := DecodeMeta(make([]byte, memberlist.MetaMaxSize+1)); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("DecodeMeta of an oversized buffer: %v, want ErrMetaTooLarge", err)
	}
}

func TestMetaGossip(t *testing.T) {
	ca := newCA(t, testTrustDomain)
	cs := startCluster(t, ca, 90, 2)
	proctest.WaitForErr(t, 20*time.Second, "2 members to converge", func() error { return converged(cs) })

	hash := sha256.Sum256([]byte("manifest v2"))
	want := Meta{Role: "holder", RPCAddr: "127.0.0.92:9443", Generation: 2, Shares: []uint8{2, 5}, ManifestHash: hash[:], Version: "v2"}
	if err := cs[1].UpdateMeta(want); err != nil {
		t.Fatal(err)
	}
	seen := func() error {
		for _, m := range cs[0].Members() {
			if m.Name == cs[1].Name() && !reflect.DeepEqual(m.Meta, want) {
				return fmt.Errorf("%s sees meta %+v", cs[0].Name(), m.Meta)
			}
		}
		return nil
	}
	proctest.WaitForErr(t, 10*time.Second, "the update to spread", seen)
	timeout := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case ev := <-cs[0].Events():
			done = ev.Type == EventUpdate && ev.Member.Name == cs[1].Name() && reflect.DeepEqual(ev.Member.Meta, want)
		case <-timeout:
			t.Fatal("no update event")
		}
	}

	if err := cs[1].UpdateMeta(Meta{Version: strings.Repeat("x", 600)}); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("oversized UpdateMeta: %v, want ErrMetaTooLarge", err)
	}
	if err := cs[1].UpdateMeta(Meta{Role: "unsealer"}); err == nil {
		t.Fatal("UpdateMeta accepted a role that differs from the certificate's")
	}
	holdFor(t, time.Second, "a refused update changed the metadata", seen)
}

func TestNewRefusesBadConfig(t *testing.T) {
	ca := newCA(t, testTrustDomain)
	type tc struct {
		name   string
		mutate func(c *Config)
	}
	tests := []tc{
		{"fail/name differs from own certificate", func(c *Config) { c.Name = ca.ID("holder", "someone-else") }},
		{"fail/name not a SPIFFE ID", func(c *Config) { c.Name = "h1" }},
		{"fail/meta role differs", func(c *Config) { c.Meta.Role = "unsealer" }},
		{"fail/meta too large", func(c *Config) { c.Meta.Version = strings.Repeat("v", 600) }},
		{"fail/no client certificate required", func(c *Config) { c.ServerTLS.ClientAuth = 0 }},
		{"fail/no TLS", func(c *Config) { c.ClientTLS = nil }},
		{"fail/operator role", func(c *Config) {
			c.Name = ca.ID("operator", "op")
			c.ServerTLS, c.ClientTLS = tlsPair(ca, issue(t, ca, c.Name, hostIP(99)))
		}},
		{"fail/unspecified bind without advertise", func(c *Config) { c.BindAddr = "0.0.0.0:0" }},
	}
	run := func(t *testing.T, tc tc) {
		cfg := testConfig(t, ca, node{name: "holder/h1", ip: 99})
		tc.mutate(&cfg)
		c, err := New(cfg)
		if err == nil {
			_ = c.Shutdown()
			t.Fatal("New succeeded")
		}
		t.Log(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, tc) })
	}
}
