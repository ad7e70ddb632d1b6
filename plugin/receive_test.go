package plugin

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/status"

	"github.com/mcusign/mcusign/plugin/pb"
)

// endedStream is a sign stream whose client has gone: its context has
// ended and Recv fails the way gRPC's transport does then.
type endedStream struct {
	pb.Signer_SignServer
	ctx context.Context
}

func (s endedStream) Context() context.Context { return s.ctx }

func (s endedStream) Recv() (*pb.SignChunk, error) {
	return nil, status.FromContextError(s.ctx.Err()).Err()
}

// receive reports the stream's own context error, not the transport's
// status, so that a service whose ctx has not yet seen the cancellation
// (it reaches derived contexts a moment later) still knows why.
func TestReceiveReportsWhyTheStreamEnded(t *testing.T) {
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithTimeout(context.Background(), 0)
	defer cancel2()
	for _, tc := range []struct {
		ctx  context.Context
		want error
	}{{gone, context.Canceled}, {expired, context.DeadlineExceeded}} {
		_, err := receive(context.Background(), endedStream{ctx: tc.ctx}, 10)
		require.ErrorIs(t, err, tc.want)
	}
}
