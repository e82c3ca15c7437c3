package sharerpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// rawCodec sends and receives message bytes as they are, so that a test
// can put arbitrary bytes where the protobuf message goes.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

const (
	releaseMethod = "/" + ServiceName + "/Release"
	stageMethod   = "/" + ServiceName + "/Stage"
)

// TestMalformedMessagesRefused sends bytes that are not the protobuf
// messages the methods expect, from an authorized coordinator, and checks
// that each is refused with a status, none reaches the handler, and the
// connection and the server keep serving.
func TestMalformedMessagesRefused(t *testing.T) {
	f := newFixture(t)
	addr := hostileServer(t, f, 10*time.Second)
	c := probeClient(t, f, addr, callTimeout)
	deep := bytes.Repeat([]byte{15<<3 | 3}, 20000) // 20000 nested groups
	type tc struct {
		method string
		body   []byte
		want   codes.Code
	}
	run := func(t *testing.T, tc tc) {
		var out []byte
		err := c.conn.Invoke(context.Background(), tc.method, tc.body, &out, grpc.ForceCodecV2(rawCodec{}))
		if got := status.Code(err); got != tc.want {
			t.Fatalf("got %v (%v), want %v", got, err, tc.want)
		}
	}
	for name, tc := range map[string]tc{
		"fail/garbage":               {method: releaseMethod, body: bytes.Repeat([]byte{0xff}, 100), want: codes.Internal},
		"fail/truncated-varint":      {method: releaseMethod, body: []byte{0x10, 0x80}, want: codes.Internal},
		"fail/length-past-end":       {method: releaseMethod, body: []byte{0x0a, 0xff, 0xff, 0xff, 0x0f}, want: codes.Internal},
		"fail/invalid-utf8":          {method: releaseMethod, body: []byte{0x0a, 0x02, 0xc3, 0x28}, want: codes.Internal},
		"fail/wrong-wire-type":       {method: releaseMethod, body: []byte{0x08, 0x01}, want: codes.InvalidArgument},
		"fail/deep-nesting":          {method: stageMethod, body: deep, want: codes.Internal},
		"fail/unknown-fields-60KiB":  {method: releaseMethod, body: append([]byte{0xfa, 0x06, 0x80, 0xe0, 0x03}, make([]byte, 60<<10)...), want: codes.InvalidArgument},
		"fail/empty-stage":           {method: stageMethod, body: nil, want: codes.InvalidArgument},
		"fail/just-over-size-limit":  {method: releaseMethod, body: append([]byte{0xfa, 0x06, 0x80, 0x80, 0x04}, make([]byte, 64<<10)...), want: codes.ResourceExhausted},
		"fail/unknown-method":        {method: "/" + ServiceName + "/Export", body: nil, want: codes.Unimplemented},
		"fail/unknown-service":       {method: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", body: nil, want: codes.Unimplemented},
		"fail/stage-shares-no-manif": {method: stageMethod, body: []byte{0x08, 0x02, 0x12, 0x03, 0x08, 0x01, 0x12}, want: codes.Internal},
	} {
		t.Run(name, func(t *testing.T) { run(t, tc) })
	}

	// Oversized metadata: over the server's 16 KiB header list limit.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-junk", strings.Repeat("j", 20<<10))
	if _, err := c.Release(ctx, "vault-1", 1); status.Code(errorsUnwrapStatus(err)) == codes.OK {
		t.Fatal("Release with 20 KiB of metadata succeeded")
	}
	if n := f.h.calls.Load(); n != 0 {
		t.Fatalf("handler called %d times for malformed messages", n)
	}
	if _, err := c.Release(context.Background(), "vault-1", 1); err != nil {
		t.Fatalf("Release after the malformed messages: %v", err)
	}
}

// h2conn speaks raw HTTP/2 to the share service over mutual TLS, to send
// gRPC frames no gRPC client would.
type h2conn struct {
	t      *testing.T
	conn   *tls.Conn
	fr     *http2.Framer
	enc    *hpack.Encoder
	buf    bytes.Buffer
	stream uint32
}

func dialH2(t *testing.T, f *fixture, addr string) *h2conn {
	t.Helper()
	cfg := f.unsealer.ClientConfig(expectHolder())
	cfg.NextProtos = []string{"h2"}
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(hostileAttackIP + ":0"))}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := &h2conn{t: t, conn: conn, fr: http2.NewFramer(conn, conn), stream: 1}
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.enc = hpack.NewEncoder(&h.buf)
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return h
}

// call sends one request on a new stream: headers (extra pairs appended),
// then each of data as a DATA frame, the last ending the stream. It returns
// the grpc-status of the answer, or -1 if the server reset the stream or
// the connection.
func (h *h2conn) call(path string, extra []string, data ...[]byte) int {
	h.t.Helper()
	h.buf.Reset()
	hdrs := append([]string{":method", "POST", ":scheme", "https", ":path", path, ":authority", "holder",
		"content-type", "application/grpc", "te", "trailers"}, extra...)
	for i := 0; i < len(hdrs); i += 2 {
		_ = h.enc.WriteField(hpack.HeaderField{Name: hdrs[i], Value: hdrs[i+1]})
	}
	id := h.stream
	h.stream += 2
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.buf.Bytes(), EndHeaders: true}); err != nil {
		h.t.Fatal(err)
	}
	for i, d := range data {
		if err := h.fr.WriteData(id, i == len(data)-1, d); err != nil {
			h.t.Fatal(err)
		}
	}
	_ = h.conn.SetReadDeadline(time.Now().Add(callTimeout))
	for {
		fr, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatalf("reading the answer on stream %d: %v", id, err)
		}
		switch fr := fr.(type) {
		case *http2.SettingsFrame:
			if !fr.IsAck() {
				_ = h.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !fr.IsAck() {
				_ = h.fr.WritePing(true, fr.Data)
			}
		case *http2.GoAwayFrame:
			return -1
		case *http2.RSTStreamFrame:
			if fr.StreamID == id {
				return -1
			}
		case *http2.MetaHeadersFrame:
			if fr.StreamID != id || !fr.StreamEnded() {
				continue
			}
			for _, hf := range fr.Fields {
				if hf.Name == "grpc-status" {
					code, _ := strconv.Atoi(hf.Value)
					return code
				}
			}
			h.t.Fatalf("answer on stream %d carries no grpc-status (HTTP %s)", id, fr.PseudoValue("status"))
		}
	}
}

// grpcFrame is a gRPC length-prefixed message: flag, declared length, body.
func grpcFrame(flag byte, length uint32, body []byte) []byte {
	b := make([]byte, 5, 5+len(body))
	b[0] = flag
	binary.BigEndian.PutUint32(b[1:], length)
	return append(b, body...)
}

// TestMalformedFramesRefused sends gRPC framing that lies: a length prefix
// of 4 GiB, a message cut short, a compressed flag without compression, two
// messages to a unary method. Each call gets a status or a reset, the
// handler never runs, and the holder keeps answering health checks.
func TestMalformedFramesRefused(t *testing.T) {
	f := newFixture(t)
	addr := hostileServer(t, f, 10*time.Second)
	h := dialH2(t, f, addr)
	valid := []byte{0x0a, 0x07, 'v', 'a', 'u', 'l', 't', '-', '1', 0x10, 0x01}
	type tc struct {
		extra []string
		data  [][]byte
		want  codes.Code
	}
	run := func(t *testing.T, tc tc) {
		got := h.call(releaseMethod, tc.extra, tc.data...)
		if got != int(tc.want) {
			t.Fatalf("got grpc-status %d, want %d (%v)", got, tc.want, tc.want)
		}
	}
	for name, tc := range map[string]tc{
		"fail/length-4GiB":            {data: [][]byte{grpcFrame(0, 0xFFFFFFFF, []byte{1, 2, 3})}, want: codes.ResourceExhausted},
		"fail/length-over-limit":      {data: [][]byte{grpcFrame(0, 64<<10+1, nil)}, want: codes.ResourceExhausted},
		"fail/cut-short":              {data: [][]byte{grpcFrame(0, 100, []byte{1, 2, 3})}, want: codes.Internal},
		"fail/half-a-prefix":          {data: [][]byte{{0, 0, 0}}, want: codes.Internal},
		"fail/compressed-no-encoding": {data: [][]byte{grpcFrame(1, uint32(len(valid)), valid)}, want: codes.Internal},
		"fail/bad-flag":               {data: [][]byte{grpcFrame(0x80, uint32(len(valid)), valid)}, want: codes.Internal},
		"fail/gzip-garbage":           {extra: []string{"grpc-encoding", "gzip"}, data: [][]byte{grpcFrame(1, 4, []byte{1, 2, 3, 4})}, want: codes.Unimplemented},
		"fail/two-messages-unary":     {data: [][]byte{grpcFrame(0, uint32(len(valid)), valid), grpcFrame(0, uint32(len(valid)), valid)}, want: codes.Internal},
		"fail/empty-stream":           {data: [][]byte{{}}, want: codes.Internal},
	} {
		t.Run(name, func(t *testing.T) { run(t, tc) })
	}
	if n := f.h.calls.Load(); n != 0 {
		t.Fatalf("handler called %d times for malformed frames", n)
	}
	// The same raw connection still carries a well-formed call.
	if got := h.call(releaseMethod, nil, grpcFrame(0, uint32(len(valid)), valid)); got != 0 {
		t.Fatalf("well-formed Release on the raw connection: grpc-status %d", got)
	}
	if err := probeClient(t, f, addr, callTimeout).Health(context.Background()); err != nil {
		t.Fatalf("health after the malformed frames: %v", err)
	}
}
