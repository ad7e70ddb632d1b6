package plugin_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha512"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/plugin/pb"
	"github.com/mcusign/mcusign/plugin/peercred"
	"github.com/mcusign/mcusign/signer"
)

// stub records what the transport delivered.
type stub struct {
	mu      sync.Mutex
	in      plugin.SignInput
	payload []byte
	peer    *peercred.Cred
	pub     ed25519.PublicKey
	err     error
	noHash  bool // answer with the client's digest (transport benchmarks)
}

func (s *stub) Sign(ctx context.Context, in plugin.SignInput) (*plugin.SignOutput, error) {
	p, err := in.Read(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.in, s.payload = in, p
	s.peer, _ = peercred.FromContext(ctx)
	if s.err != nil {
		return nil, s.err
	}
	if s.noHash {
		return &plugin.SignOutput{Signature: []byte("signature"), Digest: in.Digest, KeyType: signer.Ed25519}, nil
	}
	d := sha512.Sum512(p)
	return &plugin.SignOutput{Signature: []byte("signature"), Digest: d[:], KeyType: signer.Ed25519}, nil
}

// got returns what Sign received.
func (s *stub) got() (plugin.SignInput, []byte, *peercred.Cred) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.in, s.payload, s.peer
}

func (s *stub) PublicKey(_ context.Context, uri string, p plugin.KeyPurpose) (*plugin.KeyInfo, error) {
	if s.err != nil {
		return nil, s.err
	}
	return &plugin.KeyInfo{Type: signer.Ed25519, URI: uri, Public: s.pub, Label: "fw", ID: []byte{1, 2}, Sensitive: true}, nil
}
func (s *stub) ListKeys(context.Context, string) ([]plugin.KeyInfo, error) { return nil, s.err }
func (s *stub) GenerateKey(context.Context, string, signer.KeyType) (*plugin.KeyInfo, error) {
	return nil, s.err
}
func (s *stub) Status(context.Context) (*plugin.Status, error) {
	return &plugin.Status{Version: "v", Mode: "standing", Keys: []plugin.KeyStatus{{Key: plugin.KeyInfo{URI: "pkcs11:object=a", Public: s.pub}, Signatures: 3}}}, nil
}

// serve runs the standing-mode gRPC server (peer credentials, no
// go-plugin services) on a unix socket and returns a connection to it.
func serve(t testing.TB, svc plugin.Service, refused *[]string) *grpc.ClientConn {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	var mu sync.Mutex
	cfg := plugin.ServerConfig{
		Creds:    peercred.NewServerCredentials(func(*peercred.Cred) error { return nil }),
		Standing: true,
		Refused: func(_ context.Context, m string) {
			mu.Lock()
			*refused = append(*refused, m)
			mu.Unlock()
		},
	}
	s := cfg.GRPCServer()(nil)
	pb.RegisterSignerServer(s, plugin.NewServer(svc))
	registerController(s, t)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	cc, err := grpc.Dial("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// A large image crosses in chunks, intact, with the hash, the pure flag and
// the peer's kernel credentials.
func TestSignStreamsChunks(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	svc := &stub{pub: pub}
	var refused []string
	c := plugin.NewClient(serve(t, svc, &refused))
	k, err := c.OpenKey(context.Background(), "pkcs11:object=fw")
	require.NoError(t, err)
	require.Equal(t, pub, k.Public())
	require.True(t, k.Info().Sensitive)

	payload := bytes.Repeat([]byte("0123456789abcdef"), 5*plugin.ChunkSize/16+7)
	d := sha512.Sum512(payload)
	sig, err := k.Sign(context.Background(), signer.SignRequest{Payload: payload, Digest: d[:], Hash: crypto.SHA512, Pure: true})
	require.NoError(t, err)
	require.Equal(t, "signature", string(sig))
	in, got, peer := svc.got()
	require.Equal(t, payload, got)
	require.Equal(t, crypto.SHA512, in.Hash)
	require.True(t, in.Pure)
	require.Equal(t, "pkcs11:object=fw", in.KeyURI)
	require.NotNil(t, peer)
	require.EqualValues(t, os.Getuid(), peer.UID)
	require.EqualValues(t, os.Getpid(), peer.PID)

	// A digest the daemon did not arrive at is refused by the client.
	_, err = k.Sign(context.Background(), signer.SignRequest{Payload: payload, Digest: make([]byte, 64), Hash: crypto.SHA512})
	require.ErrorContains(t, err, "different digest")

	st, err := c.Status(context.Background())
	require.NoError(t, err)
	require.Equal(t, "standing", st.Mode)
	require.Equal(t, pub, st.Keys[0].Key.Public)
	require.Empty(t, refused)
}

// Service errors arrive with their code and exactly their message.
func TestErrorsKeepCodeAndMessage(t *testing.T) {
	svc := &stub{err: plugin.Errorf(codes.PermissionDenied, "mcusignd refuses module-path in key URIs; remove it")}
	var refused []string
	c := plugin.NewClient(serve(t, svc, &refused))
	_, err := c.PublicKey(context.Background(), "pkcs11:object=fw", plugin.PurposePublic)
	require.EqualError(t, err, "mcusignd refuses module-path in key URIs; remove it")
	require.Equal(t, codes.PermissionDenied, plugin.Code(err))
}

// A request that declares more bytes than it sends is refused.
func TestSignShortUpload(t *testing.T) {
	svc := &stub{}
	var refused []string
	cc := serve(t, svc, &refused)
	stream, err := pb.NewSignerClient(cc).Sign(context.Background())
	require.NoError(t, err)
	require.NoError(t, stream.Send(&pb.SignChunk{Msg: &pb.SignChunk_Start{Start: &pb.SignStart{KeyUri: "pkcs11:object=fw", Hash: pb.HashAlgorithm_HASH_ALGORITHM_SHA256, Size: 10}}}))
	require.NoError(t, stream.Send(&pb.SignChunk{Msg: &pb.SignChunk_Data{Data: []byte("12345")}}))
	_, err = stream.CloseAndRecv()
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.ErrorContains(t, err, "declared 10 bytes but sent 5")
}

// registerController stands in for go-plugin's controller service, whose
// Shutdown stops the server; the test fails if it is ever reached.
func registerController(s *grpc.Server, t testing.TB) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "plugin.GRPCController",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Shutdown", Handler: func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := &emptypb.Empty{}
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(context.Context, any) (any, error) {
				t.Error("Shutdown reached the controller")
				return &emptypb.Empty{}, nil
			}
			if ic == nil {
				return h(ctx, in)
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{FullMethod: plugin.ShutdownMethod}, h)
		}}},
	}, struct{}{})
}

// A standing server refuses go-plugin's Shutdown (and reports it), and
// serves on.
func TestStandingRefusesShutdown(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	var refused []string
	cc := serve(t, &stub{pub: pub}, &refused)
	err := cc.Invoke(context.Background(), plugin.ShutdownMethod, &emptypb.Empty{}, &emptypb.Empty{})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	require.Equal(t, []string{plugin.ShutdownMethod}, refused)
	_, err = grpc_health_v1.NewHealthClient(cc).Check(context.Background(), &grpc_health_v1.HealthCheckRequest{})
	require.Equal(t, codes.Unimplemented, status.Code(err)) // allowed through; not registered in this bare server
	_, err = plugin.NewClient(cc).Status(context.Background())
	require.NoError(t, err)
}

// A connection the peer check refuses is closed before any RPC.
func TestPeerCheckRefusesBeforeRPC(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	seenCh := make(chan *peercred.Cred, 8)
	cfg := plugin.ServerConfig{Standing: true, Creds: peercred.NewServerCredentials(func(c *peercred.Cred) error {
		seenCh <- c
		return status.Error(codes.PermissionDenied, "no")
	})}
	svc := &stub{}
	s := cfg.GRPCServer()(nil)
	pb.RegisterSignerServer(s, plugin.NewServer(svc))
	go s.Serve(l)
	defer s.Stop()
	cc, err := grpc.Dial("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	_, err = plugin.NewClient(cc).Status(context.Background())
	require.Equal(t, codes.Unavailable, plugin.Code(err), "%v", err)
	require.ErrorContains(t, err, "does not allow this user")
	seen := <-seenCh
	require.EqualValues(t, os.Getpid(), seen.PID)
	exe, _ := os.Executable()
	require.Equal(t, exe, seen.Exe)
}

// BenchmarkUpload measures the transport alone: Sign requests of typical
// region sizes over a unix socket to a service that only receives them.
func BenchmarkUpload(b *testing.B) {
	pub, _, _ := ed25519.GenerateKey(nil)
	var refused []string
	c := plugin.NewClient(serve(b, &stub{pub: pub, noHash: true}, &refused))
	k, err := c.OpenKey(context.Background(), "pkcs11:object=fw")
	require.NoError(b, err)
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20, 8 << 20} {
		payload := make([]byte, size)
		b.Run(fmt.Sprintf("size=%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				if _, err := k.Sign(context.Background(), signer.SignRequest{Payload: payload, Hash: crypto.SHA512}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// timedStub reports where a request's time went.
type timedStub struct{ *stub }

func (s timedStub) Sign(ctx context.Context, in plugin.SignInput) (*plugin.SignOutput, error) {
	out, err := s.stub.Sign(ctx, in)
	if out != nil {
		out.Timing = plugin.SignTiming{Receive: 1500 * time.Microsecond, Hash: 2, Queue: 3, Token: time.Second, Audit: 5 * time.Millisecond}
	}
	return out, err
}

// A client that asks gets the daemon's timing back with the signature;
// one that does not ask gets the signature alone.
func TestSignTiming(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	var refused []string
	c := plugin.NewClient(serve(t, timedStub{&stub{pub: pub}}, &refused))
	k, err := c.OpenKey(context.Background(), "pkcs11:object=fw")
	require.NoError(t, err)
	// One SignImage message, and (beyond SignImageLimit) the Sign stream.
	for _, tc := range []struct {
		payload []byte
		via     string
	}{{[]byte("region"), "message"}, {make([]byte, plugin.SignImageLimit+1), "stream"}} {
		payload := tc.payload
		d := sha512.Sum512(payload)
		req := signer.SignRequest{Payload: payload, Digest: d[:], Hash: crypto.SHA512}
		var tm plugin.SignTiming
		sig, err := k.Sign(plugin.WithSignTiming(context.Background(), &tm), req)
		require.NoError(t, err)
		require.Equal(t, "signature", string(sig))
		require.Equal(t, plugin.SignTiming{Receive: 1500 * time.Microsecond, Hash: 2, Queue: 3, Token: time.Second, Audit: 5 * time.Millisecond, Via: tc.via}, tm)
		_, err = k.Sign(context.Background(), req)
		require.NoError(t, err)
	}
}
