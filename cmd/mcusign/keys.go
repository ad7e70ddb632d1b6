package main

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mcusign/mcusign/cmd/internal/fileutil"
	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/filekey"
	"github.com/mcusign/mcusign/signer/keyfmt"
)

// writeOutput sends generated text to -o (atomically) or stdout.
func (e *env) writeOutput(path string, data []byte) error {
	if path == "" {
		_, err := e.stdout.Write(data)
		return err
	}
	return fileutil.WriteFile(path, data, 0o644)
}

// exportPublic writes what emit makes of key's public half (getpub,
// getpubhash) to output or stdout.
func (e *env) exportPublic(key, encoding, suffix, output string, emit func(io.Writer, crypto.PublicKey, keyfmt.Encoding, string) error) error {
	enc, err := keyfmt.ParseEncoding(encoding)
	if err != nil {
		return usageError{err}
	}
	k, err := e.openKey(key, false)
	if err != nil {
		return err
	}
	defer k.Close()
	var buf bytes.Buffer
	if err := emit(&buf, k.pub, enc, suffix); err != nil {
		return usageError{err}
	}
	return e.writeOutput(output, buf.Bytes())
}

func newGetpubCmd(e *env) *cobra.Command {
	var key, output, suffix string
	enc := newChoice("", "lang-c", "lang-rust", "pem", "raw")
	lang := newChoice("", "c", "rust")
	cmd := &cobra.Command{
		Use:   "getpub -k KEY [-e lang-c|lang-rust|pem|raw] [-o FILE]",
		Short: "Export the public key for the bootloader build",
		Long: `Export a key's public half in the form MCUboot's build consumes: C source
(the default; what MCUboot's CMake writes to autogen-pubkey.c), Rust source,
PEM, or raw DER (PKCS#1 for RSA). KEY may be a private or public PEM file or a
pkcs11: URI, so the bootloader can be built without the private key ever
existing as a file. Output is byte-identical to imgtool getpub.`,
		Example: `  mcusign getpub -k 'pkcs11:token=release;object=fw-signing' -e pem -o keys/fw-pub.pem
  mcusign getpub -k keys/fw-pub.pem > autogen-pubkey.c`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if enc.value != "" && lang.value != "" {
				return usagef("use only one of -e/--encoding and the deprecated -l/--lang")
			}
			e2 := enc.value
			switch {
			case lang.value == "rust":
				e2 = "lang-rust"
			case e2 == "":
				e2 = "lang-c"
			}
			if suffix != "" && (e2 == "pem" || e2 == "raw") {
				return usagef("--name-suffix only applies to lang-c and lang-rust output")
			}
			return e.exportPublic(key, e2, suffix, output, keyfmt.PublicKey)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&key, "key", "k", "", "key: PEM file (private or public) or pkcs11: URI (required)")
	fl.VarP(enc, "encoding", "e", "output encoding (default lang-c)")
	fl.VarP(lang, "lang", "l", "deprecated: use -e lang-c or -e lang-rust")
	fl.StringVar(&suffix, "name-suffix", "", "append SUFFIX ([A-Za-z0-9_]*) to the C/Rust symbol names, for several keys in one build")
	fl.StringVarP(&output, "output", "o", "", "write to FILE instead of stdout")
	return cmd
}

func newGetpubhashCmd(e *env) *cobra.Command {
	var key, output, suffix string
	enc := newChoice("lang-c", "lang-c", "raw")
	cmd := &cobra.Command{
		Use:   "getpubhash -k KEY [-e lang-c|raw] [-o FILE]",
		Short: "Export the SHA-256 hash of the public key",
		Long: `Export the SHA-256 hash of the public key encoding, as C source or raw bytes,
byte-identical to imgtool getpubhash. (It is always SHA-256, even for keys
whose images use SHA-384 or SHA-512 key hashes.)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if suffix != "" && enc.value == "raw" {
				return usagef("--name-suffix only applies to lang-c output")
			}
			return e.exportPublic(key, enc.value, suffix, output, keyfmt.PublicKeyHash)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&key, "key", "k", "", "key: PEM file (private or public) or pkcs11: URI (required)")
	fl.VarP(enc, "encoding", "e", "output encoding")
	fl.StringVar(&suffix, "name-suffix", "", "append SUFFIX ([A-Za-z0-9_]*) to the C symbol names")
	fl.StringVarP(&output, "output", "o", "", "write to FILE instead of stdout")
	return cmd
}

// keygenHook lets the PKCS#11 backend take pkcs11: URIs.
var keygenHook func(e *env, ref string, t signer.KeyType) (handled bool, err error)

func newKeygenCmd(e *env) *cobra.Command {
	var key, typ string
	var password, force bool
	cmd := &cobra.Command{
		Use:   "keygen -k KEY -t TYPE",
		Short: "Generate a key pair",
		Long: `Generate a key pair of TYPE (rsa-2048, rsa-3072, ecdsa-p256, ecdsa-p384,
ed25519, x25519). With a file name, the private key is written as PKCS#8 PEM
(mode 0600), as imgtool keygen does; -p protects it with a passphrase asked on
the terminal. With a pkcs11: URI the key pair is generated inside the token,
sensitive and non-extractable, labelled by the URI's object attribute.`,
		Example: `  mcusign keygen -k dev-key.pem -t ed25519
  mcusign keygen -k 'pkcs11:token=release;object=fw-signing' -t ecdsa-p256`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if key == "" {
				return usagef("missing -k/--key: name the PEM file to write, or a pkcs11: URI")
			}
			if typ == "" {
				return usagef("missing -t/--type: use one of rsa-2048, rsa-3072, ecdsa-p256, ecdsa-p384, ed25519, x25519")
			}
			t, err := signer.ParseKeyType(typ)
			if err != nil {
				return usageError{err}
			}
			if keygenHook != nil {
				if handled, err := keygenHook(e, key, t); handled {
					return err
				}
			}
			if _, err := os.Stat(key); err == nil && !force {
				return usagef("%s already exists; refusing to overwrite a key (pass --force to replace it)", key)
			}
			var pw []byte
			if password {
				if pw, err = e.newPassword(); err != nil {
					return err
				}
			}
			priv, err := filekey.Generate(t)
			if err != nil {
				return err
			}
			pemBytes, err := filekey.MarshalPrivatePEM(priv, pw)
			if err != nil {
				return err
			}
			return fileutil.WriteFile(key, pemBytes, 0o600)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&key, "key", "k", "", "PEM file to write, or pkcs11: URI of the key to create (required)")
	fl.StringVarP(&typ, "type", "t", "", "key type: rsa-2048, rsa-3072, ecdsa-p256, ecdsa-p384, ed25519, x25519 (required)")
	fl.BoolVarP(&password, "password", "p", false, "protect the PEM file with a passphrase (asked on the terminal)")
	fl.BoolVar(&force, "force", false, "overwrite an existing key file")
	return cmd
}

// newPassword asks twice for a new passphrase on the terminal.
func (e *env) newPassword() ([]byte, error) {
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, usagef("-p/--password needs a terminal to ask for the passphrase")
	}
	for {
		fmt.Fprint(e.stderr, "Enter key passphrase: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, err
		}
		fmt.Fprint(e.stderr, "Reenter passphrase: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(a, b) {
			return a, nil
		}
		fmt.Fprintln(e.stderr, "Passphrases do not match, try again")
	}
}

// keyinfoHook lets the PKCS#11 backend describe token keys.
var keyinfoHook func(e *env, ref, require string) (handled bool, err error)

func newKeyinfoCmd(e *env) *cobra.Command {
	var key string
	require := newChoice("", "private", "public")
	cmd := &cobra.Command{
		Use:   "keyinfo -k KEY [--require private|public]",
		Short: "Print whether a key is private or public",
		Long: `Print 'private' when KEY holds a private key and 'public' for a public-only
PEM, as imgtool keyinfo does; --require makes it fail (exit 2) when the kind
differs, so a build can check it. For a pkcs11: URI it prints the key's type,
label, id and protection attributes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyinfoHook != nil {
				if handled, err := keyinfoHook(e, key, require.value); handled {
					return err
				}
			}
			if key == "" {
				return usagef("missing -k/--key")
			}
			f, err := filekey.LoadFile(key, nil)
			if err != nil {
				if errors.Is(err, filekey.ErrPasswordRequired) {
					return usagef("cannot inspect %s: the key is password-protected and keyinfo never prompts", key)
				}
				if errors.Is(err, os.ErrNotExist) {
					return usagef("key file %s not found", key)
				}
				return err
			}
			fmt.Fprintln(e.stdout, f.Kind())
			if require.value != "" && f.Kind() != require.value {
				return usagef("key %s is %s, but %s was required", key, f.Kind(), require.value)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&key, "key", "k", "", "key: PEM file or pkcs11: URI (required)")
	cmd.Flags().Var(require, "require", "fail unless the key is of this kind")
	return cmd
}
