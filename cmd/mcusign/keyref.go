package main

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/term"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/filekey"
)

// keyRef is a key named by -k: a PEM file, or a key in a PKCS#11 token.
type keyRef struct {
	name   string
	typ    signer.KeyType
	pub    crypto.PublicKey
	signer signer.Key    // nil for public-only keys
	file   *filekey.File // set for PEM files
	close  func()
}

func (k *keyRef) Close() {
	if k != nil && k.close != nil {
		k.close()
	}
}

func (k *keyRef) isPrivate() bool {
	if k.file != nil {
		return k.file.IsPrivate()
	}
	return k.signer != nil
}

// openKeyHook lets other key sources (pkcs11: URIs, the daemon) plug in.
var openKeyHook func(e *env, ref string, needPrivate bool) (*keyRef, bool, error)

// openKey loads the key a command line names. needPrivate asks for a key
// that can sign.
func (e *env) openKey(ref string, needPrivate bool) (*keyRef, error) {
	if ref == "" {
		return nil, usagef("no key given: pass -k/--key with a PEM file or a pkcs11: URI")
	}
	if openKeyHook != nil {
		if k, handled, err := openKeyHook(e, ref, needPrivate); handled {
			return k, err
		}
	}
	f, err := filekey.LoadFile(ref, e.passwordPrompt(ref))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, usagef("key file %s not found: check the path (relative paths are relative to the current directory)", ref)
		}
		if errors.Is(err, syscall.EISDIR) {
			return nil, usagef("key file %s is a directory: name the PEM file in it, or give a pkcs11: URI", ref)
		}
		if errors.Is(err, filekey.ErrPasswordRequired) {
			return nil, usageError{err}
		}
		return nil, err
	}
	k := &keyRef{name: ref, typ: f.Type, pub: f.Public, file: f}
	if needPrivate {
		if !f.IsPrivate() && f.Type.CanSign() {
			return e.findPrivateFor(ref, f.Public)
		}
		s, err := f.Key()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		k.signer = s
	}
	return k, nil
}

// passwordPrompt asks for a key's passphrase on the terminal, as imgtool
// does; without a terminal the key stays locked.
func (e *env) passwordPrompt(ref string) filekey.PasswordFunc {
	return func() ([]byte, error) {
		f, ok := e.stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return nil, filekey.ErrPasswordRequired
		}
		fmt.Fprintf(e.stderr, "Enter passphrase for %s: ", ref)
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		return pw, err
	}
}
