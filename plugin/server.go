package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/mcusign/mcusign/plugin/pb"
	"github.com/mcusign/mcusign/signer"
)

// server adapts a Service to the generated gRPC interface. It only
// translates; every decision is the Service's.
type server struct {
	pb.UnimplementedSignerServer
	svc Service
}

// NewServer returns the gRPC server side of svc.
func NewServer(svc Service) pb.SignerServer { return &server{svc: svc} }

// toStatus keeps the code of an *Error (or of a gRPC status) and turns
// anything else into codes.Unknown with the same message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return status.Error(e.Code, e.Msg)
	}
	if s, ok := status.FromError(err); ok {
		return s.Err()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

func (s *server) Sign(stream pb.Signer_SignServer) error {
	first, err := stream.Recv()
	if err != nil {
		if err == io.EOF {
			return status.Error(codes.InvalidArgument, "empty sign request: send a SignStart message first")
		}
		return err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "a sign request must begin with a SignStart message")
	}
	hash, err := hashFromPB(start.Hash)
	if err != nil {
		return toStatus(err)
	}
	if start.Size > 1<<62 {
		return status.Errorf(codes.InvalidArgument, "declared image size %d is out of range", start.Size)
	}
	size := int64(start.Size)
	in := SignInput{
		KeyURI: start.KeyUri,
		Hash:   hash,
		Pure:   start.Pure,
		Size:   size,
		Digest: start.Digest,
		Read:   func(ctx context.Context) ([]byte, error) { return receive(ctx, stream, size) },
	}
	out, err := s.svc.Sign(stream.Context(), in)
	if err != nil {
		return toStatus(err)
	}
	if wantsTiming(stream.Context()) {
		stream.SetTrailer(metadata.Pairs(timingTrailer, out.Timing.encode()))
	}
	return stream.SendAndClose(&pb.SignResponse{
		Signature:      out.Signature,
		Digest:         out.Digest,
		KeyType:        string(out.KeyType),
		KeyFingerprint: out.Fingerprint,
		AuditSeq:       out.AuditSeq,
	})
}

// receive collects exactly size bytes of chunks into one buffer allocated
// up front (the service has checked size against its limit; the
// allocation is capped all the same). Recv runs in its own goroutine so
// that ctx (the daemon's request deadline) can end a stalled upload; when
// the handler returns, gRPC cancels the stream and the goroutine's Recv
// fails, so it does not outlive the request.
func receive(ctx context.Context, stream pb.Signer_SignServer, size int64) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		buf := make([]byte, 0, min(size, 256<<20))
		for {
			m, err := stream.Recv()
			if err == io.EOF {
				if int64(len(buf)) != size {
					ch <- result{err: Errorf(codes.InvalidArgument, "the client declared %d bytes but sent %d", size, len(buf))}
					return
				}
				ch <- result{b: buf}
				return
			}
			if err != nil {
				ch <- result{err: fmt.Errorf("receiving the image: %w", err)}
				return
			}
			if m.GetStart() != nil {
				ch <- result{err: Errorf(codes.InvalidArgument, "a sign request carries one SignStart, followed by data chunks only")}
				return
			}
			d := m.GetData()
			if int64(len(buf))+int64(len(d)) > size {
				ch <- result{err: Errorf(codes.InvalidArgument, "the client sent more than the %d bytes it declared", size)}
				return
			}
			buf = append(buf, d...)
		}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *server) PublicKey(ctx context.Context, req *pb.PublicKeyRequest) (*pb.KeyInfo, error) {
	p, err := purposeFromPB(req.Purpose)
	if err != nil {
		return nil, toStatus(err)
	}
	k, err := s.svc.PublicKey(ctx, req.KeyUri, p)
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := keyToPB(k)
	return out, toStatus(err)
}

func (s *server) ListKeys(ctx context.Context, req *pb.ListKeysRequest) (*pb.ListKeysResponse, error) {
	keys, err := s.svc.ListKeys(ctx, req.TokenUri)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListKeysResponse{}
	for i := range keys {
		k, err := keyToPB(&keys[i])
		if err != nil {
			return nil, toStatus(err)
		}
		out.Keys = append(out.Keys, k)
	}
	return out, nil
}

func (s *server) GenerateKey(ctx context.Context, req *pb.GenerateKeyRequest) (*pb.KeyInfo, error) {
	kt, err := signer.ParseKeyType(req.Type)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	k, err := s.svc.GenerateKey(ctx, req.KeyUri, kt)
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := keyToPB(k)
	return out, toStatus(err)
}

func (s *server) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	st, err := s.svc.Status(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := statusToPB(st)
	return out, toStatus(err)
}
