package kmsplugin

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	kmsapi "k8s.io/kms/apis/v2"
	kmsservice "k8s.io/kms/pkg/service"

	"k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2"
)

// echoService answers at once: BenchmarkSocketOnly measures the KMS v2
// transport alone (the apiserver's client, the unix socket, gRPC), the
// part of the plugin's latency that is not Vault.
type echoService struct{}

func (echoService) Encrypt(_ context.Context, _ string, data []byte) (*kmsservice.EncryptResponse, error) {
	return &kmsservice.EncryptResponse{Ciphertext: data, KeyID: "k"}, nil
}
func (echoService) Decrypt(_ context.Context, _ string, r *kmsservice.DecryptRequest) ([]byte, error) {
	return r.Ciphertext, nil
}
func (echoService) Status(context.Context) (*kmsservice.StatusResponse, error) {
	return &kmsservice.StatusResponse{Version: "v2", Healthz: "ok", KeyID: "k"}, nil
}

func BenchmarkSocketOnly(b *testing.B) {
	c := serveOnSocket(b, echoService{})
	seed := make([]byte, 32)
	for b.Loop() {
		if _, err := c.Encrypt(context.Background(), "u", seed); err != nil {
			b.Fatal(err)
		}
	}
}

// serveOnSocket serves svc on a fresh unix socket with the plugin's gRPC
// options until the benchmark ends, and returns the apiserver's KMS v2
// client dialed to it.
func serveOnSocket(b *testing.B, svc kmsservice.Service) kmsservice.Service {
	b.Helper()
	path := filepath.Join(b.TempDir(), "s.sock")
	sock, err := ListenSocket(path, "")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(ServerOptions()...)
	kmsapi.RegisterKeyManagementServiceServer(gs, kmsservice.NewGRPCService(path, time.Second, svc))
	go func() { _ = gs.Serve(sock) }()
	b.Cleanup(gs.Stop)
	c, err := kmsv2.NewGRPCService(context.Background(), "unix://"+path, "bench", 3*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	return c
}
