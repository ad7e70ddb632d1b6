package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/mcusign/mcusign/plugin/fdpass"
	"github.com/mcusign/mcusign/plugin/pb"
	"github.com/mcusign/mcusign/plugin/peercred"
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
	in, err := signInput(start)
	if err != nil {
		return err
	}
	in.Read = func(ctx context.Context) ([]byte, error) { return receive(ctx, stream, in.Size) }
	resp, err := s.sign(stream.Context(), in, "stream")
	if err != nil {
		return err
	}
	return stream.SendAndClose(resp)
}

func (s *server) SignImage(ctx context.Context, req *pb.SignImageRequest) (*pb.SignResponse, error) {
	if req.Start == nil {
		return nil, status.Error(codes.InvalidArgument, "a SignImage request needs its SignStart")
	}
	in, err := signInput(req.Start)
	if err != nil {
		return nil, err
	}
	via := "message"
	switch {
	case req.RegionFile != nil:
		via = "file"
		f, err := passedFile(ctx, req.RegionFile)
		if err != nil {
			return nil, err
		}
		var release func()
		// Releasing the region and closing the file cost up to a tenth of
		// a millisecond (the last close frees the pages): done after the
		// request, off the client's wait. Nothing holds the region then.
		defer func() {
			go func() {
				if release != nil {
					release()
				}
				f.Close()
			}()
		}()
		in.Read = func(context.Context) ([]byte, error) {
			if in.Size <= copyRegionMax {
				// A copy costs less than a mapping up to here
				// (fdpass BenchmarkReceive).
				buf := getRegionBuf(int(in.Size))
				if err := fdpass.ReadInto(f, buf); err != nil {
					putRegionBuf(buf)
					return nil, Errorf(codes.InvalidArgument, "the image's memory file: %v", err)
				}
				release = func() { putRegionBuf(buf) }
				return buf, nil
			}
			b, unmap, err := fdpass.Map(f, in.Size)
			if err != nil {
				return nil, Errorf(codes.InvalidArgument, "the image's memory file: %v", err)
			}
			release = unmap
			return b, nil
		}
	case int64(len(req.Region)) != in.Size:
		return nil, status.Errorf(codes.InvalidArgument, "the client declared %d bytes but sent %d", in.Size, len(req.Region))
	default:
		in.Read = func(context.Context) ([]byte, error) { return req.Region, nil }
	}
	return s.sign(ctx, in, via)
}

// copyRegionMax is the largest passed region the daemon copies out of its
// memory file into a reused buffer; larger ones are mapped. At 64 KiB a
// copy took a tenth of a mapping's time here (fdpass BenchmarkReceive:
// mapping, then unmapping, which interrupts the other CPUs to flush their
// TLBs), and the daemon's CPU per signature fell 6–9 %; at 1 MiB a
// command's upload took 0.16–0.20 ms copied against 0.12 ms mapped.
const copyRegionMax = 256 << 10

// regionBufs holds a few buffers for copied regions, reused across
// requests (a sync.Pool would drop them at every other garbage
// collection, and a new buffer's pages fault in one by one).
var regionBufs = make(chan []byte, 4)

func getRegionBuf(n int) []byte {
	select {
	case b := <-regionBufs:
		if cap(b) >= n {
			return b[:n]
		}
	default:
	}
	return make([]byte, n, (n+64<<10-1)&^(64<<10-1))
}

func putRegionBuf(b []byte) {
	select {
	case regionBufs <- b:
	default:
	}
}

// passedFile claims the file a request names from its connection.
func passedFile(ctx context.Context, rf *pb.RegionFile) (*os.File, error) {
	var c *fdpass.Conn
	if p, ok := peer.FromContext(ctx); ok {
		if ai, ok := p.AuthInfo.(peercred.AuthInfo); ok {
			c, _ = ai.Conn.(*fdpass.Conn)
		}
	}
	if c == nil {
		return nil, status.Error(codes.Aborted, "this connection cannot pass files; send the region's bytes instead")
	}
	f, ok := c.Take(fdpass.ID{Dev: rf.Dev, Ino: rf.Ino})
	if !ok {
		return nil, status.Error(codes.Aborted, "the image's memory file did not arrive on this connection; send the region's bytes instead")
	}
	return f, nil
}

// signInput checks what a SignStart declares.
func signInput(start *pb.SignStart) (SignInput, error) {
	hash, err := hashFromPB(start.Hash)
	if err != nil {
		return SignInput{}, toStatus(err)
	}
	if start.Size > 1<<62 {
		return SignInput{}, status.Errorf(codes.InvalidArgument, "declared image size %d is out of range", start.Size)
	}
	return SignInput{KeyURI: start.KeyUri, Hash: hash, Pure: start.Pure, Size: int64(start.Size), Digest: start.Digest, KeyFingerprint: start.KeyFingerprint}, nil
}

// sign runs one request, from either RPC, through the service. The
// timing, with how the region came (via), goes in the call's trailer, for
// unary and stream calls alike.
func (s *server) sign(ctx context.Context, in SignInput, via string) (*pb.SignResponse, error) {
	out, err := s.svc.Sign(ctx, in)
	if err != nil {
		return nil, toStatus(err)
	}
	if wantsTiming(ctx) {
		out.Timing.Via = via
		_ = grpc.SetTrailer(ctx, metadata.Pairs(timingTrailer, out.Timing.encode()))
	}
	return &pb.SignResponse{
		Signature:      out.Signature,
		Digest:         out.Digest,
		KeyType:        string(out.KeyType),
		KeyFingerprint: out.Fingerprint,
		AuditSeq:       out.AuditSeq,
	}, nil
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
				// A stream that ended on its own context reports that
				// context's error, so the service sees the client went away
				// (or its deadline) even in the moment before the
				// cancellation reaches the handler's derived ctx.
				if cerr := stream.Context().Err(); cerr != nil {
					err = cerr
				}
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
