package daemon

import (
	"context"
	"crypto"
	"os"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key"
)

// BackendKey is a signing key in a token.
type BackendKey interface {
	signer.Key
	Type() signer.KeyType
	URI() string // selects exactly this key; no module or PIN
	Label() string
	Token() string
	Info(ctx context.Context) (*pkcs11key.KeyInfo, error)
}

// Backend is where the keys live.
type Backend interface {
	Open(ctx context.Context, uri string) (BackendKey, error)
	PublicKey(ctx context.Context, uri string) (crypto.PublicKey, error)
	Info(ctx context.Context, uri string) (*pkcs11key.KeyInfo, error)
	List(ctx context.Context, uri string) ([]pkcs11key.KeyInfo, error)
	Generate(ctx context.Context, uri string, kt signer.KeyType) (BackendKey, error)
}

// PKCS11 is the Backend of package pkcs11key. Options carries the daemon's
// PIN (as Prompt) and where warnings go.
type PKCS11 struct {
	Options pkcs11key.Options
}

var _ Backend = PKCS11{}

func (b PKCS11) Open(ctx context.Context, uri string) (BackendKey, error) {
	k, err := pkcs11key.Open(ctx, uri, b.Options)
	if err != nil {
		return nil, err
	}
	return k, nil
}

func (b PKCS11) PublicKey(ctx context.Context, uri string) (crypto.PublicKey, error) {
	return pkcs11key.PublicKey(ctx, uri, b.Options)
}

func (b PKCS11) Info(ctx context.Context, uri string) (*pkcs11key.KeyInfo, error) {
	return pkcs11key.Info(ctx, uri, b.Options)
}

func (b PKCS11) List(ctx context.Context, uri string) ([]pkcs11key.KeyInfo, error) {
	return pkcs11key.List(ctx, uri, b.Options)
}

func (b PKCS11) Generate(ctx context.Context, uri string, kt signer.KeyType) (BackendKey, error) {
	k, err := pkcs11key.Generate(ctx, uri, kt, b.Options)
	if err != nil {
		return nil, err
	}
	return k, nil
}

func pid() int { return os.Getpid() }
