package main

import (
	"bytes"

	"github.com/spf13/cobra"

	"github.com/mcusign/mcusign/signer/keyfmt"
	"github.com/mcusign/mcusign/signer/pkcs11key"
)

func newGetprivCmd(e *env) *cobra.Command {
	var key string
	var minimal bool
	format := newChoice("", keyfmt.FormatOpenSSL, keyfmt.FormatPKCS8)
	cmd := &cobra.Command{
		Use:   "getpriv -k KEY [--minimal] [-f openssl|pkcs8]",
		Short: "Export the bootloader's decryption key as C source",
		Long: `Print the device's image decryption key as C source for the bootloader
build (MCUboot's enc_priv_key[], what its CMake writes to autogen-enckey.c),
byte-identical to imgtool getpriv. KEY is the PEM private key whose public
half images are encrypted for (-E): X25519, P-256 or RSA-2048.

Signing keys stay where they are: this command is for the encryption key
only, and a pkcs11: key is refused, since a token key cannot leave the token.`,
		Example: `  mcusign getpriv -k enc-x25519.pem > autogen-enckey.c
  mcusign getpriv -k enc-rsa.pem --minimal > autogen-enckey.c`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if key == "" {
				return usagef("missing -k/--key: give the PEM file of the device's encryption private key")
			}
			if pkcs11key.IsURI(key) {
				return usagef("getpriv cannot export a pkcs11: key: keys in a token never leave it, by design; the bootloader's decryption key must be a PEM file (mcusign keygen -t x25519 -k enc.pem)")
			}
			k, err := e.openKey(key, false)
			if err != nil {
				return err
			}
			defer k.Close()
			if k.file == nil || !k.file.IsPrivate() {
				return usagef("%s holds only a public key; getpriv needs the device's encryption private key", key)
			}
			var buf bytes.Buffer
			if err := keyfmt.EncryptionKey(&buf, k.file.Private, format.value, minimal); err != nil {
				return usagef("%s: %v", key, err)
			}
			_, err = e.stdout.Write(buf.Bytes())
			return err
		},
	}
	fl := cmd.Flags()
	fl.VarP(format, "format", "f", "DER format: openssl (PKCS#1 for RSA, SEC 1 for EC) or pkcs8; default: the key type's (RSA openssl, others pkcs8)")
	fl.StringVarP(&key, "key", "k", "", "the encryption private key: PEM file (required)")
	fl.BoolVar(&minimal, "minimal", false, "leave out what decryption does not need (RSA CRT values, EC public key); the bootloader must be configured for it")
	return cmd
}
