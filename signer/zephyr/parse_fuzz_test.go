package zephyr

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// The parsers read files from build directories that anything may have
// written: they must never panic, and what they return must be what the
// input says.

func FuzzConfig(f *testing.F) {
	f.Add(readFixture(f, "nrf52dk-mcuboot/zephyr/.config")[:4000])
	f.Add(readFixture(f, "sysbuild-4x/zephyr/.config"))
	f.Add([]byte("CONFIG_S=\"a\\\"b\\\\\"\n# CONFIG_N is not set\nCONFIG_U=\"x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := ParseConfig(data)
		for k := range c {
			if !isIdent(k) {
				t.Fatalf("symbol %q is not an identifier", k)
			}
		}
		// A value Kconfig would write reads back unchanged.
		val := string(data)
		if utf8.ValidString(val) && !strings.ContainsAny(val, "\r\n") {
			esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(val)
			got, ok := ParseConfig([]byte("CONFIG_X=\"" + esc + "\"\n")).String("CONFIG_X")
			if val != "n" && (!ok || got != val) {
				t.Fatalf("round trip of %q: got %q", val, got)
			}
		}
	})
}

func FuzzCMakeCache(f *testing.F) {
	f.Add(readFixture(f, "sysbuild-4x/CMakeCache.txt")[:3000])
	f.Add([]byte("\"A:B\":STRING=c\nX:INTERNAL=\n//c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := ParseCache(data)
		for k := range c {
			if k == "" {
				t.Fatal("empty variable name")
			}
		}
		val := string(data)
		if !strings.ContainsAny(val, "\r\n") {
			if got := ParseCache([]byte("V:STRING=" + val + "\n"))["V"]; got != val {
				t.Fatalf("round trip of %q: got %q", val, got)
			}
		}
	})
}

func FuzzDevicetree(f *testing.F) {
	f.Add(readFixture(f, "nrf52dk-mcuboot/zephyr/include/generated/zephyr/devicetree_generated.h")[:6000])
	f.Add(readFixture(f, "legacy-2.5-image-labels/zephyr/include/generated/devicetree_unfixed.h")[:6000])
	f.Add([]byte("#define DT_CHOSEN_zephyr_flash DT_N_S_f\n#define DT_N_S_f_P_write_block_size 8 /* x */\n#define DT_N_S_p_P_label \"image-1\"\n#define DT_N_S_p_REG_IDX_0_VAL_SIZE 0x1000UL\n#define L \\\n 1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dt := ParseDevicetree(data)
		for _, label := range []string{"slot0_partition", "slot1_partition"} {
			if n, ok := dt.NodeLabel(label); ok {
				dt.RegSize(n)
				dt.Path(n)
			}
		}
		if n, ok := dt.LabelProperty("image-1"); ok {
			if !strings.HasPrefix(n, "DT_N") {
				t.Fatalf("label match %q is not a node", n)
			}
			dt.RegSize(n)
		}
		if n, ok := dt.Chosen("zephyr,flash"); ok {
			dt.Prop(n, "write-block-size")
		}
		// A number the generator writes reads back with its value.
		var x uint64
		for i, c := range data {
			if i == 8 {
				break
			}
			x = x<<8 | uint64(c)
		}
		d := ParseDefines([]byte(fmt.Sprintf("#define N %d /* %#x */\n#define H %#x\n", x, x, x)))
		if _, n, ok := d.Number("N"); !ok || n != x {
			t.Fatalf("decimal %d read as %d", x, n)
		}
		if _, n, ok := d.Number("H"); !ok || n != x {
			t.Fatalf("hex %#x read as %#x", x, n)
		}
	})
}

func FuzzPartitionManager(f *testing.F) {
	f.Add(readFixture(f, "ncs-partition-manager/pm.config"))
	f.Add(readFixture(f, "ncs-partition-manager/partitions.yml"))
	f.Add(readFixture(f, "ncs-partition-manager/zephyr/include/generated/pm_config.h")[:1500])
	f.Add([]byte("app:\n  address: 0xc200\n  placement:\n    align: {start: 0x1000}\n  size: 0x79e00\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, pm := range []PM{ParsePMConfig(data), ParsePMHeader(data), ParsePartitionsYAML(data)} {
			for k := range pm {
				if !strings.HasPrefix(k, "PM_") {
					t.Fatalf("key %q without PM_ prefix", k)
				}
				pm.Number(k)
			}
		}
		for k, v := range ParsePartitionsYAML(data) {
			if _, _, ok := parseNumberToken(v); !ok {
				t.Fatalf("partitions.yml value %s=%q is not a number", k, v)
			}
		}
	})
}

func FuzzDomains(f *testing.F) {
	f.Add(readFixture(f, "sysbuild-4x/domains.yaml"))
	f.Add([]byte("default: 'a'\ndomains:\n- build_dir: /x\n  name: a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := ParseDomains(data)
		for name := range d.Dirs {
			found := false
			for _, n := range d.Names {
				found = found || n == name
			}
			if !found {
				t.Fatalf("build_dir for unlisted domain %q", name)
			}
		}
	})
}

func FuzzCMakeArgs(f *testing.F) {
	f.Add(`--custom-tlv 0xa0 'a b' -k "x\"y" \ z`)
	f.Add(`${APP_DIR}/keys/@X@/k.pem ${`)
	f.Fuzz(func(t *testing.T, s string) {
		args := SplitUnixCommand(s)
		// Re-quoting the arguments and splitting again gives them back.
		var quoted []string
		for _, a := range args {
			quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
		}
		again := SplitUnixCommand(strings.Join(quoted, " "))
		if len(again) != len(args) {
			t.Fatalf("%q -> %q -> %q", s, args, again)
		}
		for i := range args {
			if again[i] != args[i] {
				t.Fatalf("%q -> %q -> %q", s, args, again)
			}
		}
		out, _ := ExpandCMake(s, map[string]string{"APP_DIR": "/app"})
		if !strings.Contains(s, "${") && !strings.Contains(s, "@") && out != s {
			t.Fatalf("expanded %q without variables into %q", s, out)
		}
	})
}
