package signer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"testing"

	"github.com/mcusign/mcusign/signer"
)

// BenchmarkSign measures building and signing images of typical sizes with
// in-process keys. The "unsigned" rows are the baseline: layout and hashing
// alone, measured in the same run, so the key's share is the difference.
func BenchmarkSign(b *testing.B) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	keys := []struct {
		name string
		key  crypto.Signer
	}{{"unsigned", nil}, {"ed25519", edKey}, {"ecdsa-p256", p256}, {"rsa-2048", rsaKey}}
	for _, size := range []int{64 << 10, 1 << 20, 16 << 20} {
		app := make([]byte, size)
		rand.Read(app)
		opts := signer.Options{Version: signer.Version{Major: 1}, HeaderSize: 0x200, PadHeader: true, Align: 4, SlotSize: 0}
		for _, k := range keys {
			var key signer.Key
			if k.key != nil {
				key = signer.CryptoKey{Signer: k.key}
			}
			b.Run(fmt.Sprintf("%s/%dKiB", k.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				for i := 0; i < b.N; i++ {
					if _, err := signer.Build(context.Background(), app, opts, key, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
