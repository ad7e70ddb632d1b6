package keyfmt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/filekey"
)

const vectors = "../../testdata/vectors"

type command struct {
	Name string   `json:"name"`
	RC   int      `json:"rc"`
	Argv []string `json:"argv"`
}

// getpubCase is one imgtool getpub/getpubhash invocation from commands.jsonl.
type getpubCase struct {
	name    string
	hash    bool // getpubhash
	key     string
	enc     Encoding
	suffix  string
	outputs []string // files holding the expected bytes
	rc      int
	stderr  string // last line of stderr when rc != 0
}

func loadCases(t *testing.T) []getpubCase {
	t.Helper()
	f, err := os.Open(filepath.Join(vectors, "commands.jsonl"))
	require.NoError(t, err)
	defer f.Close()

	var cases []getpubCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c command
		require.NoError(t, json.Unmarshal(sc.Bytes(), &c))
		if len(c.Argv) < 2 || c.Argv[0] != "imgtool" || (c.Argv[1] != "getpub" && c.Argv[1] != "getpubhash") {
			continue
		}
		if c.Argv[1] == "getpub" && len(c.Argv) == 3 && c.Argv[2] == "--help" {
			continue
		}
		if c.Argv[1] == "getpubhash" && len(c.Argv) == 3 && c.Argv[2] == "--help" {
			continue
		}
		gc := getpubCase{name: c.Name, hash: c.Argv[1] == "getpubhash", enc: LangC, rc: c.RC}
		var out string
		args := c.Argv[2:]
		for i := 0; i < len(args); i += 2 {
			require.Less(t, i+1, len(args), "%s: option %s without value", c.Name, args[i])
			v := args[i+1]
			switch args[i] {
			case "-k", "--key":
				gc.key = v
			case "-e", "--encoding":
				gc.enc = Encoding(v)
			case "-l", "--lang": // deprecated spelling of -e lang-c / lang-rust
				gc.enc = Encoding("lang-" + v)
			case "--name-suffix":
				gc.suffix = v
			case "-o", "--output":
				out = v
			default:
				t.Fatalf("%s: unexpected option %s", c.Name, args[i])
			}
		}
		if out != "" {
			gc.outputs = []string{out}
		} else {
			gc.outputs = []string{"logs/" + c.Name + ".out"}
			// getpub/<type>.default.c is that stdout, kept as a file.
			if t, ok := strings.CutPrefix(c.Name, "getpub-"); ok && strings.HasSuffix(t, "-default") {
				gc.outputs = append(gc.outputs, "getpub/"+strings.TrimSuffix(t, "-default")+".default.c")
			}
		}
		if c.RC != 0 {
			errLog, err := os.ReadFile(filepath.Join(vectors, "logs", c.Name+".err"))
			require.NoError(t, err)
			lines := strings.Split(strings.TrimRight(string(errLog), "\n"), "\n")
			gc.stderr = lines[len(lines)-1]
		}
		cases = append(cases, gc)
	}
	require.NoError(t, sc.Err())
	return cases
}

func TestGoldenVectors(t *testing.T) {
	cases := loadCases(t)
	require.NotEmpty(t, cases)
	covered := map[string]bool{}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check := CheckPublicKeyOptions
			if tc.hash {
				check = CheckPublicKeyHashOptions
			}
			if tc.rc != 0 {
				// imgtool rejects these before reading the key.
				err := check(tc.enc, tc.suffix)
				require.Error(t, err)
				msg := "Error: " + err.Error()
				if ValidateNameSuffix(tc.suffix) != nil {
					msg = "Error: Invalid value for '--name-suffix': " + err.Error()
				}
				require.Equal(t, tc.stderr, msg)
				return
			}
			require.NoError(t, check(tc.enc, tc.suffix))

			key, err := filekey.LoadFile(filepath.Join(vectors, tc.key), nil)
			require.NoError(t, err)
			var buf bytes.Buffer
			if tc.hash {
				err = PublicKeyHash(&buf, key.Public, tc.enc, tc.suffix)
			} else {
				err = PublicKey(&buf, key.Public, tc.enc, tc.suffix)
			}
			require.NoError(t, err)
			for _, out := range tc.outputs {
				want, err := os.ReadFile(filepath.Join(vectors, out))
				require.NoError(t, err)
				require.Equal(t, string(want), buf.String(), out)
				covered[out] = true
			}
		})
	}

	// Every getpub vector and every public key PEM was reproduced.
	files, err := filepath.Glob(filepath.Join(vectors, "getpub", "*"))
	require.NoError(t, err)
	pubs, err := filepath.Glob(filepath.Join(vectors, "keys", "*.pub.pem"))
	require.NoError(t, err)
	require.Len(t, files, 6*12)
	require.Len(t, pubs, 6)
	for _, f := range append(files, pubs...) {
		rel, err := filepath.Rel(vectors, f)
		require.NoError(t, err)
		require.True(t, covered[filepath.ToSlash(rel)], "%s not reproduced", rel)
	}
}

func TestParseEncoding(t *testing.T) {
	for _, e := range Encodings {
		got, err := ParseEncoding(string(e))
		require.NoError(t, err)
		require.Equal(t, e, got)
	}
	_, err := ParseEncoding("c")
	require.EqualError(t, err, "'c' is not one of 'lang-c', 'lang-rust', 'pem', 'raw'.")

	for _, e := range HashEncodings {
		got, err := ParseHashEncoding(string(e))
		require.NoError(t, err)
		require.Equal(t, e, got)
	}
	_, err = ParseHashEncoding("pem")
	require.EqualError(t, err, "'pem' is not one of 'lang-c', 'raw'.")

	// Encoders refuse what the parsers refuse.
	key, err := filekey.LoadFile(filepath.Join(vectors, "keys/ed25519.pub.pem"), nil)
	require.NoError(t, err)
	require.Error(t, PublicKeyHash(&bytes.Buffer{}, key.Public, LangRust, ""))
	require.Error(t, PublicKey(&bytes.Buffer{}, key.Public, "", ""))
}

func TestNameSuffix(t *testing.T) {
	for _, ok := range []string{"", "_1", "abc_XYZ_09"} {
		require.NoError(t, ValidateNameSuffix(ok))
	}
	for in, want := range map[string]string{
		"a-b":   `'a-b' must contain only [A-Za-z0-9_]; it is appended directly to a C/Rust identifier.`,
		"it's":  `"it's" must contain only [A-Za-z0-9_]; it is appended directly to a C/Rust identifier.`,
		"a\nb":  `'a\nb' must contain only [A-Za-z0-9_]; it is appended directly to a C/Rust identifier.`,
		"é x":   `'é x' must contain only [A-Za-z0-9_]; it is appended directly to a C/Rust identifier.`,
		"'\"\\": `'\'"\\' must contain only [A-Za-z0-9_]; it is appended directly to a C/Rust identifier.`,
	} {
		require.EqualError(t, ValidateNameSuffix(in), want)
	}

	key, err := filekey.LoadFile(filepath.Join(vectors, "keys/rsa-2048.pem"), nil)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.ErrorIs(t, PublicKey(&buf, key.Public, Raw, "_1"), ErrSuffixNeedsLang)
	require.ErrorIs(t, PublicKey(&buf, key.Public, PEM, "_1"), ErrSuffixNeedsLang)
	require.ErrorIs(t, PublicKeyHash(&buf, key.Public, Raw, "_1"), ErrHashSuffixNeedsC)
	require.Error(t, PublicKey(&buf, key.Public, LangC, "x y"))
	require.Zero(t, buf.Len(), "nothing is written on error")

	// Rust upper-cases the whole symbol, suffix included.
	require.NoError(t, PublicKey(&buf, key.Public, LangRust, "_key2"))
	require.Contains(t, buf.String(), "static RSA_PUB_KEY_KEY2: &[u8] = &[\n")
}

func TestEmitBytes(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, EmitBytesC(&buf, "enc_priv_key", []byte{1, 2, 3, 4, 5, 6, 7, 8, 0xff}))
	require.Equal(t, AutogenHeader+"\n"+
		"const unsigned char enc_priv_key[] = {\n"+
		"    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,\n"+
		"    0xff,\n"+
		"};\n"+
		"const unsigned int enc_priv_key_len = 9;\n", buf.String())

	buf.Reset()
	require.NoError(t, EmitBytesRust(&buf, "X", nil))
	require.Equal(t, AutogenHeader+"\nstatic X: &[u8] = &[\n];\n", buf.String())

	boom := errors.New("disk full")
	require.ErrorIs(t, EmitBytesC(failWriter{boom}, "x", []byte{1}), boom)
}

func TestUnsupportedKey(t *testing.T) {
	_, err := filekey.LoadFile(filepath.Join(vectors, "keys/unsupported-p224.pem"), nil)
	require.ErrorIs(t, err, signer.ErrUnsupportedKey)
	require.ErrorIs(t, PublicKey(&bytes.Buffer{}, "not a key", LangC, ""), signer.ErrUnsupportedKey)
	require.ErrorIs(t, PublicKeyHash(&bytes.Buffer{}, nil, Raw, ""), signer.ErrUnsupportedKey)
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }
