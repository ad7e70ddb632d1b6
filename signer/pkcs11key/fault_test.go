package pkcs11key_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key"
	"github.com/mcusign/mcusign/signer/pkcs11key/p11test"
)

// These tests take tokens away from the library under an open Key. They
// are not parallel: a fault resets the whole module, which the parallel
// tests' raw sessions (p11test.Raw) would not survive.

// A token whose directory is moved away fails with ErrTokenNotPresent
// (every key type, lookups too), and the same Key objects sign again once
// it is back, without reopening them: the module is finalised and
// initialised again, the token found, logged in to and the key found.
// A PIN the token rejected is remembered across these resets.
func TestTokenRemovedAndBack(t *testing.T) {
	tok := p11test.NewToken(t)
	require.NotEmpty(t, tok.Dir)
	keys := map[signer.KeyType]*pkcs11key.Key{}
	for _, kt := range []signer.KeyType{signer.ECDSAP256, signer.Ed25519, signer.RSA2048} {
		keys[kt] = tok.Generate(t, string(kt), kt)
	}
	payload := randomPayload(t, 4096)
	signAll := func() map[signer.KeyType]error {
		errs := map[signer.KeyType]error{}
		for kt, k := range keys {
			req := request(payload, kt)
			sig, err := k.Sign(ctx, req)
			if err == nil {
				err = signer.VerifySignature(k.Public(), req, sig)
			}
			errs[kt] = err
		}
		return errs
	}
	for kt, err := range signAll() {
		require.NoError(t, err, kt)
	}
	away := filepath.Join(t.TempDir(), "away")
	require.NoError(t, os.Rename(tok.Dir, away))
	for i := 0; i < 2; i++ { // the fault, then the module brought up without the token
		for kt, err := range signAll() {
			require.ErrorIs(t, err, pkcs11key.ErrTokenNotPresent, "%s: %v", kt, err)
			requireErr(t, err, tok.Label, "not present", "reconnect", "without a restart")
		}
	}
	_, err := pkcs11key.List(ctx, tok.URI(""), pkcs11key.Options{})
	require.ErrorIs(t, err, pkcs11key.ErrTokenNotPresent)
	_, err = pkcs11key.Open(ctx, tok.URI(string(signer.Ed25519)), pkcs11key.Options{})
	require.ErrorIs(t, err, pkcs11key.ErrTokenNotPresent)

	require.NoError(t, os.Rename(away, tok.Dir))
	// The first login after the token came back has a wrong PIN; then the
	// token flaps once more (another reset): the PIN is still remembered
	// and not sent again, so a flapping token cannot be locked by the
	// logins that follow each reset.
	bad := filepath.Join(t.TempDir(), "badpin")
	require.NoError(t, os.WriteFile(bad, []byte(wrongPIN+"\n"), 0o600))
	badURI := tok.BaseURI()
	badURI.PINSource, badURI.Object = bad, string(signer.Ed25519)
	_, err = pkcs11key.Open(ctx, badURI.String(), pkcs11key.Options{})
	requireErr(t, err, "wrong PIN for token")
	require.NoError(t, os.Rename(tok.Dir, away))
	for kt, err := range signAll() {
		require.ErrorIs(t, err, pkcs11key.ErrTokenNotPresent, "%s: %v", kt, err)
	}
	require.NoError(t, os.Rename(away, tok.Dir))
	_, err = pkcs11key.Open(ctx, badURI.String(), pkcs11key.Options{})
	requireErr(t, err, "already rejected this PIN")

	for kt, err := range signAll() {
		require.NoError(t, err, "%s after the token came back", kt)
	}
	list, err := pkcs11key.List(ctx, tok.URI(""), pkcs11key.Options{})
	require.NoError(t, err)
	require.Len(t, list, 3)
}

// A token deleted and re-created under the same label (a restore): a Key
// signs again when the restored token holds the same key, and refuses
// with ErrKeyChanged when another key took its label and id.
func TestTokenReinitialised(t *testing.T) {
	tok := p11test.NewToken(t)
	pem := filepath.Join(vectors, "ecdsa-p256.pem")
	k := tok.ImportPEM(t, "fw", pem)
	id := k.ID()
	req := request(randomPayload(t, 1000), signer.ECDSAP256)
	_, err := k.Sign(ctx, req)
	require.NoError(t, err)

	recreate := func() {
		require.NoError(t, os.RemoveAll(tok.Dir))
		before, err := filepath.Glob(filepath.Join(p11test.TokenDir(t), "*"))
		require.NoError(t, err)
		u := pkcs11key.URI{Token: tok.Label, ModulePath: tok.Module}
		require.NoError(t, pkcs11key.InitToken(ctx, u.String(), p11test.SOPIN, p11test.PIN))
		after, err := filepath.Glob(filepath.Join(p11test.TokenDir(t), "*"))
		require.NoError(t, err)
		for _, d := range after {
			if !slices.Contains(before, d) {
				tok.Dir = d
			}
		}
	}
	withID := func() string {
		u := tok.BaseURI()
		u.Object, u.ID = "fw", id
		return u.String()
	}

	recreate()
	_, err = pkcs11key.Import(ctx, withID(), p11test.ReadPEM(t, pem), pkcs11key.Options{})
	require.NoError(t, err)
	sig, err := k.Sign(ctx, req)
	require.NoError(t, err, "the restored token holds the same key")
	require.NoError(t, signer.VerifySignature(k.Public(), req, sig))

	recreate()
	_, err = pkcs11key.Generate(ctx, withID(), signer.ECDSAP256, pkcs11key.Options{})
	require.NoError(t, err)
	_, err = k.Sign(ctx, req)
	require.ErrorIs(t, err, pkcs11key.ErrKeyChanged)
	requireErr(t, err, "no longer the key this process opened")
	k2, err := pkcs11key.Open(ctx, withID(), pkcs11key.Options{})
	require.NoError(t, err, "opening it again gives the new key")
	_, err = k2.Sign(ctx, req)
	require.NoError(t, err)
}

// Signers in flight while the token goes away and comes back: no
// deadlock, no crash, every signature returned verifies, every failure is
// ErrTokenNotPresent or a PKCS#11 fault, and all sign again afterwards.
func TestTokenFaultUnderConcurrentSigning(t *testing.T) {
	tok := p11test.NewToken(t)
	k := tok.Generate(t, "fw", signer.ECDSAP256)
	ed := tok.Generate(t, "ed", signer.Ed25519)
	req := request(randomPayload(t, 2048), signer.ECDSAP256)

	var stop atomic.Bool
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 8; i++ {
		key := k
		if i%2 == 1 {
			key = ed
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				sig, err := key.Sign(ctx, req)
				if err != nil {
					failed.Add(1)
					if !errors.Is(err, pkcs11key.ErrTokenNotPresent) {
						select {
						case errs <- err:
						default:
						}
					}
					continue
				}
				if err := signer.VerifySignature(key.Public(), req, sig); err != nil {
					errs <- err
				}
				ok.Add(1)
			}
		}()
	}
	// Bounded by signatures, not time: each round is one more signature
	// attempt on this goroutine too.
	waitFor := func(what string, cond func() bool) {
		for i := 0; !cond(); i++ {
			require.Less(t, i, 100000, "waited too long for %s", what)
			_, _ = k.Sign(ctx, req)
		}
	}
	waitFor("signatures", func() bool { return ok.Load() > 20 })
	away := filepath.Join(t.TempDir(), "away")
	require.NoError(t, os.Rename(tok.Dir, away))
	before := failed.Load()
	waitFor("failures", func() bool { return failed.Load() > before+20 })
	require.NoError(t, os.Rename(away, tok.Dir))
	n := ok.Load()
	waitFor("signatures after the token came back", func() bool { return ok.Load() > n+20 })
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		// A signer whose operation was in flight when the token went
		// away may see the raw fault if its retry also failed.
		require.Contains(t, err.Error(), tok.Label, "unexpected failure: %v", err)
	}
	for _, key := range []*pkcs11key.Key{k, ed} {
		_, err := key.Sign(ctx, request(randomPayload(t, 100), key.Type()))
		require.NoError(t, err)
	}
}

// The token logs the process out under open keys (an HSM's session
// timeout, another part of the process calling C_Logout): the next
// signature of each key logs in again, transparently.
func TestTokenLoggedOut(t *testing.T) {
	tok := p11test.NewToken(t)
	keys := []*pkcs11key.Key{tok.Generate(t, "ec", signer.ECDSAP256), tok.Generate(t, "ed", signer.Ed25519)}
	for round := 0; round < 2; round++ {
		for _, k := range keys {
			req := request(randomPayload(t, 256), k.Type())
			sig, err := k.Sign(ctx, req)
			require.NoError(t, err, "round %d, %s", round, k.Type())
			require.NoError(t, signer.VerifySignature(k.Public(), req, sig))
		}
		tok.Raw(t, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) { require.NoError(t, p.Logout(sh)) })
	}
}
