package main

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key"
)

// PKCS#11 keys plug into the commands through their hooks. They go through
// mcusignd (standing, or launched for the command) unless MCUSIGN_INPROCESS=1.
func init() {
	openKeyHook = openPKCS11Key
	keygenHook = generatePKCS11Key
	keyinfoHook = describePKCS11Key
}

func (e *env) pkcs11Options() pkcs11key.Options {
	o := pkcs11key.Options{
		Warn: func(msg string) { fmt.Fprintf(e.stderr, "mcusign: warning: %s\n", msg) },
	}
	// Without a terminal there is no one to ask; pkcs11key then says how
	// to supply the PIN instead.
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		o.Prompt = e.promptPIN
	}
	return o
}

// promptPIN asks for the token PIN on the terminal, without echo.
func (e *env) promptPIN(_ context.Context, prompt string) (string, error) {
	f := e.stdin.(*os.File)
	fmt.Fprint(e.stderr, prompt)
	pin, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	return string(pin), err
}

// checkURI parses a key URI here, so that syntax errors and warnings (such
// as pin-value on the command line) come from mcusign, before any daemon.
func (e *env) checkURI(ref string) error {
	u, err := pkcs11key.ParseURI(ref)
	if err != nil {
		return err
	}
	for _, w := range u.Warnings() {
		fmt.Fprintf(e.stderr, "mcusign: warning: %s\n", w)
	}
	return nil
}

// daemonFor connects to mcusignd for a command on the key ref.
func (e *env) daemonFor(ref string) (*plugin.Conn, error) {
	if err := e.checkURI(ref); err != nil {
		return nil, err
	}
	return e.connectDaemon(ref)
}

func openPKCS11Key(e *env, ref string, needPrivate bool) (*keyRef, bool, error) {
	if !pkcs11key.IsURI(ref) {
		return nil, false, nil
	}
	if inProcess() {
		k, err := openPKCS11KeyInProcess(e, ref, needPrivate)
		return k, true, err
	}
	conn, err := e.daemonFor(ref)
	if err != nil {
		return nil, true, err
	}
	ctx := context.Background()
	if needPrivate {
		k, err := conn.OpenKey(ctx, ref)
		if err != nil {
			conn.Close()
			return nil, true, err
		}
		if k.Info().Published {
			trace.fact("key", "published")
		} else {
			trace.fact("key", "asked")
		}
		t, err := signer.TypeOf(k.Public())
		if err != nil {
			conn.Close()
			return nil, true, err
		}
		return &keyRef{name: ref, typ: t, pub: k.Public(), signer: k, close: conn.Close}, true, nil
	}
	defer conn.Close()
	info, err := conn.PublicKey(ctx, ref, plugin.PurposePublic)
	if err != nil {
		return nil, true, err
	}
	t, err := signer.TypeOf(info.Public)
	if err != nil {
		return nil, true, err
	}
	return &keyRef{name: ref, typ: t, pub: info.Public}, true, nil
}

func openPKCS11KeyInProcess(e *env, ref string, needPrivate bool) (*keyRef, error) {
	ctx := context.Background()
	if needPrivate {
		k, err := pkcs11key.Open(ctx, ref, e.pkcs11Options())
		if err != nil {
			return nil, err
		}
		return &keyRef{name: ref, typ: k.Type(), pub: k.Public(), signer: k}, nil
	}
	pub, err := pkcs11key.PublicKey(ctx, ref, e.pkcs11Options())
	if err != nil {
		return nil, err
	}
	t, err := signer.TypeOf(pub)
	if err != nil {
		return nil, err
	}
	return &keyRef{name: ref, typ: t, pub: pub}, nil
}

func generatePKCS11Key(e *env, ref string, t signer.KeyType) (bool, error) {
	if !pkcs11key.IsURI(ref) {
		return false, nil
	}
	if !t.CanSign() {
		return true, usagef("%s keys are for encryption and are not generated in tokens; generate a signing key (ed25519, ecdsa-p256, ...)", t)
	}
	if inProcess() {
		k, err := pkcs11key.Generate(context.Background(), ref, t, e.pkcs11Options())
		if err != nil {
			return true, err
		}
		fmt.Fprintf(e.stdout, "generated %s key %q in token %q: %s\n", k.Type(), k.Label(), k.Token(), k.URI())
		return true, nil
	}
	conn, err := e.daemonFor(ref)
	if err != nil {
		return true, err
	}
	defer conn.Close()
	k, err := conn.GenerateKey(context.Background(), ref, t)
	if err != nil {
		return true, err
	}
	fmt.Fprintf(e.stdout, "generated %s key %q in token %q: %s\n", k.Type, k.Label, k.Token, k.URI)
	return true, nil
}

func describePKCS11Key(e *env, ref, require string) (bool, error) {
	if !pkcs11key.IsURI(ref) {
		return false, nil
	}
	var info *plugin.KeyInfo
	if inProcess() {
		ki, err := pkcs11key.Info(context.Background(), ref, e.pkcs11Options())
		if err != nil {
			return true, err
		}
		info = &plugin.KeyInfo{
			Type: ki.Type, Label: ki.Label, ID: ki.ID, Token: ki.Token, Serial: ki.Serial, URI: ki.URI,
			HasPrivate: ki.HasPrivate, HasPublicObject: ki.HasPublicObject, Sign: ki.Sign,
			Sensitive: ki.Sensitive, Extractable: ki.Extractable, AlwaysSensitive: ki.AlwaysSensitive,
			NeverExtractable: ki.NeverExtractable, Local: ki.Local,
		}
	} else {
		conn, err := e.daemonFor(ref)
		if err != nil {
			return true, err
		}
		info, err = conn.PublicKey(context.Background(), ref, plugin.PurposeDescribe)
		conn.Close()
		if err != nil {
			return true, err
		}
	}
	kind := "public"
	if info.HasPrivate {
		kind = "private"
	}
	printKeyInfo(e.stdout, kind, info)
	if require != "" && kind != require {
		return true, usagef("key %s is %s, but %s was required", ref, kind, require)
	}
	return true, nil
}

func printKeyInfo(w io.Writer, kind string, info *plugin.KeyInfo) {
	fmt.Fprintln(w, kind)
	fmt.Fprintf(w, "type:              %s\n", info.Type)
	fmt.Fprintf(w, "label:             %s\n", info.Label)
	fmt.Fprintf(w, "id:                %x\n", info.ID)
	fmt.Fprintf(w, "token:             %s (serial %s)\n", info.Token, info.Serial)
	fmt.Fprintf(w, "uri:               %s\n", info.URI)
	if info.HasPrivate {
		fmt.Fprintf(w, "sensitive:         %t\n", info.Sensitive)
		fmt.Fprintf(w, "extractable:       %t\n", info.Extractable)
		fmt.Fprintf(w, "always-sensitive:  %t\n", info.AlwaysSensitive)
		fmt.Fprintf(w, "never-extractable: %t\n", info.NeverExtractable)
		fmt.Fprintf(w, "local:             %t\n", info.Local)
		fmt.Fprintf(w, "can sign:          %t\n", info.Sign)
	}
	fmt.Fprintf(w, "public key object: %t\n", info.HasPublicObject)
}

// envKeySearch names the token(s) searched for the private half of a
// public-key PEM given as the signing key.
const envKeySearch = "MCUSIGN_KEY_SEARCH"

// findPrivateFor finds the token key whose public half is pub, so that a
// public-key PEM can stand for its HSM key: the build (and MCUboot's getpub)
// then name one portable file, and no private key file exists anywhere.
func (e *env) findPrivateFor(pemPath string, pub crypto.PublicKey) (*keyRef, error) {
	want, err := signer.PublicKeyBytes(pub)
	if err != nil {
		return nil, err
	}
	search := os.Getenv(envKeySearch)
	if search == "" {
		search = "pkcs11:"
	}
	if err := e.checkURI(search); err != nil {
		return nil, fmt.Errorf("%s: %w", envKeySearch, err)
	}
	var keys []pkcs11key.KeyInfo
	var listErr error
	var conn *plugin.Conn
	if inProcess() {
		keys, listErr = pkcs11key.List(context.Background(), search, e.pkcs11Options())
	} else {
		if conn, err = e.daemonFor(search); err != nil {
			return nil, err
		}
		var infos []plugin.KeyInfo
		infos, listErr = conn.ListKeys(context.Background(), search)
		for _, i := range infos {
			keys = append(keys, pkcs11key.KeyInfo{Type: i.Type, Label: i.Label, URI: i.URI, Public: i.Public, HasPrivate: i.HasPrivate})
		}
	}
	if listErr != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("%s holds only a public key, and listing the keys of %s to find its private key failed: %w", pemPath, search, listErr)
	}
	var match []pkcs11key.KeyInfo
	var labels []string
	for _, k := range keys {
		if !k.HasPrivate || k.Public == nil {
			continue
		}
		labels = append(labels, fmt.Sprintf("%q", k.Label))
		if got, err := signer.PublicKeyBytes(k.Public); err == nil && bytes.Equal(got, want) {
			match = append(match, k)
		}
	}
	if len(match) != 1 {
		if conn != nil {
			conn.Close()
		}
		if len(match) == 0 {
			return nil, fmt.Errorf("%s holds only a public key and no private key in %s matches it (searched keys: %s); sign with the pkcs11: URI of the key, or set %s to the token that holds it", pemPath, search, strings.Join(labels, ", "), envKeySearch)
		}
		var uris []string
		for _, k := range match {
			uris = append(uris, k.URI)
		}
		return nil, fmt.Errorf("%s matches %d private keys in %s (%s); pass the pkcs11: URI of the one to use", pemPath, len(match), search, strings.Join(uris, ", "))
	}
	uri := match[0].URI
	fmt.Fprintf(e.stderr, "mcusign: %s is a public key; signing with its private key %s\n", pemPath, uri)
	if conn != nil {
		conn.Close()
	}
	k, _, err := openPKCS11Key(e, withSearchParams(uri, search), true)
	return k, err
}

// withSearchParams carries module-path and pin-source of the search URI over
// to the key found with it (the daemon returns URIs without them).
func withSearchParams(keyURI, search string) string {
	s, err := pkcs11key.ParseURI(search)
	if err != nil || (s.ModulePath == "" && s.PINSource == "") {
		return keyURI
	}
	k, err := pkcs11key.ParseURI(keyURI)
	if err != nil {
		return keyURI
	}
	if k.ModulePath == "" {
		k.ModulePath = s.ModulePath
	}
	if k.PINSource == "" {
		k.PINSource = s.PINSource
	}
	return k.String()
}
