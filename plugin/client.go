package plugin

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/mcusign/mcusign/plugin/pb"
	"github.com/mcusign/mcusign/signer"
)

// ChunkSize is how many image bytes one Sign message carries: well below
// gRPC's 4 MiB message limit, large enough that framing costs nothing.
const ChunkSize = 64 << 10

// Client is the client side of the Signer service.
type Client struct {
	rpc  pb.SignerClient
	name string // the daemon, for messages
}

// NewClient wraps a gRPC connection to a daemon.
func NewClient(cc grpc.ClientConnInterface) *Client {
	return &Client{rpc: pb.NewSignerClient(cc), name: "mcusignd"}
}

// RemoteError is an error the daemon returned. Its message is the
// daemon's, unchanged.
type RemoteError struct {
	Code codes.Code
	Msg  string
}

func (e *RemoteError) Error() string { return e.Msg }

// Code is the gRPC code of an error from a Client call (codes.Unknown for
// other errors, codes.OK for nil).
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var e *RemoteError
	if errors.As(err, &e) {
		return e.Code
	}
	return codes.Unknown
}

// fail turns a gRPC error into one line for the user. Unavailable always
// means the connection, never the service: the daemon's own refusals use
// other codes.
func (c *Client) fail(op string, err error) error {
	s, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s while %s: %w", c.name, op, err)
	}
	switch s.Code() {
	case codes.Unavailable:
		return &RemoteError{Code: s.Code(), Msg: fmt.Sprintf(
			"%s closed the connection while %s (%s): it stopped, or it does not allow this user (uid %d); check its log and audit trail, then retry",
			c.name, op, s.Message(), os.Getuid())}
	case codes.DeadlineExceeded:
		return &RemoteError{Code: s.Code(), Msg: fmt.Sprintf("%s did not finish %s in time (%s); the daemon or its token may be overloaded, retry later", c.name, op, s.Message())}
	case codes.Canceled:
		return &RemoteError{Code: s.Code(), Msg: fmt.Sprintf("%s: %s was cancelled", c.name, op)}
	}
	return &RemoteError{Code: s.Code(), Msg: s.Message()}
}

// PublicKey looks up the key uri names.
func (c *Client) PublicKey(ctx context.Context, uri string, purpose KeyPurpose) (*KeyInfo, error) {
	resp, err := c.rpc.PublicKey(ctx, &pb.PublicKeyRequest{KeyUri: uri, Purpose: purposeToPB(purpose)})
	if err != nil {
		return nil, c.fail("looking up the key", err)
	}
	return keyFromPB(resp)
}

// ListKeys describes every key on the token uri selects.
func (c *Client) ListKeys(ctx context.Context, tokenURI string) ([]KeyInfo, error) {
	resp, err := c.rpc.ListKeys(ctx, &pb.ListKeysRequest{TokenUri: tokenURI})
	if err != nil {
		return nil, c.fail("listing keys", err)
	}
	out := make([]KeyInfo, 0, len(resp.Keys))
	for _, k := range resp.Keys {
		ki, err := keyFromPB(k)
		if err != nil {
			return nil, err
		}
		out = append(out, *ki)
	}
	return out, nil
}

// GenerateKey creates a key pair of type kt in the token.
func (c *Client) GenerateKey(ctx context.Context, uri string, kt signer.KeyType) (*KeyInfo, error) {
	resp, err := c.rpc.GenerateKey(ctx, &pb.GenerateKeyRequest{KeyUri: uri, Type: string(kt)})
	if err != nil {
		return nil, c.fail("generating the key", err)
	}
	return keyFromPB(resp)
}

// Status asks the daemon for its state.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	resp, err := c.rpc.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		return nil, c.fail("reporting its status", err)
	}
	return statusFromPB(resp)
}

// OpenKey finds a private key that can sign and returns it as a signer.Key
// that signs through the daemon.
func (c *Client) OpenKey(ctx context.Context, uri string) (*Key, error) {
	info, err := c.PublicKey(ctx, uri, PurposeSign)
	if err != nil {
		return nil, err
	}
	if info.Public == nil {
		return nil, fmt.Errorf("%s returned no public key for %s", c.name, info.URI)
	}
	return &Key{c: c, uri: uri, info: info}, nil
}

// Key is a signing key held by the daemon. It implements signer.Key, so the
// image engine signs through the daemon without knowing it.
type Key struct {
	c    *Client
	uri  string // as the user gave it: an on-demand daemon needs its module-path and pin-source
	info *KeyInfo
}

var _ signer.Key = (*Key)(nil)

// Public implements signer.Key.
func (k *Key) Public() crypto.PublicKey { return k.info.Public }

// Info describes the key.
func (k *Key) Info() *KeyInfo { return k.info }

// Sign implements signer.Key: it streams req.Payload in ChunkSize pieces
// with the hash algorithm and pure flag; the daemon computes the digest
// itself and must arrive at req.Digest.
func (k *Key) Sign(ctx context.Context, req signer.SignRequest) ([]byte, error) {
	h, err := hashToPB(req.Hash)
	if err != nil {
		return nil, err
	}
	timing := signTimingFrom(ctx)
	if timing != nil {
		ctx = metadata.AppendToOutgoingContext(ctx, timingRequest, "1")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := k.c.rpc.Sign(ctx)
	if err != nil {
		return nil, k.c.fail("signing", err)
	}
	start := &pb.SignStart{KeyUri: k.uri, Hash: h, Pure: req.Pure, Size: uint64(len(req.Payload)), Digest: req.Digest}
	err = stream.Send(&pb.SignChunk{Msg: &pb.SignChunk_Start{Start: start}})
	for p := req.Payload; err == nil && len(p) > 0; {
		n := min(len(p), ChunkSize)
		err = stream.Send(&pb.SignChunk{Msg: &pb.SignChunk_Data{Data: p[:n]}})
		p = p[n:]
	}
	// io.EOF from Send means the daemon ended the call early; its reason
	// comes from CloseAndRecv.
	if err != nil && err != io.EOF {
		return nil, k.c.fail("sending the image", err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, k.c.fail("signing", err)
	}
	if timing != nil {
		if v := stream.Trailer().Get(timingTrailer); len(v) > 0 {
			timing.decode(v[0])
		}
	}
	if len(req.Digest) > 0 && !bytes.Equal(resp.Digest, req.Digest) {
		return nil, fmt.Errorf("%s signed a different digest than this image's; the image was changed in transit, retry", k.c.name)
	}
	return resp.Signature, nil
}
