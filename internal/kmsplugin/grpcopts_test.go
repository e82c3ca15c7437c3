package kmsplugin

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2"
	kmsapi "k8s.io/kms/apis/v2"
	kmsservice "k8s.io/kms/pkg/service"
)

// TestServerSendsNoPings: the KMS socket's server never pings the
// apiserver. With gRPC's default dynamic window it sends a BDP ping for
// the data of each call, which costs both processes two more wake-ups per
// call (ServerOptions). The frames the server writes are parsed and its
// PINGs counted (acknowledgements of the client's own pings are fine).
func TestServerSendsNoPings(t *testing.T) {
	var fl *frameListener
	const calls = 20
	gs := encryptCalls(t, echoService{}, func(l net.Listener) net.Listener { fl = &frameListener{Listener: l}; return fl }, calls)
	gs.Stop() // closes the connection: the frame reader sees EOF
	fl.wait()
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.frames == 0 {
		t.Fatal("no server frame parsed: the check sees nothing")
	}
	if fl.pings != 0 {
		t.Fatalf("the server sent %d PING frames in %d calls, want none (BDP estimation is on)", fl.pings, calls)
	}
}

// frameListener copies what the server writes on each connection into an
// HTTP/2 frame parser.
type frameListener struct {
	net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	frames int
	pings  int
}

func (l *frameListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		fr := http2.NewFramer(nil, pr)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				_ = pr.CloseWithError(err)
				return
			}
			l.mu.Lock()
			l.frames++
			if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
				l.pings++
			}
			l.mu.Unlock()
		}
	}()
	return &teeConn{Conn: c, w: pw}, nil
}

func (l *frameListener) wait() { l.wg.Wait() }

// teeConn hands a copy of every write to w and closes w with the conn.
type teeConn struct {
	net.Conn
	w    *io.PipeWriter
	once sync.Once
}

func (c *teeConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		_, _ = c.w.Write(b[:n])
	}
	return n, err
}

func (c *teeConn) Close() error {
	c.once.Do(func() { _ = c.w.Close() })
	return c.Conn.Close()
}

// TestCallsRunOnWorkers: sequential calls are served by the few worker
// goroutines of ServerOptions, not by a new goroutine each.
func TestCallsRunOnWorkers(t *testing.T) {
	svc := &goroutineService{ids: map[string]int{}}
	const calls = 20
	gs := encryptCalls(t, svc, nil, calls)
	defer gs.Stop()
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if len(svc.ids) > grpcWorkers {
		t.Fatalf("%d calls ran on %d goroutines, want at most %d workers", calls, len(svc.ids), grpcWorkers)
	}
}

// goroutineService records which goroutine ran each Encrypt.
type goroutineService struct {
	echoService
	mu  sync.Mutex
	ids map[string]int
}

func (s *goroutineService) Encrypt(ctx context.Context, uid string, data []byte) (*kmsservice.EncryptResponse, error) {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ")
	s.mu.Lock()
	s.ids[id]++
	s.mu.Unlock()
	return s.echoService.Encrypt(ctx, uid, data)
}

// encryptCalls serves svc on a fresh KMS socket with ServerOptions (its
// listener wrapped by wrap, if not nil), makes calls sequential Encrypt
// calls from the apiserver's kmsv2 client, closes the client and returns
// the server, still serving, for the caller to stop.
func encryptCalls(t *testing.T, svc kmsservice.Service, wrap func(net.Listener) net.Listener, calls int) *grpc.Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	var sock net.Listener
	sock, err := ListenSocket(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		sock = wrap(sock)
	}
	gs := grpc.NewServer(ServerOptions()...)
	kmsapi.RegisterKeyManagementServiceServer(gs, kmsservice.NewGRPCService(path, time.Second, svc))
	go func() { _ = gs.Serve(sock) }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := kmsv2.NewGRPCService(ctx, "unix://"+path, "test", 3*time.Second)
	if err != nil {
		gs.Stop()
		t.Fatal(err)
	}
	for range calls {
		if _, err := c.Encrypt(ctx, "u", make([]byte, 32)); err != nil {
			gs.Stop()
			t.Fatal(err)
		}
	}
	return gs
}
