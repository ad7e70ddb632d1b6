package pkcs11key

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"

	"github.com/mcusign/mcusign/signer"
)

// idLen is the length of the random CKA_ID given to new keys.
const idLen = 16

// Generate creates a key pair of type kt inside the token, labelled with the
// URI's object= and identified by its id= (random 16 bytes if absent). The
// private key is a sensitive, non-extractable token object that may only
// sign. It refuses a label (or id) that is already in use.
func Generate(ctx context.Context, uri string, kt signer.KeyType, opts Options) (*Key, error) {
	var k *Key
	err := session(ctx, uri, opts, func(t *token, u *URI, sh pkcs11.SessionHandle) error {
		mech, ktype, pubT, privT, err := genTemplates(kt)
		if err != nil {
			return err
		}
		label, id, err := t.newKeyNames(sh, u)
		if err != nil {
			return err
		}
		pubT = append(pubT, publicCommon(ktype, label, id)...)
		privT = append(privT, privateCommon(ktype, label, id)...)
		_, h, err := t.p11().GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pubT, privT)
		if err != nil {
			if isCode(err, pkcs11.CKR_MECHANISM_INVALID) {
				return kindErr(ErrWrongKeyType, "token %q cannot generate %s keys (mechanism 0x%x not supported); pick another key type", t.label, kt, mech)
			}
			return t.opError(fmt.Sprintf("generating %s key %q", kt, label), err)
		}
		k, err = t.newKey(sh, object{h: h, class: pkcs11.CKO_PRIVATE_KEY, ktype: ktype, label: label, id: id}, u, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// genTemplates returns the mechanism, key type and type-specific attributes
// for generating kt.
func genTemplates(kt signer.KeyType) (mech, ktype uint, pub, priv []*pkcs11.Attribute, err error) {
	switch kt {
	case signer.RSA2048, signer.RSA3072:
		bits := 2048
		if kt == signer.RSA3072 {
			bits = 3072
		}
		pub = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, bits),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
		}
		return pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, pkcs11.CKK_RSA, pub, nil, nil
	case signer.ECDSAP256, signer.ECDSAP384:
		oid := oidP256
		if kt == signer.ECDSAP384 {
			oid = oidP384
		}
		params, _ := asn1.Marshal(oid)
		pub = []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params)}
		return pkcs11.CKM_EC_KEY_PAIR_GEN, pkcs11.CKK_EC, pub, nil, nil
	case signer.Ed25519:
		// The OID form is what PKCS#11 3.1 recommends; lookups accept the
		// older PrintableString "edwards25519" too.
		params, _ := asn1.Marshal(oidEd25519)
		pub = []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params)}
		return ckmECEdwardsKeyPairGen, ckkECEdwards, pub, nil, nil
	case signer.X25519:
		return 0, 0, nil, nil, kindErr(ErrWrongKeyType, "x25519 keys are for image encryption (-E), which needs no HSM; keygen in a token supports rsa-2048, rsa-3072, ecdsa-p256, ecdsa-p384, ed25519")
	}
	return 0, 0, nil, nil, kindErr(ErrWrongKeyType, "cannot generate key type %q in a token; use rsa-2048, rsa-3072, ecdsa-p256, ecdsa-p384 or ed25519", kt)
}

func publicCommon(ktype uint, label string, id []byte) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ktype),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
}

func privateCommon(ktype uint, label string, id []byte) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ktype),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		// A firmware signing key does nothing else.
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
}

// newKeyNames checks the URI names a new key and that nothing on the token
// already uses its label or id; it returns the label and the id to use.
func (t *token) newKeyNames(sh pkcs11.SessionHandle, u *URI) (string, []byte, error) {
	if u.Type != "" && u.Type != "private" {
		return "", nil, badURI("type=%s cannot name a new key pair; drop type= from the URI", u.Type)
	}
	if u.Object == "" {
		return "", nil, badURI("a new key needs a label; add object=<label> to the URI")
	}
	hs, err := t.find(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object)})
	if err != nil {
		return "", nil, err
	}
	if len(hs) > 0 {
		return "", nil, kindErr(ErrKeyExists, "token %q already holds %d object(s) labelled %q; choose another object= label (mcusign never replaces keys)", t.label, len(hs), u.Object)
	}
	id := u.ID
	if len(id) > 0 {
		for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
			objs, err := t.objects(sh, class, "", id)
			if err != nil {
				return "", nil, err
			}
			if len(objs) > 0 {
				return "", nil, kindErr(ErrKeyExists, "token %q already has key %s with this id; choose another id= or leave it out for a random one", t.label, objs[0])
			}
		}
	} else {
		id = make([]byte, idLen)
		if _, err := rand.Read(id); err != nil {
			return "", nil, err
		}
	}
	return u.Object, id, nil
}

// Import stores an existing private key (and its public key) in the token
// under the URI's object= label, for moving keys that are already enrolled
// in bootloaders into an HSM. The stored private key is sensitive and not
// extractable, but not CKA_LOCAL: it existed outside the token before.
func Import(ctx context.Context, uri string, priv crypto.PrivateKey, opts Options) (*Key, error) {
	s, ok := priv.(crypto.Signer)
	if !ok {
		return nil, kindErr(ErrWrongKeyType, "cannot import a %T; import an RSA, ECDSA or Ed25519 private key", priv)
	}
	kt, err := signer.TypeOf(s.Public())
	if err != nil || !kt.CanSign() {
		if err == nil {
			err = fmt.Errorf("%s keys cannot sign", kt)
		}
		return nil, kindErr(ErrWrongKeyType, "cannot import this key: %w", err)
	}
	ktype, pubT, privT, err := importTemplates(priv)
	if err != nil {
		return nil, err
	}
	var k *Key
	err = session(ctx, uri, opts, func(t *token, u *URI, sh pkcs11.SessionHandle) error {
		label, id, err := t.newKeyNames(sh, u)
		if err != nil {
			return err
		}
		p := t.p11()
		h, err := p.CreateObject(sh, append(privateCommon(ktype, label, id), privT...))
		if err != nil {
			return t.opError(fmt.Sprintf("importing private key %q", label), err)
		}
		if _, err := p.CreateObject(sh, append(publicCommon(ktype, label, id), pubT...)); err != nil {
			_ = p.DestroyObject(sh, h)
			return t.opError(fmt.Sprintf("importing public key %q", label), err)
		}
		k, err = t.newKey(sh, object{h: h, class: pkcs11.CKO_PRIVATE_KEY, ktype: ktype, label: label, id: id}, u, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

func importTemplates(priv crypto.PrivateKey) (ktype uint, pub, prv []*pkcs11.Attribute, err error) {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if len(k.Primes) != 2 {
			return 0, nil, nil, kindErr(ErrWrongKeyType, "multi-prime RSA keys cannot be imported")
		}
		k.Precompute()
		e := big.NewInt(int64(k.E)).Bytes()
		pub = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, k.N.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, e),
		}
		prv = append(append([]*pkcs11.Attribute(nil), pub...),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE_EXPONENT, k.D.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PRIME_1, k.Primes[0].Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PRIME_2, k.Primes[1].Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_1, k.Precomputed.Dp.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_2, k.Precomputed.Dq.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_COEFFICIENT, k.Precomputed.Qinv.Bytes()),
		)
		return pkcs11.CKK_RSA, pub, prv, nil
	case *ecdsa.PrivateKey:
		oid := oidP256
		if k.Curve == elliptic.P384() {
			oid = oidP384
		}
		params, _ := asn1.Marshal(oid)
		d, err := k.Bytes()
		if err != nil {
			return 0, nil, nil, kindErr(ErrWrongKeyType, "cannot import this key: %v", err)
		}
		point, err := k.PublicKey.Bytes()
		if err != nil {
			return 0, nil, nil, kindErr(ErrWrongKeyType, "cannot import this key: %v", err)
		}
		ecPoint, _ := asn1.Marshal(point)
		pub = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, ecPoint),
		}
		prv = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, d),
		}
		return pkcs11.CKK_EC, pub, prv, nil
	case ed25519.PrivateKey:
		// SoftHSM and OpenSC name the curve with this PrintableString.
		params := []byte(ed25519PrintableEncoded)
		ecPoint, _ := asn1.Marshal([]byte(k.Public().(ed25519.PublicKey)))
		pub = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, ecPoint),
		}
		prv = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, k.Seed()),
		}
		return ckkECEdwards, pub, prv, nil
	case *ed25519.PrivateKey:
		return importTemplates(*k)
	}
	return 0, nil, nil, kindErr(ErrWrongKeyType, "cannot import a %T; import an RSA, ECDSA or Ed25519 private key", priv)
}

// ErrTokenExists means a token with the requested label already exists.
var ErrTokenExists = errors.New("token already exists")

// InitToken initialises a new token labelled with the URI's token= in the
// module's first free slot and sets its SO and user PINs. It is meant for
// development tokens and tests (SoftHSM2 always has a free slot); real HSMs
// are set up with their vendor's tools. A token created here is visible to
// this process at once.
func InitToken(ctx context.Context, uri, soPIN, userPIN string) error {
	u, err := ParseURI(uri)
	if err != nil {
		return err
	}
	if u.Token == "" || len(u.Token) > 32 {
		return badURI("a new token needs token=<label> of 1 to 32 bytes")
	}
	if soPIN == "" || userPIN == "" {
		return kindErr(ErrNoPIN, "a new token needs a non-empty SO PIN and user PIN")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m, err := moduleFor(u)
	if err != nil {
		return err
	}
	m.ops.RLock()
	defer m.ops.RUnlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.live {
		own, err := m.initialize()
		if err != nil {
			return err
		}
		if own {
			// Leave C_Initialize to crypto11 (see module).
			defer func() { _ = m.p11.Finalize() }()
		}
	}
	slots, err := m.p11.GetSlotList(true)
	if err != nil {
		return kindErr(ErrModule, "listing the slots of PKCS#11 module %s: %v", m.path, err)
	}
	free, found := uint(0), false
	for _, slot := range slots {
		ti, err := m.p11.GetTokenInfo(slot)
		if err != nil {
			continue
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			if !found {
				free, found = slot, true
			}
		} else if ti.Label == u.Token {
			return kindErr(ErrTokenExists, "PKCS#11 module %s already has token %s; choose another label", m.path, tokenDesc{slot, ti})
		}
	}
	if !found {
		return kindErr(ErrModule, "PKCS#11 module %s has no free slot for a new token", m.path)
	}
	fail := func(op string, err error) error {
		return fmt.Errorf("initialising token %q in slot %d: %s: %w", u.Token, free, op, err)
	}
	if err := m.p11.InitToken(free, soPIN, u.Token); err != nil {
		return fail("C_InitToken", err)
	}
	sh, err := m.p11.OpenSession(free, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fail("opening a session", err)
	}
	defer func() { _ = m.p11.CloseSession(sh) }()
	if err := m.p11.Login(sh, pkcs11.CKU_SO, soPIN); err != nil {
		return fail("SO login", err)
	}
	defer func() { _ = m.p11.Logout(sh) }()
	if err := m.p11.InitPIN(sh, userPIN); err != nil {
		return fail("setting the user PIN", err)
	}
	return nil
}
