package kubeharness

import (
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	kmstypes "k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2/v2"
)

func TestParseBuildOutput(t *testing.T) {
	full := "KEYSHARE_KUBE_APISERVER_BIN=/c/kube-v1.34.4/kube-apiserver\nKEYSHARE_ETCD_BIN=/c/etcd-v3.6.4/etcd\nKEYSHARE_ETCDCTL_BIN=/c/etcd-v3.6.4/etcdctl\n"
	type testCase struct {
		name, out string
		want      Binaries
		err       string
	}
	tests := []testCase{
		{name: "ok/three lines", out: full,
			want: Binaries{APIServer: "/c/kube-v1.34.4/kube-apiserver", Etcd: "/c/etcd-v3.6.4/etcd", Etcdctl: "/c/etcd-v3.6.4/etcdctl"}},
		{name: "ok/noise around", out: "kube-build: done\n" + full + "\n",
			want: Binaries{APIServer: "/c/kube-v1.34.4/kube-apiserver", Etcd: "/c/etcd-v3.6.4/etcd", Etcdctl: "/c/etcd-v3.6.4/etcdctl"}},
		{name: "fail/empty", out: "", err: "printed no"},
		{name: "fail/no etcdctl", out: strings.Join(strings.Split(full, "\n")[:2], "\n"), err: "printed no"},
		{name: "fail/a bare path", out: "/c/kube-v1.34.4/kube-apiserver\n", err: "printed no"},
	}
	run := func(t *testing.T, tc testCase) {
		got, err := parseBuildOutput([]byte(tc.out))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
			return
		}
		if err != nil || got != tc.want {
			t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, tc) })
	}
}

func TestEncryptionConfig(t *testing.T) {
	tests := []struct {
		p    Provider
		want []string
		err  string
	}{
		{p: KMS, want: []string{"apiVersion: v2", "name: keyshare", "endpoint: unix:///run/kms.sock", "timeout: 3s"}},
		{p: Identity, want: []string{"- identity: {}"}},
		{p: AESCBC, want: []string{"- aescbc:", "name: k1", "secret: "}},
		{p: "secretbox", err: `unknown encryption provider "secretbox"`},
	}
	for _, tc := range tests {
		t.Run(string(tc.p), func(t *testing.T) {
			cfg, err := encryptionConfig(tc.p, "/run/kms.sock")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range append(tc.want, "kind: EncryptionConfiguration", "resources: [secrets]") {
				if !strings.Contains(cfg, w) {
					t.Errorf("config lacks %q:\n%s", w, cfg)
				}
			}
			if n := len(regexp.MustCompile(`(?m)^      - `).FindAllString(cfg, -1)); n != 1 {
				t.Errorf("%d providers, want exactly one:\n%s", n, cfg)
			}
		})
	}
}

func TestParseStored(t *testing.T) {
	obj, err := proto.Marshal(&kmstypes.EncryptedObject{KeyID: "vault-transit:transit/kubernetes:v2:1", EncryptedDEKSource: []byte("vault:v2:abc"),
		EncryptedData: []byte{1, 2, 3}, EncryptedDEKSourceType: kmstypes.EncryptedDEKSourceType_HKDF_SHA256_XNONCE_AES_GCM_SEED})
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseStored(append([]byte(StoredPrefix), obj...))
	if err != nil || st.KeyID != "vault-transit:transit/kubernetes:v2:1" || string(st.EncryptedDEKSource) != "vault:v2:abc" {
		t.Fatalf("ok/kms v2 value: %+v, %v", st, err)
	}
	for name, raw := range map[string][]byte{
		"fail/plaintext protobuf": []byte("k8s\x00\n\x0c\n\x02v1\x12\x06Secret"),
		"fail/aescbc":             []byte("k8s:enc:aescbc:v1:k1:xxxxxxxxxxxxxxxx"),
		"fail/other kms provider": append([]byte("k8s:enc:kms:v2:other:"), obj...),
		"fail/empty":              nil,
	} {
		if _, err := ParseStored(raw); err == nil || !strings.Contains(err.Error(), "want \""+StoredPrefix+"\"") {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if _, err := ParseStored(append([]byte(StoredPrefix), 0xff, 0xff, 0xff)); err == nil || !strings.Contains(err.Error(), "no EncryptedObject") {
		t.Errorf("fail/garbage after the prefix: err %v", err)
	}
}
