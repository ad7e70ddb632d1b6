package pkcs11key

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrBadURI is wrapped by every error about the syntax of a PKCS#11 URI.
var ErrBadURI = errors.New("invalid PKCS#11 URI")

// URI is a parsed RFC 7512 PKCS#11 URI. Path attributes select the module's
// token and the key object; query attributes say where the module and PIN are.
// Empty fields were not given.
type URI struct {
	// Token selection (CK_TOKEN_INFO, CK_SLOT_INFO, CK_INFO).
	Token               string // token=, the token label
	Manufacturer        string // manufacturer=
	Model               string // model=
	Serial              string // serial=
	SlotID              *uint  // slot-id=
	SlotDescription     string // slot-description=
	SlotManufacturer    string // slot-manufacturer=
	LibraryManufacturer string // library-manufacturer=
	LibraryDescription  string // library-description=
	LibraryVersion      string // library-version=, "major" or "major.minor"

	// Object selection.
	Object string // object=, CKA_LABEL
	ID     []byte // id=, CKA_ID (percent-decoded bytes)
	Type   string // type=: public, private, cert, secret-key or data

	// Query attributes.
	ModulePath string // module-path=, absolute path of the PKCS#11 library
	PINSource  string // pin-source=, a file path or file: URI

	// pinValue is unexported and redacted by String so that a PIN given on
	// the command line cannot leak through formatting.
	pinValue secret
}

// IsURI reports whether s is meant as a PKCS#11 URI rather than a file name.
func IsURI(s string) bool {
	return len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme)
}

const scheme = "pkcs11:"

// redacted replaces pin-value in String output. '<' is not a URI character,
// so a redacted URI fed back to ParseURI fails instead of sending a wrong PIN.
const redacted = "<redacted>"

// HasPINValue reports whether the URI carries the PIN itself (pin-value=).
func (u URI) HasPINValue() bool { return u.pinValue != "" }

// Warnings lists what is legal but unsafe in the URI.
func (u URI) Warnings() []string {
	if u.pinValue != "" {
		return []string{"pin-value puts the PIN in the command line, where other users can read it in the process list and shell history; use pin-source=/path/to/pinfile or MCUSIGN_PIN_FILE instead"}
	}
	return nil
}

type attrKind int

const (
	pathAttr attrKind = iota
	queryAttr
)

// attrKinds lists every attribute RFC 7512 defines; anything else is refused
// so that a typo cannot silently widen the key search.
var attrKinds = map[string]attrKind{
	"token": pathAttr, "manufacturer": pathAttr, "model": pathAttr, "serial": pathAttr,
	"slot-id": pathAttr, "slot-description": pathAttr, "slot-manufacturer": pathAttr,
	"library-manufacturer": pathAttr, "library-description": pathAttr, "library-version": pathAttr,
	"object": pathAttr, "id": pathAttr, "type": pathAttr,
	"module-path": queryAttr, "module-name": queryAttr, "pin-source": queryAttr, "pin-value": queryAttr,
}

func badURI(format string, args ...any) error {
	return kindErr(ErrBadURI, "invalid PKCS#11 URI: "+format, args...)
}

// ParseURI parses a PKCS#11 URI strictly: unknown or repeated attributes,
// characters RFC 7512 does not allow unescaped and malformed percent-escapes
// are errors. Error messages name the attribute but never echo its value,
// because the URI may hold a PIN.
func ParseURI(s string) (*URI, error) {
	if !IsURI(s) {
		return nil, badURI("it must start with %q, e.g. pkcs11:token=mcusign-dev;object=ecdsa-p256", scheme)
	}
	rest := s[len(scheme):]
	if strings.ContainsRune(rest, '#') {
		return nil, badURI("a PKCS#11 URI has no fragment; percent-encode '#' as %%23")
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	u := &URI{}
	seen := map[string]bool{}
	if err := u.parseAttrs(path, ";", pathAttr, seen); err != nil {
		return nil, err
	}
	if hasQuery {
		if err := u.parseAttrs(query, "&", queryAttr, seen); err != nil {
			return nil, err
		}
	}
	if u.PINSource != "" && u.pinValue != "" {
		return nil, badURI("pin-source and pin-value are both given; keep only pin-source")
	}
	return u, nil
}

func (u *URI) parseAttrs(part, sep string, kind attrKind, seen map[string]bool) error {
	if part == "" {
		return nil
	}
	where, other := "path", "query (after '?')"
	if kind == queryAttr {
		where, other = "query", "path (before '?')"
	}
	for _, a := range strings.Split(part, sep) {
		name, raw, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return badURI("a %s attribute is not of the form name=value (stray %q?)", where, sep)
		}
		k, known := attrKinds[name]
		switch {
		case strings.HasPrefix(name, "x-"):
			return badURI("vendor attribute %q is not supported; remove it", name)
		case !known:
			return badURI("unknown attribute %q; use token, serial, slot-id, object, id, type in the path and module-path, pin-source, pin-value in the query", name)
		case k != kind:
			return badURI("%s is a %s attribute; move it to the %s", name, map[attrKind]string{pathAttr: "path", queryAttr: "query"}[k], other)
		case seen[name]:
			return badURI("attribute %s appears twice; give it once", name)
		}
		seen[name] = true
		if name == "pin-value" && raw == redacted {
			return badURI("pin-value was redacted when this URI was printed; supply the PIN with pin-source=/path/to/pinfile or MCUSIGN_PIN_FILE")
		}
		val, err := unescape(raw, kind)
		if err != nil {
			return badURI("attribute %s: %v", name, err)
		}
		if err := u.set(name, val); err != nil {
			return err
		}
	}
	return nil
}

func (u *URI) set(name, val string) error {
	if val == "" {
		return badURI("attribute %s is empty; give it a value or leave it out", name)
	}
	switch name {
	case "token":
		u.Token = val
	case "manufacturer":
		u.Manufacturer = val
	case "model":
		u.Model = val
	case "serial":
		u.Serial = val
	case "slot-id":
		if strings.Trim(val, "0123456789") != "" {
			return badURI("slot-id must be a decimal number")
		}
		n, err := strconv.ParseUint(val, 10, 0)
		if err != nil {
			return badURI("slot-id is out of range")
		}
		id := uint(n)
		u.SlotID = &id
	case "slot-description":
		u.SlotDescription = val
	case "slot-manufacturer":
		u.SlotManufacturer = val
	case "library-manufacturer":
		u.LibraryManufacturer = val
	case "library-description":
		u.LibraryDescription = val
	case "library-version":
		if _, _, err := parseLibVersion(val); err != nil {
			return err
		}
		u.LibraryVersion = val
	case "object":
		u.Object = val
	case "id":
		u.ID = []byte(val)
	case "type":
		switch val {
		case "public", "private", "cert", "secret-key", "data":
			u.Type = val
		default:
			return badURI("type must be one of private, public, cert, secret-key, data")
		}
	case "module-path":
		if !filepath.IsAbs(val) {
			return badURI("module-path must be an absolute path to the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so")
		}
		u.ModulePath = val
	case "module-name":
		return badURI("module-name is not supported; give the library's absolute path with module-path=")
	case "pin-source":
		u.PINSource = val
	case "pin-value":
		u.pinValue = secret(val)
	}
	return nil
}

func parseLibVersion(v string) (major, minor byte, err error) {
	maj, min, hasMinor := strings.Cut(v, ".")
	a, errA := strconv.ParseUint(maj, 10, 8)
	b := uint64(0)
	var errB error
	if hasMinor {
		b, errB = strconv.ParseUint(min, 10, 8)
	}
	if errA != nil || errB != nil || strings.HasPrefix(maj, "+") || strings.HasPrefix(min, "+") {
		return 0, 0, badURI("library-version must be major or major.minor, e.g. 2.6")
	}
	return byte(a), byte(b), nil
}

// allowed reports whether RFC 7512 lets c appear unescaped in a value.
func allowed(c byte, kind attrKind) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', // unreserved
		':', '[', ']', '@', '!', '$', '\'', '(', ')', '*', '+', ',', '=': // pk11-res-avail
		return true
	case '&':
		return kind == pathAttr
	case '/', '?', '|':
		return kind == queryAttr
	}
	return false
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unescape decodes percent-escapes. Unlike url.QueryUnescape it keeps '+'
// as a plus sign, which is what RFC 7512 means by it.
func unescape(s string, kind attrKind) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) {
				return "", fmt.Errorf("truncated percent-escape at offset %d; write a literal %% as %%25", i)
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("malformed percent-escape at offset %d; write a literal %% as %%25", i)
			}
			b.WriteByte(hi<<4 | lo)
			i += 2
			continue
		}
		if !allowed(c, kind) {
			return "", fmt.Errorf("character at offset %d must be percent-encoded (e.g. a space as %%20)", i)
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func escape(s string, kind attrKind, all bool) string {
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !all && c != '%' && allowed(c, kind) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdig[c>>4])
		b.WriteByte(hexdig[c&15])
	}
	return b.String()
}

// String formats the URI with its attributes in a fixed order. A pin-value
// is shown as <redacted>.
func (u URI) String() string {
	var path, query []string
	add := func(name, v string) {
		if v != "" {
			path = append(path, name+"="+escape(v, pathAttr, false))
		}
	}
	add("token", u.Token)
	add("manufacturer", u.Manufacturer)
	add("model", u.Model)
	add("serial", u.Serial)
	if u.SlotID != nil {
		path = append(path, "slot-id="+strconv.FormatUint(uint64(*u.SlotID), 10))
	}
	add("slot-description", u.SlotDescription)
	add("slot-manufacturer", u.SlotManufacturer)
	add("library-manufacturer", u.LibraryManufacturer)
	add("library-description", u.LibraryDescription)
	add("library-version", u.LibraryVersion)
	add("object", u.Object)
	if len(u.ID) > 0 {
		path = append(path, "id="+escape(string(u.ID), pathAttr, true))
	}
	add("type", u.Type)
	if u.ModulePath != "" {
		query = append(query, "module-path="+escape(u.ModulePath, queryAttr, false))
	}
	if u.PINSource != "" {
		query = append(query, "pin-source="+escape(u.PINSource, queryAttr, false))
	}
	if u.pinValue != "" {
		query = append(query, "pin-value="+redacted)
	}
	s := scheme + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// GoString keeps %#v from printing the PIN.
func (u URI) GoString() string { return "pkcs11key.URI(" + strconv.Quote(u.String()) + ")" }

// selectsToken reports whether any token-selecting attribute is present.
func (u *URI) selectsToken() bool {
	return u.Token != "" || u.Serial != "" || u.SlotID != nil || u.Manufacturer != "" ||
		u.Model != "" || u.SlotDescription != "" || u.SlotManufacturer != ""
}

// tokenSelector describes the token part for error messages.
func (u *URI) tokenSelector() string {
	var parts []string
	if u.Token != "" {
		parts = append(parts, fmt.Sprintf("token=%q", u.Token))
	}
	if u.Serial != "" {
		parts = append(parts, fmt.Sprintf("serial=%q", u.Serial))
	}
	if u.SlotID != nil {
		parts = append(parts, fmt.Sprintf("slot-id=%d", *u.SlotID))
	}
	for _, kv := range [][2]string{{"manufacturer", u.Manufacturer}, {"model", u.Model},
		{"slot-description", u.SlotDescription}, {"slot-manufacturer", u.SlotManufacturer},
		{"library-manufacturer", u.LibraryManufacturer}, {"library-description", u.LibraryDescription},
		{"library-version", u.LibraryVersion}} {
		if kv[1] != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", kv[0], kv[1]))
		}
	}
	return strings.Join(parts, ";")
}
