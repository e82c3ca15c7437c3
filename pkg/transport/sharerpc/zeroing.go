package sharerpc

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/keyshare/keyshare/pkg/transport/sharerpc/sharepb"
)

// zeroingCodec is the server's codec. It is gRPC's proto codec, except for
// a ReleaseResponse: the shares are marshaled into a buffer of this codec's
// own, the message's share values (which are the Handler's slices, see
// sharesToPB) are zeroed right after, and the buffer itself is zeroed when
// gRPC frees it, which it does once the HTTP/2 writer has handed the bytes
// to TLS. So a released bundle does not linger in the holder's memory
// after it is sent. (The TLS layer encrypts the record in place.)
type zeroingCodec struct{}

var _ encoding.CodecV2 = zeroingCodec{}

// zeroAbove makes the response buffer larger than gRPC's pooling
// threshold (1 KiB), so that gRPC reference-counts it and calls our pool's
// Put when it is done with it; smaller buffers are left to the GC.
const zeroAbove = 1<<10 + 1

func protoCodec() encoding.CodecV2 { return encoding.GetCodecV2(grpcproto.Name) }

func (zeroingCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(*sharepb.ReleaseResponse)
	if !ok {
		return protoCodec().Marshal(v)
	}
	defer zeroShares(m.GetShares())
	size := proto.Size(m)
	buf := make([]byte, 0, max(size, zeroAbove))
	buf, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf, m)
	if err != nil {
		clear(buf[:cap(buf)])
		return nil, fmt.Errorf("failed to marshal the release response: %w", err)
	}
	return mem.BufferSlice{mem.NewBuffer(&buf, zeroingPool{})}, nil
}

func (zeroingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return protoCodec().Unmarshal(data, v)
}

func (zeroingCodec) Name() string { return grpcproto.Name }

// zeroingPool is the "pool" of response buffers: it never reuses one, it
// only zeroes it when gRPC gives it back.
type zeroingPool struct{}

func (zeroingPool) Get(n int) *[]byte {
	b := make([]byte, n)
	return &b
}

func (zeroingPool) Put(b *[]byte) { clear((*b)[:cap(*b)]) }
