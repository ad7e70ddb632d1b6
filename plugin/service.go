package plugin

import (
	"context"
	"crypto"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mcusign/mcusign/signer"
)

// Service is what a daemon implements; the server adapter turns gRPC calls
// into calls of it, so a daemon's policy is testable without a socket.
type Service interface {
	// Sign signs the to-be-signed region of an image that in.Read yields.
	Sign(ctx context.Context, in SignInput) (*SignOutput, error)
	// PublicKey looks up the key a URI names, for the given purpose.
	PublicKey(ctx context.Context, uri string, purpose KeyPurpose) (*KeyInfo, error)
	// ListKeys describes every key on the token a URI selects.
	ListKeys(ctx context.Context, tokenURI string) ([]KeyInfo, error)
	// GenerateKey creates a key pair of type kt in the token.
	GenerateKey(ctx context.Context, uri string, kt signer.KeyType) (*KeyInfo, error)
	// Status reports the daemon's state.
	Status(ctx context.Context) (*Status, error)
}

// SignInput is one signing request as received: what the client declared
// and a way to receive the bytes.
type SignInput struct {
	KeyURI string
	Hash   crypto.Hash // SHA256, SHA384 or SHA512
	Pure   bool
	Size   int64  // bytes the client declared it will send
	Digest []byte // the client's digest of the region; may be empty
	// KeyFingerprint, if set, is the key the client built the image for;
	// the service refuses to sign with another.
	KeyFingerprint string

	// Read receives exactly Size bytes from the client. It fails if the
	// client sends more or fewer, or when ctx ends first. A client that
	// goes away (or whose own deadline passes) fails it with an error
	// wrapping context.Canceled (DeadlineExceeded), possibly a moment
	// before ctx, derived from the call's, has seen the cancellation.
	// The service checks Size against its limits before calling it.
	Read func(ctx context.Context) ([]byte, error)
}

// SignOutput is a signature and what the daemon knows about it.
type SignOutput struct {
	Signature   []byte
	Digest      []byte
	KeyType     signer.KeyType
	Fingerprint string // "sha256:<hex>" of the MCUboot public key encoding
	AuditSeq    uint64
	Timing      SignTiming // where the request's time went
}

// SignTiming is where a daemon spent one Sign request's time. A client
// that asks for it (see WithSignTiming) gets it back in the call's trailer;
// mcusign prints it with MCUSIGN_TRACE=1. It holds durations only.
type SignTiming struct {
	Receive time.Duration // receiving the region from the client
	Hash    time.Duration // parsing and hashing the region
	Queue   time.Duration // waiting for one of the token slots
	Token   time.Duration // the key's signing operation in the token
	Audit   time.Duration // the audit record's write and fsync, as far as the request waited for it (a lone request's runs while the token signs)
	// Via is how the region reached the daemon: "file" (a sealed memory
	// file passed on the socket), "message" (one SignImage message) or
	// "stream" (Sign chunks). The plugin's server sets it.
	Via string
	// InPlace is set by the client: the file passed was the buffer the
	// region was built in (WithRegionBuffer), not a copy of it.
	InPlace bool
}

// KeyPurpose says what a PublicKey lookup is for.
type KeyPurpose int

const (
	// PurposePublic wants the public key of a key MCUboot can use (getpub, verify).
	PurposePublic KeyPurpose = iota + 1
	// PurposeSign wants a private key that can sign images.
	PurposeSign
	// PurposeDescribe describes whatever the URI names (keyinfo).
	PurposeDescribe
)

// KeyInfo describes a key in a token. It mirrors pkcs11key.KeyInfo without
// depending on it, so clients need no PKCS#11 code.
type KeyInfo struct {
	Type        signer.KeyType   // empty when MCUboot cannot sign with the key
	Algorithm   string           // e.g. "ECDSA P-256", "RSA-1024"
	Label       string           // CKA_LABEL
	ID          []byte           // CKA_ID
	Token       string           // token label
	Serial      string           // token serial number
	URI         string           // selects exactly this key; no module or PIN
	Public      crypto.PublicKey // nil when unavailable
	PublicErr   string           // why Public is nil
	Fingerprint string           // "sha256:<hex>" of the MCUboot public key encoding
	Published   bool             // taken from a standing daemon's descriptor, not asked for

	HasPrivate, HasPublicObject       bool
	Sign, Sensitive, Extractable      bool
	AlwaysSensitive, NeverExtractable bool
	Local, AlwaysAuthenticate         bool
}

// KeyStatus is a key a daemon serves and how often it signed.
type KeyStatus struct {
	Key        KeyInfo
	Signatures uint64
}

// Status is a daemon's state for `mcusign status`.
type Status struct {
	Version            string
	Mode               string // "standing" or "on-demand"
	PID                int
	Started            time.Time
	Uptime             time.Duration
	Module             string
	Tokens             []string
	AuditLog           string
	AuditRecords       uint64
	AuditHead          string
	SignaturesOK       uint64
	SignaturesFailed   uint64
	KeysGenerated      uint64
	ConnectionsRefused uint64
	RequestsRefused    uint64
	InFlight           int
	MaxConcurrent      int
	MaxImageSize       int64
	RequestTimeout     time.Duration
	KeygenAllowed      bool
	Keys               []KeyStatus
}

// Error is a service error with the gRPC code it travels as. Its message
// reaches the user unchanged, so it must be one line naming the fix.
type Error struct {
	Code codes.Code
	Msg  string
	Err  error // the cause, for errors.Is on the daemon side; may be nil
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// GRPCStatus lets grpc send the code and message.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Msg) }

// Errorf makes an Error with a code.
func Errorf(code codes.Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Msg: err.Error(), Err: err}
}

// WithCode gives err a gRPC code, keeping its message and chain.
func WithCode(code codes.Code, err error) *Error {
	return &Error{Code: code, Msg: err.Error(), Err: err}
}
