package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/filekey"
	"github.com/mcusign/mcusign/signer/ihex"
	"github.com/mcusign/mcusign/signer/pkcs11key/p11test"
)

const zephyrFixtures = "../../testdata/zephyr-builds"

// zephyrExpected is what these tests use of a fixture's expected.json.
type zephyrExpected struct {
	Inferred  map[string]any `json:"inferred"`
	ImageDir  string         `json:"image_dir"`
	ArgvBin   []string       `json:"argv_bin"`
	ArgvHex   []string       `json:"argv_hex"`
	ArgvOther []struct {
		Argv []string `json:"argv"`
	} `json:"argv_other"`
	ArgvBinForced []string `json:"argv_bin_forced"`
	ArgvHexForced []string `json:"argv_hex_forced"`
	BuildTime     struct {
		Calls []struct {
			Argv []string `json:"argv"`
		} `json:"calls"`
	} `json:"build_time"`
	WestSignApp struct {
		ArgvBin []string `json:"argv_bin"`
		ArgvHex []string `json:"argv_hex"`
	} `json:"west_sign_app"`
}

func zephyrFixtureNames(t *testing.T) map[string]zephyrExpected {
	entries, err := os.ReadDir(zephyrFixtures)
	require.NoError(t, err)
	out := map[string]zephyrExpected{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(zephyrFixtures, e.Name(), "expected.json"))
		if err != nil {
			continue
		}
		var x zephyrExpected
		require.NoError(t, json.Unmarshal(data, &x), e.Name())
		out[e.Name()] = x
	}
	require.Len(t, out, 6)
	return out
}

// copyBuild copies a fixture build directory into a fresh temporary
// directory (the sign outputs go into the build directory).
func copyBuild(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	src := filepath.Join(zephyrFixtures, name)
	require.NoError(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	}))
	return dst
}

func testKey(t *testing.T, name string) (string, *filekey.File) {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(vectorsDir, "keys", name))
	require.NoError(t, err)
	k, err := filekey.LoadFile(p, nil)
	require.NoError(t, err)
	return p, k
}

func sameInt(t *testing.T, want, got, what string) {
	t.Helper()
	w, err := signer.ParseInt(want)
	require.NoError(t, err, "%s %q", what, want)
	g, err := signer.ParseInt(got)
	require.NoError(t, err, "%s %q", what, got)
	assert.Equal(t, w, g, "%s: want %s, got %s", what, want, got)
}

// verifyOutput checks that a signed .bin or .hex verifies with key and
// carries version; it returns the image bytes.
func verifyOutput(t *testing.T, path string, key *filekey.File, version string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err, "output %s", path)
	if strings.HasSuffix(path, ".hex") {
		data, _, err = ihex.Read(bytes.NewReader(data))
		require.NoError(t, err)
	}
	_, err = signer.Verify(data, key.Public)
	require.NoError(t, err, "%s does not verify", path)
	info, err := signer.Inspect(data, path)
	require.NoError(t, err)
	v, err := signer.ParseVersion(version)
	require.NoError(t, err)
	assert.Equal(t, v.String(), info.Header.Version, path)
	return data
}

// TestZephyrDoctorFixtures: doctor --format json gives, for every fixture,
// the values of its expected.json "inferred" (numbers compared as numbers:
// west sign printed 512 where the build passes 0x200); the app built
// without MCUboot gets the one clear error and exit 1.
func TestZephyrDoctorFixtures(t *testing.T) {
	for name, x := range zephyrFixtureNames(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := copyBuild(t, name)
			out, errOut, rc := mcusign(t, t.TempDir(), "doctor", "--build-dir", dir, "--format", "json")
			var got map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &got), "doctor output is not one JSON object:\n%s", out)
			if x.Inferred == nil {
				require.Equal(t, 1, rc)
				require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
				for _, want := range []string{"without MCUboot", "CONFIG_BOOTLOADER_MCUBOOT=y", "SB_CONFIG_BOOTLOADER_MCUBOOT=y"} {
					assert.Contains(t, errOut, want)
					assert.Contains(t, got["error"], want)
				}
				assert.NotContains(t, errOut, "header-size")
				return
			}
			require.Zero(t, rc, errOut)
			require.Empty(t, errOut)
			for k, want := range x.Inferred {
				require.Contains(t, got, k)
				switch k {
				case "align", "header_size", "slot_size":
					sameInt(t, want.(string), got[k].(string), k)
				default:
					assert.Equal(t, want, got[k], k)
				}
			}
			if x.ImageDir != "" {
				assert.Equal(t, x.ImageDir, got["image_dir"])
			} else {
				assert.NotContains(t, got, "image_dir")
			}
			assert.NotEmpty(t, got["sources"])
		})
	}
}

// TestZephyrDoctorText: the human report names each value's source, the
// outputs, the equivalent imgtool call and what is wrong.
func TestZephyrDoctorText(t *testing.T) {
	dir := copyBuild(t, "sysbuild-4x")
	out, errOut, rc := mcusign(t, dir, "doctor", dir)
	require.Zero(t, rc, errOut)
	for _, want := range []string{
		"Zephyr sysbuild; application image in sb-app/",
		"2.1.0+7", "sb-app/zephyr/.config CONFIG_MCUBOOT_IMGTOOL_SIGN_VERSION",
		"0x200 (512)", "CONFIG_ROM_START_OFFSET",
		"204800 (0x32000)", "slot1_partition",
		"write-block-size",
		"sb-app/zephyr/zephyr.bin -> sb-app/zephyr/zephyr.signed.bin",
		"imgtool sign --version 2.1.0+7 --header-size 0x200 --slot-size 204800 --align 4 --key /home/user/ws/keys/fw-signing-ec256.pem sb-app/zephyr/zephyr.bin sb-app/zephyr/zephyr.signed.bin",
		"Problems", "/home/user/ws/keys/fw-signing-ec256.pem", "pass -k",
	} {
		assert.Contains(t, out, want)
	}

	_, errOut, rc = mcusign(t, dir, "doctor")
	assert.Equal(t, 2, rc)
	assert.Contains(t, errOut, "--build-dir")

	// A PIN written into the key URI stays out of the report.
	cfg := filepath.Join(dir, "sb-app/zephyr/.config")
	data, _ := os.ReadFile(cfg)
	data = bytes.Replace(data, []byte(`"/home/user/ws/keys/fw-signing-ec256.pem"`), []byte(`"pkcs11:token=t;object=o?pin-value=s3cret-pin"`), 1)
	require.NoError(t, os.WriteFile(cfg, data, 0o644))
	for _, format := range []string{"text", "json"} {
		out, errOut, rc = mcusign(t, dir, "doctor", dir, "--format", format)
		require.Zero(t, rc, errOut)
		assert.NotContains(t, out, "s3cret-pin", format)
		assert.Contains(t, out, "pin-value=<redacted>", format)
	}
}

// TestZephyrSignBuildDir: sign --build-dir writes every output the build
// would write, each verifying with the key given by -k, for every fixture;
// the app without MCUboot gets the clear error and nothing is written.
func TestZephyrSignBuildDir(t *testing.T) {
	keyPath, key := testKey(t, "ed25519.pem")
	for name, x := range zephyrFixtureNames(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := copyBuild(t, name)
			_, errOut, rc := mcusign(t, t.TempDir(), "sign", "--build-dir", dir, "-k", keyPath)
			if x.Inferred == nil {
				require.Equal(t, 1, rc)
				require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
				assert.Contains(t, errOut, "CONFIG_BOOTLOADER_MCUBOOT=y")
				assert.NoFileExists(t, filepath.Join(dir, "zephyr/zephyr.signed.bin"))
				assert.NoFileExists(t, filepath.Join(dir, "zephyr/zephyr.signed.hex"))
				return
			}
			require.Zero(t, rc, errOut)
			version := x.Inferred["version"].(string)
			var outs []string
			for _, argv := range [][]string{x.ArgvBin, x.ArgvHex} {
				outs = append(outs, argv[len(argv)-1])
			}
			for _, o := range x.ArgvOther {
				outs = append(outs, o.Argv[len(o.Argv)-1])
			}
			for _, o := range outs {
				verifyOutput(t, filepath.Join(dir, o), key, version)
			}
			assertNoTempFiles(t, dir)
		})
	}
}

// TestZephyrSignNCS: the NCS outputs are what NCS writes: a HEX at the
// mcuboot_pad address (header padded in), the same image as binary, and a
// test-swap HEX with the trailer magic.
func TestZephyrSignNCS(t *testing.T) {
	keyPath, key := testKey(t, "ecdsa-p256.pem")
	dir := copyBuild(t, "ncs-partition-manager")
	_, errOut, rc := mcusign(t, dir, "sign", "--build-dir", ".", "-k", keyPath)
	require.Zero(t, rc, errOut)
	raw, err := os.ReadFile(filepath.Join(dir, "zephyr/app_signed.hex"))
	require.NoError(t, err)
	hexImg, base, err := ihex.Read(bytes.NewReader(raw))
	require.NoError(t, err)
	assert.Equal(t, uint32(0xc000), base, "signed HEX starts at mcuboot_pad")
	bin := verifyOutput(t, filepath.Join(dir, "zephyr/app_update.bin"), key, "1.4.2+0")
	// ECDSA signatures differ per run; everything before them is equal.
	info, err := signer.Inspect(bin, "app_update.bin")
	require.NoError(t, err)
	end := int(info.Header.HdrSize) + int(info.Header.ImgSize)
	assert.Equal(t, hexImg[:end], bin[:end])
	test := verifyOutput(t, filepath.Join(dir, "zephyr/app_test_update.hex"), key, "1.4.2+0")
	assert.Contains(t, string(test), "\x77\xc2\x95\xf3\x60\xd2\xef\x7f\x35\x52\x50\x0f\x2c\xb6\x79\x80", "trailer magic")
}

// TestZephyrSignOverrides: explicit flags win over inferred values, INFILE
// OUTFILE replace the outputs, and each failure is one line naming the fix.
func TestZephyrSignOverrides(t *testing.T) {
	keyPath, key := testKey(t, "ed25519.pem")

	t.Run("flags win", func(t *testing.T) {
		dir := copyBuild(t, "legacy-2.5-image-labels")
		_, errOut, rc := mcusign(t, dir, "sign", "--build-dir", dir, "-k", keyPath, "--version", "3.4.5+6", "--confirm")
		require.Zero(t, rc, errOut)
		img := verifyOutput(t, filepath.Join(dir, "zephyr/zephyr.signed.bin"), key, "3.4.5+6")
		assert.Len(t, img, 0x67000, "--confirm pads to the inferred slot size")
	})
	t.Run("explicit files", func(t *testing.T) {
		dir := copyBuild(t, "nrf52dk-mcuboot")
		_, errOut, rc := mcusign(t, dir, "sign", "--build-dir", dir, "-k", keyPath, "zephyr/zephyr.hex", "custom.bin")
		require.Zero(t, rc, errOut)
		verifyOutput(t, filepath.Join(dir, "custom.bin"), key, "1.2.3+4")
		assert.NoFileExists(t, filepath.Join(dir, "zephyr/zephyr.signed.bin"))
	})
	t.Run("overwrite-only from .config", func(t *testing.T) {
		dir := copyBuild(t, "stm32-wbs8-slot0only")
		_, errOut, rc := mcusign(t, dir, "sign", "--build-dir", dir, "-k", keyPath, "--pad")
		require.Zero(t, rc, errOut)
		img := verifyOutput(t, filepath.Join(dir, "zephyr/zephyr.signed.bin"), key, "0.9.12+1700")
		info, err := signer.Inspect(img, "x.bin")
		require.NoError(t, err)
		require.NotNil(t, info.Trailer)
		assert.Len(t, img, 393216)
	})
	t.Run("extra imgtool args from .config", func(t *testing.T) {
		dir := copyBuild(t, "nrf52dk-mcuboot")
		cfg := filepath.Join(dir, "zephyr/.config")
		data, _ := os.ReadFile(cfg)
		data = bytes.Replace(data, []byte(`CONFIG_MCUBOOT_EXTRA_IMGTOOL_ARGS=""`), []byte(`CONFIG_MCUBOOT_EXTRA_IMGTOOL_ARGS="--custom-tlv 0xa0 'a b' --version 7.0.0"`), 1)
		require.NoError(t, os.WriteFile(cfg, data, 0o644))
		_, errOut, rc := mcusign(t, dir, "sign", "--build-dir", dir, "-k", keyPath)
		require.Zero(t, rc, errOut)
		// The extra args come after the inferred ones, so their --version wins.
		img := verifyOutput(t, filepath.Join(dir, "zephyr/zephyr.signed.bin"), key, "7.0.0")
		assert.Contains(t, string(img), "a b")
		_, errOut, rc = mcusign(t, dir, "sign", "--build-dir", dir, "-k", keyPath, "--version", "1.0.0")
		require.Zero(t, rc, errOut)
		verifyOutput(t, filepath.Join(dir, "zephyr/zephyr.signed.bin"), key, "1.0.0")
	})
	t.Run("key in the extra imgtool args", func(t *testing.T) {
		dir := copyBuild(t, "stm32-wbs8-slot0only") // its key file does not exist here
		cfg := filepath.Join(dir, "zephyr/.config")
		data, _ := os.ReadFile(cfg)
		data = bytes.Replace(data, []byte(`CONFIG_MCUBOOT_EXTRA_IMGTOOL_ARGS=""`), []byte(`CONFIG_MCUBOOT_EXTRA_IMGTOOL_ARGS="--key `+keyPath+`"`), 1)
		require.NoError(t, os.WriteFile(cfg, data, 0o644))
		_, errOut, rc := mcusign(t, dir, "sign", "--build-dir", dir)
		require.Zero(t, rc, errOut)
		verifyOutput(t, filepath.Join(dir, "zephyr/zephyr.signed.bin"), key, "0.9.12+1700")
		out, _, rc := mcusign(t, dir, "doctor", "--build-dir", dir, "--format", "json")
		require.Zero(t, rc)
		var r map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &r))
		assert.Equal(t, keyPath, r["key"])
		assert.Empty(t, r["problems"])
	})
	for _, tc := range []struct {
		name, fixture string
		args          []string
		rc            int
		want          []string
	}{
		{"key file from the build missing", "stm32-wbs8-slot0only", nil, 1, []string{"keys/fw-signing.pem", "not found", "pass -k"}},
		{"no key configured", "legacy-2.5-image-labels", nil, 1, []string{"no signing key", "pass -k"}},
		{"one file", "nrf52dk-mcuboot", []string{"-k", keyPath, "zephyr/zephyr.bin"}, 2, []string{"both INFILE and OUTFILE"}},
		{"not a build dir", "", []string{"-k", keyPath}, 1, []string{"not a Zephyr build directory"}},
		{"input not built", "nrf52dk-mcuboot", []string{"-k", keyPath, "--rm", "zephyr/zephyr.hex"}, 1, []string{"zephyr.hex not found", "build the app first"}},
		{"sig-out with several outputs", "nrf52dk-mcuboot", []string{"-k", keyPath, "--sig-out", "s.b64"}, 2, []string{"--sig-out", "INFILE OUTFILE"}},
		{"ROM_START_OFFSET 0 with MCUboot", "nrf52dk-mcuboot", []string{"-k", keyPath, "--set", "CONFIG_ROM_START_OFFSET=0x200>CONFIG_ROM_START_OFFSET=0"}, 1, []string{"no room for the MCUboot header", "--pad-header --header-size"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.fixture != "" {
				dir = copyBuild(t, tc.fixture)
			}
			var args []string
			for i := 0; i < len(tc.args); i++ {
				switch tc.args[i] {
				case "--rm":
					require.NoError(t, os.Remove(filepath.Join(dir, tc.args[i+1])))
					i++
				case "--set":
					old, repl, _ := strings.Cut(tc.args[i+1], ">")
					cfg := filepath.Join(dir, "zephyr/.config")
					data, _ := os.ReadFile(cfg)
					require.Contains(t, string(data), old)
					require.NoError(t, os.WriteFile(cfg, bytes.Replace(data, []byte(old), []byte(repl), 1), 0o644))
					i++
				default:
					args = append(args, tc.args[i])
				}
			}
			_, errOut, rc := mcusign(t, dir, append([]string{"sign", "--build-dir", dir}, args...)...)
			require.Equal(t, tc.rc, rc, errOut)
			require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
			for _, w := range tc.want {
				assert.Contains(t, errOut, w)
			}
			assert.NoFileExists(t, filepath.Join(dir, "zephyr/zephyr.signed.bin"))
			assertNoTempFiles(t, dir)
		})
	}
}

// TestZephyrImgtoolArgv replays, with mcusign in place of imgtool, every
// imgtool command line recorded for the fixtures: what `west sign -t imgtool
// -p mcusign -- --key KEY` runs (Zephyr 2.5 and 4.0 shapes, with the user's
// --key after the inferred options), what Zephyr 4.x's build runs
// (`imgtool.py sign ... --key KEY IN OUT`, header size as written in
// .config), and NCS's calls. The recorded key files do not exist here, so
// the key is replaced with a test key. Every output verifies.
func TestZephyrImgtoolArgv(t *testing.T) {
	keyPath, key := testKey(t, "ed25519.pem")
	n := 0
	for name, x := range zephyrFixtureNames(t) {
		calls := map[string][]string{"argv_bin": x.ArgvBin, "argv_hex": x.ArgvHex,
			"west_sign_app.argv_bin": x.WestSignApp.ArgvBin, "west_sign_app.argv_hex": x.WestSignApp.ArgvHex}
		for i, c := range x.BuildTime.Calls {
			calls["build_time."+string(rune('0'+i))] = c.Argv
		}
		for i, o := range x.ArgvOther {
			calls["argv_other."+string(rune('0'+i))] = o.Argv
		}
		for what, argv := range calls {
			if argv == nil {
				continue
			}
			n++
			t.Run(name+"/"+what, func(t *testing.T) {
				dir := copyBuild(t, name)
				args := withKey(argv, keyPath)
				if strings.HasSuffix(args[len(args)-2], "app_to_sign.bin") {
					// NCS's objcopy step: the HEX as binary, gaps 0xff.
					raw, err := os.ReadFile(filepath.Join(dir, "zephyr/mcuboot_primary_app.hex"))
					require.NoError(t, err)
					data, _, err := ihex.Read(bytes.NewReader(raw))
					require.NoError(t, err)
					require.NoError(t, os.WriteFile(filepath.Join(dir, "zephyr/app_to_sign.bin"), data, 0o644))
				}
				_, errOut, rc := mcusign(t, dir, args...)
				require.Zero(t, rc, "%q: %s", args, errOut)
				verifyOutput(t, filepath.Join(dir, args[len(args)-1]), key, versionOf(args))
			})
		}
	}
	require.GreaterOrEqual(t, n, 13)

	// The seed case through `west sign --force`: imgtool got --header-size 0
	// and exits 2; so does mcusign, with one line and no output.
	x := zephyrFixtureNames(t)["nrf52dk-no-mcuboot"]
	for _, argv := range [][]string{x.ArgvBinForced, x.ArgvHexForced} {
		dir := copyBuild(t, "nrf52dk-no-mcuboot")
		_, errOut, rc := mcusign(t, dir, withKey(argv, keyPath)...)
		assert.Equal(t, 2, rc, errOut)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
		assert.NoFileExists(t, filepath.Join(dir, argv[len(argv)-1]))
	}
	// With a version (Zephyr before 4.0 always passed one) the message says
	// why the header size is 0 and how to rebuild.
	dir := copyBuild(t, "nrf52dk-no-mcuboot")
	_, errOut, rc := mcusign(t, dir, "sign", "--version", "0.0.0+0", "--align", "4", "--header-size", "0", "--slot-size", "204800", "--key", keyPath, "zephyr/zephyr.bin", "zephyr/zephyr.signed.bin")
	assert.Equal(t, 2, rc)
	assert.Contains(t, errOut, "CONFIG_BOOTLOADER_MCUBOOT=y")
	assert.Contains(t, errOut, "SB_CONFIG_BOOTLOADER_MCUBOOT=y")
}

// withKey puts the test key into a recorded argv: in place of the recorded
// key, or where `west sign ... -- --key KEY` puts it (after the inferred
// options, before INFILE OUTFILE).
func withKey(argv []string, key string) []string {
	out := append([]string(nil), argv...)
	for i := range out {
		if (out[i] == "--key" || out[i] == "-k") && i+1 < len(out) {
			out[i+1] = key
			return out
		}
	}
	n := len(out)
	return append(append(out[:n-2:n-2], "--key", key), argv[n-2:]...)
}

func versionOf(argv []string) string {
	for i, a := range argv {
		if a == "--version" {
			return argv[i+1]
		}
	}
	return ""
}

// TestZephyrWestSignPKCS11 is the verified `west sign -t imgtool -p mcusign
// -- --key 'pkcs11:...'` call: the URI reaches mcusign as one argument after
// the inferred options and signs with the key in the token.
func TestZephyrWestSignPKCS11(t *testing.T) {
	tok := p11test.NewToken(t)
	tok.ImportPEM(t, "fw", filepath.Join(vectorsDir, "keys", "ed25519.pem"))
	_, key := testKey(t, "ed25519.pem")
	dir := copyBuild(t, "nrf52dk-mcuboot")
	for _, ext := range []string{"bin", "hex"} {
		_, errOut, rc := mcusign(t, dir, "sign", "--version", "1.2.3+4", "--align", "4", "--header-size", "512", "--slot-size", "204800",
			"--key", tok.URI("fw"), "zephyr/zephyr."+ext, "zephyr/zephyr.signed."+ext)
		require.Zero(t, rc, errOut)
		verifyOutput(t, filepath.Join(dir, "zephyr/zephyr.signed."+ext), key, "1.2.3+4")
	}
	// And --build-dir with the URI from CONFIG_MCUBOOT_SIGNATURE_KEY_FILE,
	// pointed at this token.
	cfg := filepath.Join(dir, "zephyr/.config")
	data, _ := os.ReadFile(cfg)
	data = bytes.Replace(data, []byte(`"pkcs11:token=dev;object=fw-key"`), []byte(`"`+tok.URI("fw")+`"`), 1)
	require.NoError(t, os.WriteFile(cfg, data, 0o644))
	require.NoError(t, os.Remove(filepath.Join(dir, "zephyr/zephyr.signed.bin")))
	_, errOut, rc := mcusign(t, dir, "sign", "--build-dir", dir)
	require.Zero(t, rc, errOut)
	verifyOutput(t, filepath.Join(dir, "zephyr/zephyr.signed.bin"), key, "1.2.3+4")
}
