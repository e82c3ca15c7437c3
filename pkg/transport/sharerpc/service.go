package sharerpc

import (
	"context"
	"log/slog"

	"github.com/keyshare/keyshare/pkg/transport/sharerpc/sharepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// service adapts a Handler to the generated ShareServiceServer: it finds
// the verified peer, checks inputs, and maps errors at the boundary.
type service struct {
	sharepb.UnimplementedShareServiceServer
	h   Handler
	log *slog.Logger
}

var _ sharepb.ShareServiceServer = (*service)(nil)

func (s *service) Release(ctx context.Context, m *sharepb.ReleaseRequest) (*sharepb.ReleaseResponse, error) {
	p, err := peerOf(ctx)
	if err != nil {
		return nil, err
	}
	req, err := releaseFromPB(m)
	if err != nil {
		return nil, invalid(err)
	}
	shares, err := s.h.Release(ctx, p, req)
	if err != nil {
		return nil, s.fail("Release", p, err)
	}
	return &sharepb.ReleaseResponse{Shares: sharesToPB(shares)}, nil
}

func (s *service) Manifest(ctx context.Context, _ *sharepb.ManifestRequest) (*sharepb.ManifestResponse, error) {
	p, err := peerOf(ctx)
	if err != nil {
		return nil, err
	}
	man, err := s.h.Manifest(ctx, p)
	if err != nil {
		return nil, s.fail("Manifest", p, err)
	}
	return manifestAnswerToPB(man), nil
}

func (s *service) Stage(ctx context.Context, m *sharepb.StageRequest) (*sharepb.StageResponse, error) {
	defer zeroShares(m.GetShares())
	p, err := peerOf(ctx)
	if err != nil {
		return nil, err
	}
	req, err := stageFromPB(m)
	if err != nil {
		return nil, invalid(err)
	}
	if err := s.h.Stage(ctx, p, req); err != nil {
		return nil, s.fail("Stage", p, err)
	}
	return &sharepb.StageResponse{}, nil
}

func (s *service) Commit(ctx context.Context, m *sharepb.CommitRequest) (*sharepb.CommitResponse, error) {
	p, err := peerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.h.Commit(ctx, p, m.GetGeneration()); err != nil {
		return nil, s.fail("Commit", p, err)
	}
	return &sharepb.CommitResponse{}, nil
}

func (s *service) Abort(ctx context.Context, m *sharepb.AbortRequest) (*sharepb.AbortResponse, error) {
	p, err := peerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.h.Abort(ctx, p, m.GetGeneration()); err != nil {
		return nil, s.fail("Abort", p, err)
	}
	return &sharepb.AbortResponse{}, nil
}

// fail maps a Handler error to a status and logs internal errors.
func (s *service) fail(method string, p Peer, err error) error {
	st, internal := toStatus(err)
	if internal {
		s.log.Error("share service call failed", "method", method, "peer", p.ID.String(), "addr", p.Addr.String(), "err", err)
	}
	return st
}

// peerOf returns the verified peer of a call. The TLS handshake already
// refused unverified peers; this is a second lock on the same door.
func peerOf(ctx context.Context) (Peer, error) {
	gp, ok := peer.FromContext(ctx)
	if !ok {
		return Peer{}, status.Error(codes.Unauthenticated, "no peer information")
	}
	id, role, err := peerIdentity(gp)
	if err != nil {
		return Peer{}, status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	p := Peer{ID: id, Role: string(role)}
	if ap, err := netipAddrPort(gp.Addr); err == nil {
		p.Addr = ap
	}
	return p, nil
}

func invalid(err error) error {
	return status.Error(codes.InvalidArgument, "invalid request: "+err.Error())
}

func statusInternal() error { return status.Error(codes.Internal, internalMessage) }
