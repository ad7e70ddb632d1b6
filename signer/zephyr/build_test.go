package zephyr

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcusign/mcusign/signer"
)

const fixturesDir = "../../testdata/zephyr-builds"

// expected is the part of a fixture's expected.json these tests use.
type expected struct {
	Inferred *struct {
		Version    string `json:"version"`
		Align      string `json:"align"`
		HeaderSize string `json:"header_size"`
		SlotSize   string `json:"slot_size"`
		PadHeader  *bool  `json:"pad_header"`
		Key        string `json:"key"`
		Infile     string `json:"infile"`
		Outfile    string `json:"outfile"`
	} `json:"inferred"`
	ImageDir  string   `json:"image_dir"`
	ArgvBin   []string `json:"argv_bin"`
	ArgvHex   []string `json:"argv_hex"`
	ArgvOther []struct {
		Argv []string `json:"argv"`
	} `json:"argv_other"`
}

func fixtures(t *testing.T) map[string]expected {
	entries, err := os.ReadDir(fixturesDir)
	require.NoError(t, err)
	out := map[string]expected{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(fixturesDir, e.Name(), "expected.json"))
		if err != nil {
			continue
		}
		var x expected
		require.NoError(t, json.Unmarshal(data, &x), e.Name())
		out[e.Name()] = x
	}
	require.Len(t, out, 6, "fixtures missing from %s", fixturesDir)
	return out
}

// sameNumber compares numbers as imgtool reads them: 512 and 0x200 are equal.
func sameNumber(t *testing.T, want, got, what string) {
	t.Helper()
	w, err := signer.ParseInt(want)
	require.NoError(t, err, "%s: expected %q", what, want)
	g, err := signer.ParseInt(got)
	require.NoError(t, err, "%s: inferred %q", what, got)
	assert.Equal(t, w, g, "%s: want %s, inferred %s", what, want, got)
}

// TestFixtures: every fixture gives the values of its expected.json
// "inferred", which are what the real west sign / CMake / NCS passed.
func TestFixtures(t *testing.T) {
	for name, x := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			b, err := Inspect(filepath.Join(fixturesDir, name))
			if x.Inferred == nil {
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrNoMCUboot)
				assert.Contains(t, err.Error(), "CONFIG_BOOTLOADER_MCUBOOT=y")
				assert.Contains(t, err.Error(), "SB_CONFIG_BOOTLOADER_MCUBOOT=y")
				assert.NotContains(t, err.Error(), "\n")
				return
			}
			require.NoError(t, err)
			in := x.Inferred
			require.NoError(t, b.Version.Err)
			assert.Equal(t, in.Version, b.Version.Text)
			for _, v := range []struct {
				what, want string
				got        Value
			}{{"align", in.Align, b.Align}, {"header_size", in.HeaderSize, b.HeaderSize}, {"slot_size", in.SlotSize, b.SlotSize}} {
				require.NoError(t, v.got.Err, v.what)
				sameNumber(t, v.want, v.got.Text, v.what)
				assert.NotEmpty(t, v.got.From, v.what)
			}
			assert.Equal(t, in.PadHeader != nil && *in.PadHeader, b.PadHeader)
			if in.Key != "" {
				assert.Equal(t, in.Key, b.Key.Ref)
			}
			if in.Infile != "" {
				require.NotEmpty(t, b.Jobs)
				assert.Equal(t, in.Infile, b.Jobs[0].In)
				assert.Equal(t, in.Outfile, b.Jobs[0].Out)
			}
			assert.Equal(t, x.ImageDir, b.ImageDir)

			// Every recorded imgtool call has a job with the same output
			// and the same values.
			calls := [][]string{x.ArgvBin, x.ArgvHex}
			for _, o := range x.ArgvOther {
				calls = append(calls, o.Argv)
			}
			for _, argv := range calls {
				if argv == nil {
					continue
				}
				out := argv[len(argv)-1]
				var job *Job
				for i := range b.Jobs {
					if b.Jobs[i].Out == out {
						job = &b.Jobs[i]
					}
				}
				require.NotNil(t, job, "no job writes %s", out)
				sameArgs(t, argv, b.Argv(*job))
			}
		})
	}
}

// sameArgs checks that every option of the recorded argv has the same value
// in ours (numbers compared as numbers). The key is compared only where the
// recording has one: west sign never passes it.
func sameArgs(t *testing.T, want, got []string) {
	t.Helper()
	opts := func(argv []string) map[string]string {
		m := map[string]string{}
		for i := 1; i < len(argv)-2; i++ {
			a := argv[i]
			if !strings.HasPrefix(a, "--") {
				continue
			}
			switch a {
			case "--pad-header", "--pad", "--confirm", "--overwrite-only":
				m[a] = "true"
			default:
				m[a] = argv[i+1]
				i++
			}
		}
		return m
	}
	w, g := opts(want), opts(got)
	for k, v := range w {
		require.Contains(t, g, k, "ours lacks %s: %q", k, got)
		switch k {
		case "--align", "--header-size", "--slot-size":
			sameNumber(t, v, g[k], k)
		default:
			assert.Equal(t, v, g[k], k)
		}
	}
	for _, k := range []string{"--pad-header", "--pad", "--confirm"} {
		assert.Equal(t, w[k], g[k], "%s in %q vs %q", k, want, got)
	}
}

// copyFixture copies a fixture into a temporary directory, writable.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	src := filepath.Join(fixturesDir, name)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
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
	})
	require.NoError(t, err)
	return dst
}

// editConfig replaces (or appends) symbols in a .config.
func editConfig(t *testing.T, path string, set map[string]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []string
	done := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		for sym, v := range set {
			if strings.HasPrefix(line, sym+"=") || line == "# "+sym+" is not set" {
				line, done[sym] = v, true
			}
		}
		out = append(out, line)
	}
	for sym, v := range set {
		if !done[sym] {
			out = append(out, v)
		}
	}
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o644))
}

func inspectOK(t *testing.T, dir string) *Build {
	t.Helper()
	b, err := Inspect(dir)
	require.NoError(t, err)
	return b
}

func TestKeyResolution(t *testing.T) {
	t.Run("relative to APPLICATION_CONFIG_DIR", func(t *testing.T) {
		dir := copyFixture(t, "stm32-wbs8-slot0only")
		app := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(app, "keys"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(app, "keys", "fw-signing.pem"), []byte("x"), 0o600))
		cache := filepath.Join(dir, "CMakeCache.txt")
		data, _ := os.ReadFile(cache)
		data = []byte(strings.Replace(string(data), "APPLICATION_CONFIG_DIR:PATH=/home/user/ws/apps/sensor-node", "APPLICATION_CONFIG_DIR:PATH="+filepath.ToSlash(app), 1))
		require.NoError(t, os.WriteFile(cache, data, 0o644))
		b := inspectOK(t, dir)
		require.NoError(t, b.Key.Err)
		assert.Equal(t, filepath.Join(app, "keys", "fw-signing.pem"), b.Key.Ref)
		assert.Contains(t, b.Key.From, "APPLICATION_CONFIG_DIR")
	})
	t.Run("relative to the west workspace around the build", func(t *testing.T) {
		ws := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(ws, ".west"), 0o755))
		require.NoError(t, os.MkdirAll(filepath.Join(ws, "keys"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(ws, "keys", "fw-signing.pem"), []byte("x"), 0o600))
		dir := filepath.Join(ws, "app", "build")
		require.NoError(t, os.MkdirAll(filepath.Dir(dir), 0o755))
		require.NoError(t, os.Rename(copyFixture(t, "stm32-wbs8-slot0only"), dir))
		b := inspectOK(t, dir)
		require.NoError(t, b.Key.Err)
		assert.Equal(t, filepath.Join(ws, "keys", "fw-signing.pem"), b.Key.Ref)
	})
	t.Run("WEST_TOPDIR from the environment", func(t *testing.T) {
		ws := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(ws, "keys"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(ws, "keys", "fw-signing.pem"), []byte("x"), 0o600))
		b, err := inspect(copyFixture(t, "stm32-wbs8-slot0only"), func(k string) string {
			if k == "WEST_TOPDIR" {
				return ws
			}
			return ""
		})
		require.NoError(t, err)
		require.NoError(t, b.Key.Err)
		assert.Equal(t, filepath.Join(ws, "keys", "fw-signing.pem"), b.Key.Ref)
	})
	t.Run("stale relative path names both places searched", func(t *testing.T) {
		b, err := inspect(filepath.Join(fixturesDir, "stm32-wbs8-slot0only"), func(string) string { return "" })
		require.NoError(t, err)
		require.Error(t, b.Key.Err)
		assert.Contains(t, b.Key.Err.Error(), "APPLICATION_CONFIG_DIR=/home/user/ws/apps/sensor-node")
		assert.Contains(t, b.Key.Err.Error(), "WEST_TOPDIR=/home/user/ws")
		assert.Contains(t, b.Key.Err.Error(), "pass -k")
		assert.Equal(t, "/home/user/ws/keys/fw-signing.pem", filepath.ToSlash(b.Key.Ref), "the path Zephyr's build would use")
	})
	t.Run("${APP_DIR} and @VAR@ expand from CMakeCache", func(t *testing.T) {
		dir := copyFixture(t, "sysbuild-4x")
		app := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(app, "k.pem"), []byte("x"), 0o600))
		cache := filepath.Join(dir, "CMakeCache.txt")
		data, _ := os.ReadFile(cache)
		data = []byte(strings.Replace(string(data), "APP_DIR:PATH=/home/user/ws/apps/sb-app", "APP_DIR:PATH="+filepath.ToSlash(app), 1))
		require.NoError(t, os.WriteFile(cache, data, 0o644))
		for _, setting := range []string{`${APP_DIR}/k.pem`, `@APP_DIR@/k.pem`} {
			editConfig(t, filepath.Join(dir, "sb-app/zephyr/.config"), map[string]string{"CONFIG_MCUBOOT_SIGNATURE_KEY_FILE": `CONFIG_MCUBOOT_SIGNATURE_KEY_FILE="` + setting + `"`})
			b := inspectOK(t, dir)
			require.NoError(t, b.Key.Err, setting)
			assert.Equal(t, filepath.Join(app, "k.pem"), filepath.Clean(b.Key.Ref), setting)
		}
	})
	t.Run("pkcs11 URI as is", func(t *testing.T) {
		b := inspectOK(t, filepath.Join(fixturesDir, "nrf52dk-mcuboot"))
		require.NoError(t, b.Key.Err)
		assert.Equal(t, "pkcs11:token=dev;object=fw-key", b.Key.Ref)
	})
	t.Run("no key configured", func(t *testing.T) {
		b := inspectOK(t, filepath.Join(fixturesDir, "legacy-2.5-image-labels"))
		require.Error(t, b.Key.Err)
		assert.Contains(t, b.Key.Err.Error(), "pass -k")
	})
	t.Run("unsigned image requested", func(t *testing.T) {
		dir := copyFixture(t, "nrf52dk-mcuboot")
		editConfig(t, filepath.Join(dir, "zephyr/.config"), map[string]string{
			"CONFIG_MCUBOOT_SIGNATURE_KEY_FILE":      `CONFIG_MCUBOOT_SIGNATURE_KEY_FILE=""`,
			"CONFIG_MCUBOOT_GENERATE_UNSIGNED_IMAGE": "CONFIG_MCUBOOT_GENERATE_UNSIGNED_IMAGE=y",
		})
		b := inspectOK(t, dir)
		require.NoError(t, b.Key.Err)
		assert.Empty(t, b.Key.Ref)
		assert.Contains(t, b.Key.From, "unsigned")
	})
	t.Run("NCS child image: MCUboot's key, relative to MCUboot", func(t *testing.T) {
		dir := copyFixture(t, "ncs-partition-manager")
		mcuboot := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(mcuboot, "boot", "zephyr"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(mcuboot, "root-ec-p256.pem"), []byte("x"), 0o600))
		editConfig(t, filepath.Join(dir, "mcuboot/zephyr/.config"), map[string]string{"CONFIG_BOOT_SIGNATURE_KEY_FILE": `CONFIG_BOOT_SIGNATURE_KEY_FILE="root-ec-p256.pem"`})
		cache := filepath.Join(dir, "mcuboot/CMakeCache.txt")
		data, _ := os.ReadFile(cache)
		data = []byte(strings.ReplaceAll(string(data), "/home/user/ws35/bootloader/mcuboot", filepath.ToSlash(mcuboot)))
		require.NoError(t, os.WriteFile(cache, data, 0o644))
		b := inspectOK(t, dir)
		require.NoError(t, b.Key.Err)
		assert.Equal(t, filepath.Join(mcuboot, "root-ec-p256.pem"), b.Key.Ref)
		assert.Contains(t, b.Key.From, "CONFIG_BOOT_SIGNATURE_KEY_FILE")
	})
}

func TestHeaderAndSlotErrors(t *testing.T) {
	t.Run("MCUboot on but ROM_START_OFFSET 0", func(t *testing.T) {
		dir := copyFixture(t, "nrf52dk-mcuboot")
		editConfig(t, filepath.Join(dir, "zephyr/.config"), map[string]string{"CONFIG_ROM_START_OFFSET": "CONFIG_ROM_START_OFFSET=0"})
		b := inspectOK(t, dir)
		require.Error(t, b.HeaderSize.Err)
		assert.Contains(t, b.HeaderSize.Err.Error(), "--pad-header --header-size")
	})
	t.Run("no devicetree header", func(t *testing.T) {
		dir := copyFixture(t, "nrf52dk-mcuboot")
		require.NoError(t, os.RemoveAll(filepath.Join(dir, "zephyr/include")))
		b := inspectOK(t, dir)
		require.Error(t, b.SlotSize.Err)
		assert.Contains(t, b.SlotSize.Err.Error(), "pass --slot-size")
		require.Error(t, b.Align.Err)
		assert.Contains(t, b.Align.Err.Error(), "pass --align")
		assert.NoError(t, b.HeaderSize.Err)
	})
	t.Run("Zephyr 3.2-3.6 header location", func(t *testing.T) {
		dir := copyFixture(t, "nrf52dk-mcuboot")
		gen := filepath.Join(dir, "zephyr/include/generated")
		require.NoError(t, os.Rename(filepath.Join(gen, "zephyr/devicetree_generated.h"), filepath.Join(gen, "devicetree_generated.h")))
		b := inspectOK(t, dir)
		assert.Equal(t, "204800", b.SlotSize.Text)
		assert.Contains(t, b.SlotSize.From, "zephyr/include/generated/devicetree_generated.h")
	})
	t.Run("partition manager files missing", func(t *testing.T) {
		dir := copyFixture(t, "ncs-partition-manager")
		for _, f := range []string{"pm.config", "partitions.yml", "zephyr/include/generated/pm_config.h"} {
			require.NoError(t, os.Remove(filepath.Join(dir, f)))
		}
		b := inspectOK(t, dir)
		require.Error(t, b.HeaderSize.Err)
		assert.Contains(t, b.HeaderSize.Err.Error(), "partition manager")
	})
	t.Run("partition manager from pm_config.h or partitions.yml alone", func(t *testing.T) {
		for _, keep := range []string{"zephyr/include/generated/pm_config.h", "partitions.yml"} {
			dir := copyFixture(t, "ncs-partition-manager")
			for _, f := range []string{"pm.config", "partitions.yml", "zephyr/include/generated/pm_config.h"} {
				if f != keep {
					require.NoError(t, os.Remove(filepath.Join(dir, f)))
				}
			}
			b := inspectOK(t, dir)
			sameNumber(t, "0x200", b.HeaderSize.Text, keep)
			sameNumber(t, "0x7a000", b.SlotSize.Text, keep)
			assert.True(t, b.PadHeader)
			assert.Contains(t, b.HeaderSize.From, filepath.Base(keep))
		}
	})
	t.Run("write-block-size outside imgtool's set", func(t *testing.T) {
		dir := copyFixture(t, "nrf52dk-mcuboot")
		h := filepath.Join(dir, "zephyr/include/generated/zephyr/devicetree_generated.h")
		data, _ := os.ReadFile(h)
		data = []byte(strings.Replace(string(data), "flash_0_P_write_block_size 4", "flash_0_P_write_block_size 64", 1))
		require.NoError(t, os.WriteFile(h, data, 0o644))
		b := inspectOK(t, dir)
		require.Error(t, b.Align.Err)
		assert.Contains(t, b.Align.Err.Error(), "pass --align")
	})
	t.Run("no write-block-size: 4, as Zephyr's build assumes", func(t *testing.T) {
		dir := copyFixture(t, "nrf52dk-mcuboot")
		h := filepath.Join(dir, "zephyr/include/generated/zephyr/devicetree_generated.h")
		data, _ := os.ReadFile(h)
		data = []byte(strings.Replace(string(data), "flash_0_P_write_block_size 4", "flash_0_P_wbs_gone 4", 1))
		require.NoError(t, os.WriteFile(h, data, 0o644))
		b := inspectOK(t, dir)
		require.NoError(t, b.Align.Err)
		assert.Equal(t, "4", b.Align.Text)
		assert.Contains(t, b.Align.From, "default")
	})
	t.Run("bad version", func(t *testing.T) {
		dir := copyFixture(t, "nrf52dk-mcuboot")
		editConfig(t, filepath.Join(dir, "zephyr/.config"), map[string]string{"CONFIG_MCUBOOT_IMGTOOL_SIGN_VERSION": `CONFIG_MCUBOOT_IMGTOOL_SIGN_VERSION="1.02"`})
		b := inspectOK(t, dir)
		require.Error(t, b.Version.Err)
		assert.Contains(t, b.Version.Err.Error(), "--version")
	})
}

func TestJobs(t *testing.T) {
	t.Run("confirmed variants", func(t *testing.T) {
		dir := copyFixture(t, "nrf52dk-mcuboot")
		editConfig(t, filepath.Join(dir, "zephyr/.config"), map[string]string{"CONFIG_MCUBOOT_GENERATE_CONFIRMED_IMAGE": "CONFIG_MCUBOOT_GENERATE_CONFIRMED_IMAGE=y"})
		b := inspectOK(t, dir)
		var outs []string
		for _, j := range b.Jobs {
			outs = append(outs, j.Out)
			if strings.Contains(j.Out, "confirmed") {
				assert.True(t, j.Pad && j.Confirm)
			}
		}
		assert.Equal(t, []string{"zephyr/zephyr.signed.bin", "zephyr/zephyr.signed.confirmed.bin", "zephyr/zephyr.signed.hex", "zephyr/zephyr.signed.confirmed.hex"}, outs)
	})
	t.Run("kernel name", func(t *testing.T) {
		dir := copyFixture(t, "nrf52dk-mcuboot")
		editConfig(t, filepath.Join(dir, "zephyr/.config"), map[string]string{"CONFIG_KERNEL_BIN_NAME": `CONFIG_KERNEL_BIN_NAME="fw"`})
		b := inspectOK(t, dir)
		assert.Equal(t, "zephyr/fw.bin", b.Jobs[0].In)
		assert.Equal(t, "zephyr/fw.signed.bin", b.Jobs[0].Out)
		assert.Contains(t, strings.Join(b.Notes, "\n"), "zephyr/fw.bin is missing")
	})
	t.Run("no outputs enabled", func(t *testing.T) {
		dir := copyFixture(t, "nrf52dk-mcuboot")
		editConfig(t, filepath.Join(dir, "zephyr/.config"), map[string]string{
			"CONFIG_BUILD_OUTPUT_BIN": "# CONFIG_BUILD_OUTPUT_BIN is not set",
			"CONFIG_BUILD_OUTPUT_HEX": "# CONFIG_BUILD_OUTPUT_HEX is not set",
		})
		b := inspectOK(t, dir)
		require.Error(t, b.JobsErr)
		assert.Contains(t, b.JobsErr.Error(), "INFILE OUTFILE")
	})
	t.Run("extra imgtool args", func(t *testing.T) {
		dir := copyFixture(t, "nrf52dk-mcuboot")
		editConfig(t, filepath.Join(dir, "zephyr/.config"), map[string]string{"CONFIG_MCUBOOT_EXTRA_IMGTOOL_ARGS": `CONFIG_MCUBOOT_EXTRA_IMGTOOL_ARGS="--custom-tlv 0xa0 'a b' -s auto"`})
		b := inspectOK(t, dir)
		require.Len(t, b.Extra, 1)
		assert.Equal(t, []string{"--custom-tlv", "0xa0", "a b", "-s", "auto"}, b.Extra[0].Args)
	})
	t.Run("a key in the extra args wins over the key file", func(t *testing.T) {
		// The HSM set-up: the key file is MCUboot's public key (CMake
		// insists on a file); the extra args, passed after it, name the
		// token's key.
		dir := copyFixture(t, "stm32-wbs8-slot0only")
		editConfig(t, filepath.Join(dir, "zephyr/.config"), map[string]string{"CONFIG_MCUBOOT_EXTRA_IMGTOOL_ARGS": `CONFIG_MCUBOOT_EXTRA_IMGTOOL_ARGS="--key pkcs11:object=fw"`})
		b := inspectOK(t, dir)
		require.NoError(t, b.Key.Err, "the missing key file no longer matters")
		assert.Equal(t, "pkcs11:object=fw", b.Key.Ref)
		assert.True(t, b.Key.InExtra)
		argv := b.Argv(b.Jobs[0])
		assert.Equal(t, 1, strings.Count(strings.Join(argv, " "), "--key"), "%q", argv)
		assert.Contains(t, strings.Join(b.Notes, "\n"), "which is the one used")
	})
}

func TestSysbuild(t *testing.T) {
	t.Run("without domains.yaml: named after APP_DIR", func(t *testing.T) {
		dir := copyFixture(t, "sysbuild-4x")
		require.NoError(t, os.Remove(filepath.Join(dir, "domains.yaml")))
		b := inspectOK(t, dir)
		assert.Equal(t, "sb-app", b.ImageDir)
		assert.Equal(t, KindSysbuild, b.Kind)
	})
	t.Run("without domains.yaml or APP_DIR: the one MCUboot app", func(t *testing.T) {
		dir := copyFixture(t, "sysbuild-4x")
		require.NoError(t, os.Remove(filepath.Join(dir, "domains.yaml")))
		require.NoError(t, os.Rename(filepath.Join(dir, "sb-app"), filepath.Join(dir, "renamed")))
		b := inspectOK(t, dir)
		assert.Equal(t, "renamed", b.ImageDir)
		assert.Equal(t, "renamed/zephyr/zephyr.bin", b.Jobs[0].In)
	})
	t.Run("an image with a domains.yaml is not a sysbuild directory", func(t *testing.T) {
		dir := copyFixture(t, "ncs-partition-manager")
		require.NoError(t, os.WriteFile(filepath.Join(dir, "domains.yaml"), []byte("default: app\n"), 0o644))
		b := inspectOK(t, dir)
		assert.Equal(t, KindNCSChild, b.Kind)
	})
	t.Run("image directory given directly", func(t *testing.T) {
		b := inspectOK(t, filepath.Join(fixturesDir, "sysbuild-4x", "sb-app"))
		assert.Equal(t, KindZephyr, b.Kind)
		assert.Equal(t, "zephyr/zephyr.bin", b.Jobs[0].In)
		sameNumber(t, "512", b.HeaderSize.Text, "header")
	})
	t.Run("sysbuild without MCUboot", func(t *testing.T) {
		dir := copyFixture(t, "sysbuild-4x")
		editConfig(t, filepath.Join(dir, "sb-app/zephyr/.config"), map[string]string{"CONFIG_BOOTLOADER_MCUBOOT": "# CONFIG_BOOTLOADER_MCUBOOT is not set"})
		_, err := Inspect(dir)
		require.ErrorIs(t, err, ErrNoMCUboot)
		assert.Contains(t, err.Error(), "SB_CONFIG_BOOTLOADER_MCUBOOT=y")
	})
	t.Run("NCS sysbuild: padded header, app outputs", func(t *testing.T) {
		dir := copyFixture(t, "sysbuild-4x")
		editConfig(t, filepath.Join(dir, "sb-app/zephyr/.config"), map[string]string{
			"CONFIG_PARTITION_MANAGER_ENABLED": "CONFIG_PARTITION_MANAGER_ENABLED=y",
			"CONFIG_ROM_START_OFFSET":          "CONFIG_ROM_START_OFFSET=0x0",
		})
		pm, err := os.ReadFile(filepath.Join(fixturesDir, "ncs-partition-manager", "pm.config"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "pm.config"), pm, 0o644))
		b := inspectOK(t, dir)
		assert.Equal(t, KindNCSSysbuild, b.Kind)
		assert.True(t, b.PadHeader)
		assert.Equal(t, "0x200", b.HeaderSize.Text)
		assert.Equal(t, "0x7a000", b.SlotSize.Text)
		assert.Equal(t, "sb-app/zephyr/zephyr.signed.bin", b.Jobs[0].Out)
		assert.Equal(t, "/home/user/ws/keys/fw-signing-ec256.pem", b.Key.Ref)
	})
}

func TestNotABuildDir(t *testing.T) {
	_, err := Inspect(filepath.Join(t.TempDir(), "nope"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not found")
	_, err = Inspect(t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a Zephyr build directory")
	assert.False(t, errors.Is(err, ErrNoMCUboot))
}
