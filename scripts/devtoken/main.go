// Command devtoken creates mcusign's development token in SoftHSM2: the
// token (if missing) and one key of each signing type (if missing), all
// through package pkcs11key, so the dev token holds exactly what
// `mcusign keygen -k pkcs11:...` would make. scripts/dev-token.sh runs it
// with SOFTHSM2_CONF pointing at the development config; it is not part of
// the mcusign binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key"
)

func main() {
	token := flag.String("token", "mcusign-dev", "token label")
	pinFile := flag.String("pin-file", "", "file holding the user PIN (required)")
	soPINFile := flag.String("so-pin-file", "", "file holding the SO PIN (required)")
	module := flag.String("module", "", "PKCS#11 library (default: MCUSIGN_PKCS11_MODULE, else SoftHSM2)")
	flag.Parse()
	if err := run(*token, *pinFile, *soPINFile, *module); err != nil {
		fmt.Fprintln(os.Stderr, "devtoken:", err)
		os.Exit(1)
	}
}

func readPIN(path, what string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("missing -%s", what)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	pin, ok := strings.CutSuffix(string(b), "\r\n")
	if !ok {
		pin = strings.TrimSuffix(pin, "\n")
	}
	if pin == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return pin, nil
}

func run(token, pinFile, soPINFile, module string) error {
	ctx := context.Background()
	pin, err := readPIN(pinFile, "pin-file")
	if err != nil {
		return err
	}
	soPIN, err := readPIN(soPINFile, "so-pin-file")
	if err != nil {
		return err
	}
	base := pkcs11key.URI{Token: token, ModulePath: module}
	switch err := pkcs11key.InitToken(ctx, base.String(), soPIN, pin); {
	case err == nil:
		fmt.Printf("created token %q\n", token)
	case errors.Is(err, pkcs11key.ErrTokenExists):
		fmt.Printf("token %q exists, keeping it\n", token)
	default:
		return err
	}
	base.PINSource = pinFile
	for _, kt := range []signer.KeyType{signer.RSA2048, signer.RSA3072, signer.ECDSAP256, signer.ECDSAP384, signer.Ed25519} {
		u := base
		u.Object = string(kt)
		switch _, err := pkcs11key.Generate(ctx, u.String(), kt, pkcs11key.Options{}); {
		case err == nil:
			fmt.Printf("generated %-10s pkcs11:token=%s;object=%s\n", kt, token, kt)
		case errors.Is(err, pkcs11key.ErrKeyExists):
			fmt.Printf("kept      %-10s pkcs11:token=%s;object=%s\n", kt, token, kt)
		default:
			return err
		}
	}
	return nil
}
