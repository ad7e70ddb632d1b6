package pkcs11key

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/miekg/pkcs11"
)

// PKCS#11 3.0 constants; miekg/pkcs11 v1.1.2 has the 2.40 headers only.
const (
	ckkECEdwards            = 0x40
	ckmECEdwardsKeyPairGen  = 0x1055
	ckmEdDSA                = 0x1057
	maxObjectsPerFindCall   = 64
	ed25519PrintableEncoded = "\x13\x0cedwards25519"
)

// Errors about keys on a token.
var (
	ErrKeyNotFound  = errors.New("key not found")
	ErrAmbiguousKey = errors.New("ambiguous key")
	ErrWrongKeyType = errors.New("wrong key type")
	ErrKeyExists    = errors.New("key already exists")
	ErrNoPublicKey  = errors.New("public key unavailable")
	// ErrKeyChanged: after a token fault, the key found again under the
	// label and id of an open Key has another public key.
	ErrKeyChanged = errors.New("key changed")
)

// Named curve OIDs in CKA_EC_PARAMS.
var (
	oidP224    = asn1.ObjectIdentifier{1, 3, 132, 0, 33}
	oidP256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384    = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521    = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// object is a key object on the token with the attributes used to find it.
type object struct {
	h     pkcs11.ObjectHandle
	class uint
	ktype uint
	label string
	id    []byte
}

func (o object) String() string {
	if len(o.id) == 0 {
		return fmt.Sprintf("%q", o.label)
	}
	return fmt.Sprintf("%q (id %s)", o.label, hex.EncodeToString(o.id))
}

func ulong(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0)
}

func boolAttr(b []byte) bool { return len(b) == 1 && b[0] != 0 }

func (t *token) find(sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	p := t.p11()
	if err := p.FindObjectsInit(sh, tmpl); err != nil {
		return nil, t.opError("searching objects", err)
	}
	var all []pkcs11.ObjectHandle
	var err error
	for {
		var hs []pkcs11.ObjectHandle
		hs, _, err = p.FindObjects(sh, maxObjectsPerFindCall)
		if err != nil || len(hs) == 0 {
			break
		}
		all = append(all, hs...)
	}
	if ferr := p.FindObjectsFinal(sh); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, t.opError("searching objects", err)
	}
	return all, nil
}

// objects finds key objects of class, narrowed by label and id when given.
func (t *token) objects(sh pkcs11.SessionHandle, class uint, label string, id []byte) ([]object, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
	if label != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, label))
	}
	if len(id) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
	}
	hs, err := t.find(sh, tmpl)
	if err != nil {
		return nil, err
	}
	out := make([]object, 0, len(hs))
	for _, h := range hs {
		a, err := t.p11().GetAttributeValue(sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
			pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		})
		if err != nil {
			return nil, t.opError("reading key attributes", err)
		}
		out = append(out, object{h: h, class: class, ktype: ulong(a[0].Value), label: string(a[1].Value), id: a[2].Value})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].label != out[j].label {
			return out[i].label < out[j].label
		}
		return bytes.Compare(out[i].id, out[j].id) < 0
	})
	return out, nil
}

// labels lists the distinct labels of all keys on the token, for messages.
func (t *token) labels(sh pkcs11.SessionHandle) string {
	seen := map[string]bool{}
	var out []string
	for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY, pkcs11.CKO_SECRET_KEY} {
		objs, err := t.objects(sh, class, "", nil)
		if err != nil {
			return "(could not list them: " + err.Error() + ")"
		}
		for _, o := range objs {
			if !seen[o.label] {
				seen[o.label] = true
				out = append(out, fmt.Sprintf("%q", o.label))
			}
		}
	}
	if len(out) == 0 {
		return "no keys"
	}
	sort.Strings(out)
	return "keys " + strings.Join(out, ", ")
}

// attr reads one attribute; a missing or unreadable attribute gives nil.
func (t *token) attr(sh pkcs11.SessionHandle, h pkcs11.ObjectHandle, typ uint) []byte {
	a, err := t.p11().GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
	if err != nil || len(a) != 1 {
		return nil
	}
	return a[0].Value
}

// purpose says what a looked-up key will be used for.
type purpose int

const (
	forSigning purpose = iota // needs the private key
	forPublic                 // private or public object
)

// lookup finds the one key the URI names. For signing it returns the
// private object; otherwise the private object if there is one, else the
// public one.
func (t *token) lookup(sh pkcs11.SessionHandle, u *URI, p purpose) (object, error) {
	var none object
	switch u.Type {
	case "cert", "data", "secret-key":
		return none, kindErr(ErrWrongKeyType, "type=%s in the URI names a %s, but mcusign needs a key pair; use type=private or leave type out", u.Type, map[string]string{"cert": "certificate", "data": "data object", "secret-key": "secret key"}[u.Type])
	case "public":
		if p == forSigning {
			return none, kindErr(ErrWrongKeyType, "type=public names a public key, but signing needs the private key; use type=private or leave type out")
		}
	}
	if u.Object == "" && len(u.ID) == 0 {
		return none, kindErr(ErrKeyNotFound, "the URI names no key; add object=<label> (token %q holds %s)", t.label, t.labels(sh))
	}
	var privs, pubs []object
	var err error
	if u.Type != "public" {
		if privs, err = t.objects(sh, pkcs11.CKO_PRIVATE_KEY, u.Object, u.ID); err != nil {
			return none, err
		}
	}
	if u.Type != "private" {
		if pubs, err = t.objects(sh, pkcs11.CKO_PUBLIC_KEY, u.Object, u.ID); err != nil {
			return none, err
		}
	}
	cands, kind := privs, "private keys"
	if len(privs) == 0 && p != forSigning {
		cands, kind = pubs, "public keys"
	}
	switch len(cands) {
	case 1:
		return cands[0], nil
	case 0:
		if len(pubs) > 0 {
			return none, kindErr(ErrWrongKeyType, "token %q holds only the public key for %s, but signing needs the private key; generate or import the key pair on the token", t.label, keySel(u))
		}
		if secrets, _ := t.objects(sh, pkcs11.CKO_SECRET_KEY, u.Object, u.ID); len(secrets) > 0 {
			return none, kindErr(ErrWrongKeyType, "%s on token %q is a secret (symmetric) key, not a key pair", keySel(u), t.label)
		}
		return none, kindErr(ErrKeyNotFound, "no key with %s on token %q, which holds %s; fix object= or id= in the URI", keySel(u), t.label, t.labels(sh))
	}
	names := make([]string, len(cands))
	for i, c := range cands {
		names[i] = c.String()
	}
	hint := fmt.Sprintf("add the id of the one you mean to the URI (e.g. id=%s), or relabel them", escape(string(cands[0].id), pathAttr, true))
	if len(cands[0].id) == 0 || bytes.Equal(cands[0].id, cands[1].id) {
		hint = "they cannot be told apart by id; relabel or delete one with the token's tools"
	}
	return none, kindErr(ErrAmbiguousKey, "%s matches %d %s on token %q: %s; %s", keySel(u), len(cands), kind, t.label, strings.Join(names, ", "), hint)
}

func keySel(u *URI) string {
	var s []string
	if u.Object != "" {
		s = append(s, fmt.Sprintf("object=%q", u.Object))
	}
	if len(u.ID) > 0 {
		s = append(s, "id="+hex.EncodeToString(u.ID))
	}
	return strings.Join(s, " and ")
}

// publicOf returns the public key of a key object. For a private key it
// prefers the matching public object; a token without one still reveals
// RSA's modulus and exponent (public attributes of the private key) and
// may offer CKA_PUBLIC_KEY_INFO or CKA_EC_POINT.
func (t *token) publicOf(sh pkcs11.SessionHandle, o object) (crypto.PublicKey, *object, error) {
	if o.class == pkcs11.CKO_PUBLIC_KEY {
		pub, err := t.decodePublic(sh, o)
		return pub, &o, err
	}
	pubObj, err := t.matchingPublic(sh, o)
	if err != nil {
		return nil, nil, err
	}
	if pubObj != nil {
		pub, err := t.decodePublic(sh, *pubObj)
		if err != nil {
			return nil, nil, err
		}
		if rpub, ok := pub.(*rsa.PublicKey); ok {
			// A public object that merely shares a label would make every
			// signature fail at boot; RSA lets us check cheaply.
			if n := t.attr(sh, o.h, pkcs11.CKA_MODULUS); n != nil && new(big.Int).SetBytes(n).Cmp(rpub.N) != 0 {
				return nil, nil, kindErr(ErrNoPublicKey, "the public key object for %s on token %q does not belong to its private key (different modulus); delete the stray public object", o, t.label)
			}
		}
		return pub, pubObj, nil
	}
	if spki := t.attr(sh, o.h, pkcs11.CKA_PUBLIC_KEY_INFO); len(spki) > 0 {
		if pub, err := x509.ParsePKIXPublicKey(spki); err == nil {
			return pub, nil, nil
		}
	}
	// RSA modulus/exponent and, on some tokens, CKA_EC_POINT are readable
	// on the private object itself.
	if pub, err := t.decodePublic(sh, o); err == nil {
		return pub, nil, nil
	}
	return nil, nil, kindErr(ErrNoPublicKey, "token %q has no public key object for %s and does not reveal the public key on the private key; import the public key with the same label and id (CKO_PUBLIC_KEY)", t.label, o)
}

// matchingPublic finds the public object of a private key: same type, id
// and label; else same id; else (no id) same label.
func (t *token) matchingPublic(sh pkcs11.SessionHandle, priv object) (*object, error) {
	try := func(label string, id []byte) (*object, error) {
		objs, err := t.objects(sh, pkcs11.CKO_PUBLIC_KEY, label, id)
		if err != nil {
			return nil, err
		}
		var same []object
		for _, o := range objs {
			if o.ktype == priv.ktype && (label == "" || o.label == label) && (len(id) == 0 || bytes.Equal(o.id, id)) {
				same = append(same, o)
			}
		}
		if len(same) > 1 {
			return nil, kindErr(ErrAmbiguousKey, "%d public key objects on token %q match the private key %s; delete the duplicates", len(same), t.label, priv)
		}
		if len(same) == 1 {
			return &same[0], nil
		}
		return nil, nil
	}
	if priv.label != "" && len(priv.id) > 0 {
		if o, err := try(priv.label, priv.id); o != nil || err != nil {
			return o, err
		}
	}
	if len(priv.id) > 0 {
		return try("", priv.id)
	}
	if priv.label != "" {
		return try(priv.label, nil)
	}
	return nil, nil
}

// decodePublic reads the public key from RSA or EC attributes of o.
func (t *token) decodePublic(sh pkcs11.SessionHandle, o object) (crypto.PublicKey, error) {
	switch o.ktype {
	case pkcs11.CKK_RSA:
		n, e := t.attr(sh, o.h, pkcs11.CKA_MODULUS), t.attr(sh, o.h, pkcs11.CKA_PUBLIC_EXPONENT)
		if len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, kindErr(ErrNoPublicKey, "RSA key %s on token %q has no readable modulus and public exponent", o, t.label)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	case pkcs11.CKK_EC, ckkECEdwards:
		params, point := t.attr(sh, o.h, pkcs11.CKA_EC_PARAMS), t.attr(sh, o.h, pkcs11.CKA_EC_POINT)
		if len(params) == 0 || len(point) == 0 {
			return nil, kindErr(ErrNoPublicKey, "key %s on token %q has no readable CKA_EC_PARAMS and CKA_EC_POINT", o, t.label)
		}
		pub, err := decodeECPublic(o.ktype, params, point)
		if err != nil {
			return nil, fmt.Errorf("key %s on token %q: %w", o, t.label, err)
		}
		return pub, nil
	}
	return nil, kindErr(ErrWrongKeyType, "key %s on token %q has PKCS#11 key type 0x%x; MCUboot signs with RSA, EC (P-256/P-384) or Ed25519 keys", o, t.label, o.ktype)
}

// decodeECPublic turns CKA_EC_PARAMS and CKA_EC_POINT into a Go key.
// CKA_EC_POINT should be a DER OCTET STRING, but some tokens store the raw
// point, so both are accepted.
func decodeECPublic(ktype uint, params, point []byte) (crypto.PublicKey, error) {
	if ktype == ckkECEdwards {
		if !isEd25519Params(params) {
			return nil, kindErr(ErrWrongKeyType, "EdDSA key on a curve other than edwards25519 (CKA_EC_PARAMS %x); MCUboot signs with Ed25519 only", params)
		}
		raw := unwrapOctets(point, ed25519.PublicKeySize)
		if len(raw) != ed25519.PublicKeySize {
			return nil, kindErr(ErrNoPublicKey, "Ed25519 CKA_EC_POINT has %d bytes, want 32", len(raw))
		}
		return ed25519.PublicKey(bytes.Clone(raw)), nil
	}
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(params, &oid); err != nil || len(rest) > 0 {
		return nil, kindErr(ErrWrongKeyType, "CKA_EC_PARAMS is not a named curve OID; MCUboot signs with P-256 or P-384")
	}
	var curve elliptic.Curve
	switch {
	case oid.Equal(oidP256):
		curve = elliptic.P256()
	case oid.Equal(oidP384):
		curve = elliptic.P384()
	case oid.Equal(oidP224):
		curve = elliptic.P224()
	case oid.Equal(oidP521):
		curve = elliptic.P521()
	default:
		return nil, kindErr(ErrWrongKeyType, "EC key on curve %s; MCUboot signs with P-256 or P-384", oid)
	}
	size := 1 + 2*((curve.Params().BitSize+7)/8)
	raw := unwrapOctets(point, size)
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
	if err != nil {
		return nil, kindErr(ErrNoPublicKey, "CKA_EC_POINT is not an uncompressed %s point: %v", curve.Params().Name, err)
	}
	return pub, nil
}

func isEd25519Params(params []byte) bool {
	if string(params) == ed25519PrintableEncoded {
		return true
	}
	var oid asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(params, &oid)
	return err == nil && len(rest) == 0 && oid.Equal(oidEd25519)
}

// unwrapOctets returns the content of a DER OCTET STRING, or b itself when
// it already has the raw length.
func unwrapOctets(b []byte, rawLen int) []byte {
	if len(b) == rawLen {
		return b
	}
	var inner []byte
	if rest, err := asn1.Unmarshal(b, &inner); err == nil && len(rest) == 0 {
		return inner
	}
	return b
}

// algorithm names a key for people, including kinds MCUboot cannot use.
func algorithm(ktype uint, pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	switch ktype {
	case pkcs11.CKK_RSA:
		return "RSA"
	case pkcs11.CKK_EC:
		return "EC"
	case ckkECEdwards:
		return "EdDSA"
	}
	return fmt.Sprintf("PKCS#11 key type 0x%x", ktype)
}
