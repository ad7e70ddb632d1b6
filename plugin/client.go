package plugin

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/mcusign/mcusign/plugin/fdpass"
	"github.com/mcusign/mcusign/plugin/pb"
	"github.com/mcusign/mcusign/signer"
)

// ChunkSize is how many image bytes one Sign message carries: well below
// gRPC's 4 MiB message limit, large enough that framing costs nothing.
const ChunkSize = 64 << 10

// SignImageLimit is the largest region sent in one SignImage message:
// gRPC's default 4 MiB message limit, less room for the SignStart. Larger
// regions are streamed with Sign.
const SignImageLimit = 4<<20 - 64<<10

// PassFileMin is the smallest region passed as a sealed memory file where
// the connection can carry files (a standing daemon's socket): from about
// this size, writing a memfd and passing it costs less than moving the
// bytes through gRPC, which copies them several times on both sides.
const PassFileMin = 16 << 10

// Client is the client side of the Signer service.
type Client struct {
	rpc         pb.SignerClient
	health      healthpb.HealthClient
	name        string         // the daemon, for messages
	files       *fileConn      // set when the connection can pass files
	published   []PublishedKey // the standing daemon's descriptor's keys
	pending     *pendingConn   // the connection, while it is made in the background
	noSignImage atomic.Bool    // the daemon predates SignImage
}

// NewClient wraps a gRPC connection to a daemon.
func NewClient(cc grpc.ClientConnInterface) *Client {
	return &Client{rpc: pb.NewSignerClient(cc), health: healthpb.NewHealthClient(cc), name: "mcusignd"}
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
		var ae *AttachError
		if errors.As(err, &ae) {
			return ae // names the daemon and why already
		}
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

// Ping makes one bare round trip to the daemon, gRPC's health check: no
// token, no audit, no work in the daemon. Benchmarks take it as the
// transport's floor: no signature through the daemon can cost less.
func (c *Client) Ping(ctx context.Context) error {
	if _, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		return c.fail("answering a health check", err)
	}
	return nil
}

// OpenKey finds a private key that can sign and returns it as a signer.Key
// that signs through the daemon: as the daemon published it in its
// descriptor, or else by asking it.
func (c *Client) OpenKey(ctx context.Context, uri string) (*Key, error) {
	if info := c.publishedKey(uri); info != nil {
		return &Key{c: c, uri: uri, info: info}, nil
	}
	info, err := c.PublicKey(ctx, uri, PurposeSign)
	if err != nil {
		return nil, err
	}
	if info.Public == nil {
		return nil, fmt.Errorf("%s returned no public key for %s", c.name, info.URI)
	}
	return &Key{c: c, uri: uri, info: info}, nil
}

// publishedKey is the description of uri's key the daemon published, or
// nil (not published, or not readable: then it is asked for).
func (c *Client) publishedKey(uri string) *KeyInfo {
	for _, pk := range c.published {
		if pk.URI != uri || pk.Fingerprint == "" {
			continue
		}
		pub, err := x509.ParsePKIXPublicKey(pk.PublicKey)
		if err != nil {
			return nil
		}
		kt, err := signer.TypeOf(pub)
		if err != nil || string(kt) != pk.Type {
			return nil
		}
		return &KeyInfo{Type: kt, URI: uri, Public: pub, Fingerprint: pk.Fingerprint, HasPrivate: true, Sign: true, Published: true}
	}
	return nil
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

// Sign implements signer.Key: it sends req.Payload with the hash
// algorithm and pure flag, in one SignImage message up to SignImageLimit
// and streamed in ChunkSize pieces beyond; the daemon computes the digest
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
	start := &pb.SignStart{KeyUri: k.uri, Hash: h, Pure: req.Pure, Size: uint64(len(req.Payload)), Digest: req.Digest, KeyFingerprint: k.info.Fingerprint}
	var trailer metadata.MD
	resp, err := k.send(ctx, start, req.Payload, &trailer)
	if err != nil {
		return nil, err
	}
	if timing != nil {
		if v := trailer.Get(timingTrailer); len(v) > 0 {
			timing.decode(v[0])
		}
	}
	if len(req.Digest) > 0 && !bytes.Equal(resp.Digest, req.Digest) {
		return nil, fmt.Errorf("%s signed a different digest than this image's; the image was changed in transit, retry", k.c.name)
	}
	if resp.KeyFingerprint != "" && k.info.Fingerprint != "" && resp.KeyFingerprint != k.info.Fingerprint {
		// A daemon that predates the check in SignStart.
		return nil, fmt.Errorf("%s signed with key %s, not the key %s this image was built for: the key changed in the token; run the command again", k.c.name, resp.KeyFingerprint, k.info.Fingerprint)
	}
	return resp.Signature, nil
}

// send sends the region the cheapest way the connection offers: as a
// sealed memory file, in one SignImage message, or streamed.
func (k *Key) send(ctx context.Context, start *pb.SignStart, payload []byte, trailer *metadata.MD) (*pb.SignResponse, error) {
	if p := k.c.pending; p != nil { // whether it can pass files is known once connected
		if _, err := p.wait(ctx); err != nil {
			return nil, k.c.fail("signing", err)
		}
	}
	if fc := k.c.files.get(); fc != nil && len(payload) >= PassFileMin {
		resp, err := k.signFile(ctx, fc, start, payload, trailer)
		if err != errNotPassed {
			return resp, err
		}
	}
	if len(payload) <= SignImageLimit && !k.c.noSignImage.Load() {
		resp, err := k.c.rpc.SignImage(ctx, &pb.SignImageRequest{Start: start, Region: payload}, grpc.Trailer(trailer))
		if status.Code(err) != codes.Unimplemented {
			if err != nil {
				return nil, k.c.fail("signing", err)
			}
			return resp, nil
		}
		k.c.noSignImage.Store(true) // an older daemon: stream from now on
	}
	return k.stream(ctx, start, payload, trailer)
}

type regionBufferKey struct{}

// WithRegionBuffer returns a context for Key.Sign saying that regions may
// have been built in b: a region that is a prefix of b is passed to the
// daemon as b's own memory file, sealed (fdpass.Buffer.SealPrefix), with
// no copy. The caller keeps b, and closes it once done with the image.
func WithRegionBuffer(ctx context.Context, b *fdpass.Buffer) context.Context {
	return context.WithValue(ctx, regionBufferKey{}, b)
}

func regionBufferFrom(ctx context.Context) *fdpass.Buffer {
	b, _ := ctx.Value(regionBufferKey{}).(*fdpass.Buffer)
	return b
}

// regionFile is the sealed memory file to pass for payload: the buffer
// it was built in, sealed in place, if the caller made it in one
// (WithRegionBuffer), else a copy. release, once the call is answered,
// lets go of what the caller does not keep. An error with inPlace set
// leaves the buffer unusable.
func regionFile(ctx context.Context, payload []byte) (f *os.File, inPlace bool, release func(), err error) {
	if b := regionBufferFrom(ctx); b.Holds(payload) {
		f, err := b.SealPrefix(len(payload))
		switch {
		case err == nil:
			// Map the image's pages back in while the daemon works, so
			// that reading it for the output does not fault on each.
			prefaulted := make(chan struct{})
			go func() { b.Prefault(); close(prefaulted) }()
			return f, true, func() { <-prefaulted }, nil
		case !errors.Is(err, fdpass.ErrSealedOther): // else: passed with another region before; copy this one
			return nil, true, nil, err
		}
	}
	f, err = fdpass.Seal("mcusign-image", payload)
	if err != nil {
		return nil, false, nil, err
	}
	// The last close frees the file's pages (0.2 ms per MiB here): not
	// while the caller waits for the signature.
	return f, false, func() { go f.Close() }, nil
}

// errNotPassed is a region that could not be passed as a file (no memfd
// here, or it did not arrive: a reconnect in between); its bytes are sent
// instead.
var errNotPassed = errors.New("the region was not passed as a file")

// signFile passes the region as a sealed memory file on connection fc.
func (k *Key) signFile(ctx context.Context, fc *fdpass.Conn, start *pb.SignStart, payload []byte, trailer *metadata.MD) (*pb.SignResponse, error) {
	f, inPlace, release, err := regionFile(ctx, payload)
	if err != nil {
		if inPlace {
			return nil, fmt.Errorf("cannot pass the image to %s: %w", k.c.name, err)
		}
		return nil, errNotPassed
	}
	defer release()
	if t := signTimingFrom(ctx); t != nil {
		t.InPlace = inPlace
	}
	id, err := fdpass.IDOf(f)
	if err == nil {
		err = fc.Attach(f)
	}
	if err != nil {
		return nil, errNotPassed
	}
	resp, err := k.c.rpc.SignImage(ctx, &pb.SignImageRequest{Start: start, RegionFile: &pb.RegionFile{Dev: id.Dev, Ino: id.Ino}}, grpc.Trailer(trailer))
	switch status.Code(err) {
	case codes.OK:
		return resp, nil
	case codes.Aborted, codes.Unimplemented:
		return nil, errNotPassed
	}
	return nil, k.c.fail("signing", err)
}

// stream sends a region with the Sign stream: a SignStart, then chunks.
func (k *Key) stream(ctx context.Context, start *pb.SignStart, payload []byte, trailer *metadata.MD) (*pb.SignResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := k.c.rpc.Sign(ctx)
	if err != nil {
		return nil, k.c.fail("signing", err)
	}
	err = stream.Send(&pb.SignChunk{Msg: &pb.SignChunk_Start{Start: start}})
	for p := payload; err == nil && len(p) > 0; {
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
	*trailer = stream.Trailer()
	return resp, nil
}
