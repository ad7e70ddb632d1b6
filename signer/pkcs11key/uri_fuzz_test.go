package pkcs11key

import (
	"errors"
	"strings"
	"testing"
)

// uriMarker is put into every pin-value the fuzzer builds: no error
// message may ever contain it.
const uriMarker = "NEVERPRINT"

// FuzzParseURI: key URIs come from command lines, build files and (in
// mcusignd) from clients. No input panics; every refusal is one line that
// wraps ErrBadURI and never echoes a pin-value; whatever parses prints
// (String) to a URI that parses to the same value, with pin-value redacted.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=My%20token;serial=2908f794665dafef;slot-id=7;object=fw+key:v1=a&b;id=%01%02%fe;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:///home/me/pin?x|y",
		"pkcs11:", "PKCS11:object=a", "pkcs11:library-version=2.6;manufacturer=SoftHSM%20project;model=SoftHSM%20v2",
		"pkcs11:slot-description=a;slot-manufacturer=b;library-manufacturer=c;library-description=d",
		"pkcs11:object=a#frag", "pkcs11:object", "pkcs11:object=a;;id=%0", "pkcs11:x-vendor=1", "pkcs11:object=a?token=b",
		"pkcs11:object=a/b", "pkcs11:object=a?pin-source=/p&pin-source=/q", "pkcs11:slot-id=99999999999999999999999",
		"pkcs11:library-version=+2.x", "pkcs11:type=certificate", "pkcs11:object=a?module-name=softhsm2",
		"pkcs11:object=k?pin-value=<redacted>", "pkcs11:object=k?pin-source=/p&pin-value=x",
	} {
		f.Add(s, "")
	}
	f.Add("pkcs11:token=t;object=fw", "1234")
	f.Add("pkcs11:object=fw?module-path=/lib/p.so", "%4")
	f.Add("pkcs11:object=fw?pin-source=/p", "a b")
	f.Fuzz(func(t *testing.T, s, pin string) {
		u, err := ParseURI(s)
		checkURIResult(t, s, u, err)

		// The same URI carrying a PIN: refusals never show it.
		if strings.Contains(s, uriMarker) || strings.Contains(pin, uriMarker) {
			return
		}
		sep := "?"
		if strings.Contains(s, "?") {
			sep = "&"
		}
		withPIN := s + sep + "pin-value=" + uriMarker + pin
		u, err = ParseURI(withPIN)
		checkURIResult(t, withPIN, u, err)
		if err != nil && strings.Contains(err.Error(), uriMarker) {
			t.Fatalf("the error echoes the PIN: %v", err)
		}
		if err == nil && (!u.HasPINValue() || !strings.HasPrefix(string(u.pinValue), uriMarker)) {
			t.Fatalf("pin-value lost: %q", withPIN)
		}
	})
}

func checkURIResult(t *testing.T, s string, u *URI, err error) {
	t.Helper()
	if err != nil {
		if u != nil || !errors.Is(err, ErrBadURI) || !strings.HasPrefix(err.Error(), "invalid PKCS#11 URI: ") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%q: bad refusal %v (%v)", s, u, err)
		}
		return
	}
	printed := u.String()
	if u.HasPINValue() {
		if strings.Contains(printed, uriMarker) || !strings.Contains(printed, "pin-value="+redacted) {
			t.Fatalf("%q prints as %q: pin-value not redacted", s, printed)
		}
		if _, err := ParseURI(printed); err == nil || !strings.Contains(err.Error(), "redacted") {
			t.Fatalf("a redacted URI %q parsed: %v", printed, err)
		}
		return
	}
	u2, err := ParseURI(printed)
	if err != nil {
		t.Fatalf("%q prints as %q, which does not parse: %v", s, printed, err)
	}
	if u2.String() != printed || !sameURI(u, u2) {
		t.Fatalf("%q prints as %q, which parses to %q", s, printed, u2.String())
	}
}

func sameURI(a, b *URI) bool {
	if (a.SlotID == nil) != (b.SlotID == nil) || (a.SlotID != nil && *a.SlotID != *b.SlotID) {
		return false
	}
	x, y := *a, *b
	x.SlotID, y.SlotID = nil, nil
	return x.String() == y.String() && string(x.ID) == string(y.ID) && x.pinValue == y.pinValue
}
