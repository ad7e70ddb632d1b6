package pkcs11key

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/mcusign/mcusign/signer"
)

// Key is a signing key inside a PKCS#11 token. It implements signer.Key and
// is safe for concurrent use: RSA and ECDSA sign through crypto11's session
// pool, Ed25519 through this package's own pool with raw CKM_EDDSA. A Key
// survives token faults: after the module was reset (see module) it finds
// its token and object again, logging in with the PIN sources it was opened
// with, and refuses to go on if the key under its label and id is no longer
// the same key.
type Key struct {
	m     *module
	u     *URI    // token selectors and PIN source of the URI it was opened with
	opts  Options // PIN prompt, warnings
	tlbl  string  // token label
	ktype uint    // CKA_KEY_TYPE
	kt    signer.KeyType
	pub   crypto.PublicKey
	lbl   string
	id    []byte

	mu  sync.Mutex
	cur keyHandle // in the module generation cur.tok.gen

	// checked is the token (of one module generation) whose signature with
	// this key verified against the public key: the pair is known to match.
	checked atomic.Pointer[token]
}

// keyHandle is a Key's object in one generation of its module.
type keyHandle struct {
	tok  *token
	priv pkcs11.ObjectHandle
	c11  crypto.Signer // RSA and ECDSA only
}

var _ signer.Key = (*Key)(nil)

// Public implements signer.Key.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Type is the MCUboot key type.
func (k *Key) Type() signer.KeyType { return k.kt }

// Label is the key's CKA_LABEL.
func (k *Key) Label() string { return k.lbl }

// ID is the key's CKA_ID.
func (k *Key) ID() []byte { return append([]byte(nil), k.id...) }

// Token is the label of the token holding the key.
func (k *Key) Token() string { return k.tlbl }

// URI is a PKCS#11 URI that selects exactly this key (without module or PIN).
func (k *Key) URI() string { return objectURI(k.tlbl, k.lbl, k.id, "private") }

func objectURI(token, label string, id []byte, typ string) string {
	return URI{Token: token, Object: label, ID: id, Type: typ}.String()
}

// handle returns the key's object in the module's current generation,
// finding it again after a reset: on the token the URI selects, with the
// same label and id, and the same public key. Called with m.ops held
// shared.
func (k *Key) handle(ctx context.Context) (keyHandle, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur.tok != nil && k.cur.tok.gen == k.m.gen {
		return k.cur, nil
	}
	t, err := k.m.openToken(k.u)
	if err != nil {
		return keyHandle{}, err
	}
	if err := t.login(ctx, k.u, k.opts); err != nil {
		return keyHandle{}, err
	}
	var h keyHandle
	err = t.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		sel := *k.u
		sel.Object, sel.ID, sel.Type = k.lbl, k.id, "private"
		o, err := t.lookup(sh, &sel, forSigning)
		if err != nil {
			return err
		}
		nk, err := t.newKey(sh, o, k.u, k.opts)
		if err != nil {
			return err
		}
		if p, ok := nk.pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !p.Equal(k.pub) {
			return kindErr(ErrKeyChanged, "key %s on token %q is no longer the key this process opened (the token was re-initialised with another key under that label and id); open it again", o, t.label)
		}
		h = nk.cur
		return nil
	})
	if err != nil {
		return keyHandle{}, err
	}
	k.cur = h
	return h, nil
}

// Sign implements signer.Key. The first signature of the key (and the
// first after the key was found again following a token fault) is verified
// against the public key before it is returned, so a token whose public
// object does not belong to the private key cannot produce an image that
// will not boot. Once the pair is known to match, signatures are not
// verified again here: a P-384 verification costs more than the token's
// signature, which matters to a daemon signing for many builds; the image
// engine (signer.Build) verifies the signature of every image it makes.
func (k *Key) Sign(ctx context.Context, req signer.SignRequest) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var sig []byte
	var tok *token
	err := k.m.do(k.opts, func() error {
		h, err := k.handle(ctx)
		if err != nil {
			return err
		}
		sig, err = k.sign(ctx, h, req)
		tok = h.tok
		return err
	})
	if err != nil {
		return nil, err
	}
	if k.checked.Load() == tok {
		return sig, nil
	}
	if err := signer.VerifySignature(k.pub, req, sig); err != nil {
		return nil, fmt.Errorf("the signature made by key %q on token %q does not verify against its public key (%w); the token's public key object does not belong to the private key", k.lbl, k.tlbl, err)
	}
	k.checked.Store(tok)
	return sig, nil
}

func (k *Key) sign(ctx context.Context, h keyHandle, req signer.SignRequest) ([]byte, error) {
	if k.kt == signer.Ed25519 {
		return k.signEd25519(ctx, h, req)
	}
	sig, err := signer.SignWith(h.c11, nil, req)
	if err != nil && !errors.Is(err, signer.ErrUnsupportedKey) {
		var code pkcs11.Error
		if errors.As(err, &code) {
			err = h.tok.opError(fmt.Sprintf("signing with key %q", k.lbl), err)
		} else {
			err = fmt.Errorf("signing with key %q on token %q: %w", k.lbl, k.tlbl, err)
		}
	}
	return sig, err
}

// signEd25519 is a single-part C_Sign with CKM_EDDSA: SoftHSM has no
// multi-part EdDSA, and pure mode needs the whole payload in one call anyway.
func (k *Key) signEd25519(ctx context.Context, h keyHandle, req signer.SignRequest) ([]byte, error) {
	msg := req.Digest
	if req.Pure {
		msg = req.Payload
	}
	if len(msg) == 0 {
		return nil, errors.New("nothing to sign: the request has no digest (or, with --pure, no payload)")
	}
	var sig []byte
	err := h.tok.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		p := h.tok.p11()
		if err := p.SignInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmEdDSA, nil)}, h.priv); err != nil {
			if isCode(err, pkcs11.CKR_MECHANISM_INVALID) {
				return fmt.Errorf("token %q does not support CKM_EDDSA (PKCS#11 3.0), so it cannot sign with Ed25519 key %q; use another key type or a newer token library", k.tlbl, k.lbl)
			}
			return h.tok.opError(fmt.Sprintf("starting an Ed25519 signature with key %q", k.lbl), err)
		}
		s, err := p.Sign(sh, msg)
		if err != nil {
			return h.tok.opError(fmt.Sprintf("signing with Ed25519 key %q", k.lbl), err)
		}
		sig = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("token %q returned a %d-byte Ed25519 signature, want 64", k.tlbl, len(sig))
	}
	return sig, nil
}

// c11Signer pairs crypto11's private key with the public key we read, so
// keys without a public object can still sign.
type c11Signer struct {
	crypto11.PrivateKey
	pub crypto.PublicKey
}

func (s c11Signer) Public() crypto.PublicKey { return s.pub }

// session opens the token the URI names, logs in and runs fn on a session;
// after a token fault it resets the module and runs fn once more (see
// module.do).
func session(ctx context.Context, uri string, opts Options, fn func(t *token, u *URI, sh pkcs11.SessionHandle) error) error {
	u, err := ParseURI(uri)
	if err != nil {
		return err
	}
	opts.warn(u)
	m, err := moduleFor(u)
	if err != nil {
		return err
	}
	return m.do(opts, func() error {
		t, err := m.openToken(u)
		if err != nil {
			return err
		}
		if err := t.login(ctx, u, opts); err != nil {
			return err
		}
		return t.withSession(ctx, func(sh pkcs11.SessionHandle) error { return fn(t, u, sh) })
	})
}

// Open finds the private key the URI names (object= and/or id=) and returns
// it ready to sign. It logs in to the token once per process; the PIN comes
// from pin-source or pin-value in the URI, else MCUSIGN_PIN_FILE, else
// opts.Prompt.
func Open(ctx context.Context, uri string, opts Options) (*Key, error) {
	var k *Key
	err := session(ctx, uri, opts, func(t *token, u *URI, sh pkcs11.SessionHandle) error {
		o, err := t.lookup(sh, u, forSigning)
		if err != nil {
			return err
		}
		k, err = t.newKey(sh, o, u, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// newKey makes a signing Key from a private key object; u and opts are
// what it was opened with (to find it again after a reset).
func (t *token) newKey(sh pkcs11.SessionHandle, o object, u *URI, opts Options) (*Key, error) {
	pub, _, err := t.publicOf(sh, o)
	if err != nil {
		return nil, err
	}
	kt, err := signer.TypeOf(pub)
	if err != nil {
		return nil, kindErr(ErrWrongKeyType, "key %s on token %q: %w", o, t.label, err)
	}
	if !boolAttr(t.attr(sh, o.h, pkcs11.CKA_SIGN)) {
		return nil, kindErr(ErrWrongKeyType, "key %s on token %q may not sign (CKA_SIGN is false); generate a signing key with mcusign keygen", o, t.label)
	}
	if boolAttr(t.attr(sh, o.h, pkcs11.CKA_ALWAYS_AUTHENTICATE)) {
		return nil, kindErr(ErrWrongKeyType, "key %s on token %q wants the PIN again for every signature (CKA_ALWAYS_AUTHENTICATE), which mcusign does not support; use a key without it", o, t.label)
	}
	k := &Key{m: t.m, u: u, opts: opts, tlbl: t.label, ktype: o.ktype, kt: kt, pub: pub, lbl: o.label, id: o.id,
		cur: keyHandle{tok: t, priv: o.h}}
	if kt != signer.Ed25519 {
		if k.cur.c11, err = t.crypto11Key(o, pub); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// crypto11Key finds the same private key through crypto11. The search is
// narrowed by key type so Ed25519 keys on the token (which crypto11 cannot
// parse) are never handed to it.
func (t *token) crypto11Key(o object, pub crypto.PublicKey) (crypto.Signer, error) {
	attrs := crypto11.NewAttributeSet()
	for typ, v := range map[crypto11.AttributeType]any{
		crypto11.CkaKeyType: o.ktype, crypto11.CkaLabel: []byte(o.label), crypto11.CkaId: o.id,
	} {
		if err := attrs.Set(typ, v); err != nil {
			return nil, fmt.Errorf("preparing the crypto11 search for key %s: %w", o, err)
		}
	}
	keys, err := t.c11.FindPrivateKeysWithAttributes(attrs)
	if err != nil {
		return nil, t.opError(fmt.Sprintf("finding key %s with crypto11", o), err)
	}
	if len(keys) != 1 {
		return nil, kindErr(ErrAmbiguousKey, "%d private keys on token %q share the label and id of %s; give them distinct ids", len(keys), t.label, o)
	}
	return c11Signer{PrivateKey: keys[0], pub: pub}, nil
}

// KeyInfo describes a key on a token, for keyinfo and listings.
type KeyInfo struct {
	Type      signer.KeyType   // empty when MCUboot cannot sign with the key
	Algorithm string           // e.g. "RSA-2048", "ECDSA P-256", "Ed25519", "RSA-1024"
	Label     string           // CKA_LABEL
	ID        []byte           // CKA_ID
	Token     string           // token label
	Serial    string           // token serial number
	URI       string           // selects exactly this key; no module or PIN
	Public    crypto.PublicKey // nil when the token does not reveal it
	PublicErr error            // why Public is nil

	HasPrivate      bool // a private key object exists
	HasPublicObject bool // a public key object exists

	// Attributes of the private key object (all false without one).
	Sign               bool // CKA_SIGN
	Sensitive          bool // CKA_SENSITIVE
	Extractable        bool // CKA_EXTRACTABLE
	AlwaysSensitive    bool // CKA_ALWAYS_SENSITIVE
	NeverExtractable   bool // CKA_NEVER_EXTRACTABLE
	Local              bool // CKA_LOCAL: generated inside the token
	AlwaysAuthenticate bool // CKA_ALWAYS_AUTHENTICATE
}

// IDHex is the CKA_ID in lower-case hex.
func (i KeyInfo) IDHex() string { return hex.EncodeToString(i.ID) }

func (t *token) info(sh pkcs11.SessionHandle, o object) KeyInfo {
	ki := KeyInfo{Label: o.label, ID: o.id, Token: t.label, Serial: t.serial}
	pub, pubObj, err := t.publicOf(sh, o)
	ki.Public, ki.PublicErr, ki.HasPublicObject = pub, err, pubObj != nil
	ki.Algorithm = algorithm(o.ktype, pub)
	if kt, err := signer.TypeOf(pub); err == nil && kt.CanSign() {
		ki.Type = kt
	}
	typ := "public"
	if o.class == pkcs11.CKO_PRIVATE_KEY {
		typ, ki.HasPrivate = "private", true
		b := func(a uint) bool { return boolAttr(t.attr(sh, o.h, a)) }
		ki.Sign, ki.Sensitive, ki.Extractable = b(pkcs11.CKA_SIGN), b(pkcs11.CKA_SENSITIVE), b(pkcs11.CKA_EXTRACTABLE)
		ki.AlwaysSensitive, ki.NeverExtractable = b(pkcs11.CKA_ALWAYS_SENSITIVE), b(pkcs11.CKA_NEVER_EXTRACTABLE)
		ki.Local, ki.AlwaysAuthenticate = b(pkcs11.CKA_LOCAL), b(pkcs11.CKA_ALWAYS_AUTHENTICATE)
	}
	ki.URI = objectURI(t.label, o.label, o.id, typ)
	return ki
}

// Info describes the key the URI names (its private object, or its public
// object if the token holds only that). It fails only when the key cannot be
// found; a key MCUboot cannot use is described with an empty Type.
func Info(ctx context.Context, uri string, opts Options) (*KeyInfo, error) {
	var ki KeyInfo
	err := session(ctx, uri, opts, func(t *token, u *URI, sh pkcs11.SessionHandle) error {
		o, err := t.lookup(sh, u, forPublic)
		if err != nil {
			return err
		}
		ki = t.info(sh, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &ki, nil
}

// Info re-reads the key's description from the token.
func (k *Key) Info(ctx context.Context) (*KeyInfo, error) {
	var ki KeyInfo
	err := k.m.do(k.opts, func() error {
		h, err := k.handle(ctx)
		if err != nil {
			return err
		}
		return h.tok.withSession(ctx, func(sh pkcs11.SessionHandle) error {
			// info reads attributes leniently; first make sure the object
			// is still there, so that a token fault is seen as one.
			if _, err := h.tok.p11().GetAttributeValue(sh, h.priv, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)}); err != nil {
				return h.tok.opError(fmt.Sprintf("reading key %q", k.lbl), err)
			}
			o := object{h: h.priv, class: pkcs11.CKO_PRIVATE_KEY, ktype: k.ktype, label: k.lbl, id: k.id}
			ki = h.tok.info(sh, o)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return &ki, nil
}

// PublicKey returns the public key of the key the URI names, for getpub.
// It accepts a token that holds only the public key object.
func PublicKey(ctx context.Context, uri string, opts Options) (crypto.PublicKey, error) {
	var pub crypto.PublicKey
	err := session(ctx, uri, opts, func(t *token, u *URI, sh pkcs11.SessionHandle) error {
		o, err := t.lookup(sh, u, forPublic)
		if err != nil {
			return err
		}
		if pub, _, err = t.publicOf(sh, o); err != nil {
			return err
		}
		if _, err := signer.TypeOf(pub); err != nil {
			return kindErr(ErrWrongKeyType, "key %s on token %q: %w", o, t.label, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return pub, nil
}

// List describes every key pair and lone public key on the token the URI
// names; object/id/type attributes are ignored.
func List(ctx context.Context, uri string, opts Options) ([]KeyInfo, error) {
	var out []KeyInfo
	err := session(ctx, uri, opts, func(t *token, _ *URI, sh pkcs11.SessionHandle) error {
		privs, err := t.objects(sh, pkcs11.CKO_PRIVATE_KEY, "", nil)
		if err != nil {
			return err
		}
		pubs, err := t.objects(sh, pkcs11.CKO_PUBLIC_KEY, "", nil)
		if err != nil {
			return err
		}
		paired := map[pkcs11.ObjectHandle]bool{}
		for _, o := range privs {
			if p, _ := t.matchingPublic(sh, o); p != nil {
				paired[p.h] = true
			}
			out = append(out, t.info(sh, o))
		}
		for _, o := range pubs {
			if !paired[o.h] {
				out = append(out, t.info(sh, o))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
