package pkcs11key

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// EnvPINFile names a file holding the user PIN, used when the URI has
// neither pin-source nor pin-value.
const EnvPINFile = "MCUSIGN_PIN_FILE"

// ErrNoPIN means no PIN source was available for a token that needs one.
var ErrNoPIN = errors.New("no PIN")

// maxPINFile bounds what is read from a PIN file; a PIN is short, and a
// mistyped path to a large file should fail fast.
const maxPINFile = 1024

// secret holds a PIN. Every fmt verb prints <redacted>, so a PIN that ends
// up in a format argument by mistake still does not leak.
type secret string

func (secret) String() string                 { return redacted }
func (secret) GoString() string               { return redacted }
func (secret) Format(f fmt.State, _ rune)     { _, _ = io.WriteString(f, redacted) }
func (s secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// resolvePIN finds the PIN for a token: pin-value, pin-source,
// MCUSIGN_PIN_FILE, then the prompt.
func resolvePIN(ctx context.Context, u *URI, token string, prompt func(context.Context, string) (string, error)) (secret, error) {
	if u.pinValue != "" {
		return u.pinValue, nil
	}
	if u.PINSource != "" {
		return readPINSource(u.PINSource, "pin-source")
	}
	if f := os.Getenv(EnvPINFile); f != "" {
		return readPINSource(f, EnvPINFile)
	}
	if prompt != nil {
		p, err := prompt(ctx, fmt.Sprintf("PIN for token %q: ", token))
		if err != nil {
			return "", fmt.Errorf("reading the PIN for token %q: %w", token, err)
		}
		if p == "" {
			return "", kindErr(ErrNoPIN, "an empty PIN was entered for token %q", token)
		}
		return secret(p), nil
	}
	return "", kindErr(ErrNoPIN, "no PIN for token %q: add pin-source=/path/to/pinfile to the URI, set %s to a PIN file, or run on a terminal to be prompted", token, EnvPINFile)
}

// readPINSource reads a PIN file named by a path or a file: URI and strips
// exactly one trailing newline (\n or \r\n), so a PIN may itself end in
// whitespace.
func readPINSource(src, from string) (secret, error) {
	path, err := pinPath(src)
	if err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read the PIN file given by %s: %w; create it (mode 0600) or fix the path", from, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPINFile+1))
	if err != nil {
		return "", fmt.Errorf("cannot read the PIN file given by %s: %w", from, err)
	}
	if len(data) > maxPINFile {
		return "", fmt.Errorf("the PIN file %s given by %s is larger than %d bytes; it must hold only the PIN", path, from, maxPINFile)
	}
	pin := string(data)
	if s, ok := strings.CutSuffix(pin, "\r\n"); ok {
		pin = s
	} else {
		pin = strings.TrimSuffix(pin, "\n")
	}
	if pin == "" {
		return "", kindErr(ErrNoPIN, "the PIN file %s given by %s is empty; write the token's user PIN into it (mode 0600)", path, from)
	}
	return secret(pin), nil
}

// pinPath accepts a plain path or file:/abs, file:///abs, file://localhost/abs.
func pinPath(src string) (string, error) {
	if !strings.HasPrefix(strings.ToLower(src), "file:") {
		return src, nil
	}
	rest := src[len("file:"):]
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		host, p, _ := strings.Cut(after, "/")
		if host != "" && host != "localhost" {
			return "", fmt.Errorf("file: URI with host %q is not supported; use file:///absolute/path", host)
		}
		rest = "/" + p
	}
	if !strings.HasPrefix(rest, "/") || rest == "/" {
		return "", errors.New("a file: URI must name an absolute path, e.g. file:///home/me/.config/mcusign/pin")
	}
	return rest, nil
}
