package zephyr

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readFixture(t testing.TB, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixturesDir, p))
	require.NoError(t, err)
	return data
}

func TestParseConfig(t *testing.T) {
	c := ParseConfig([]byte("# comment\r\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S=\"a \\\"q\\\" \\\\ b\"\nCONFIG_H=0x200\nCONFIG_E=\"\"\nnot a line\n=x\nCONFIG_U=\"unterminated\n"))
	assert.True(t, c.Bool("CONFIG_A"))
	assert.False(t, c.Bool("CONFIG_B"))
	_, ok := c.String("CONFIG_B")
	assert.False(t, ok, "is not set counts as absent")
	s, _ := c.String("CONFIG_S")
	assert.Equal(t, `a "q" \ b`, s)
	h, _ := c.String("CONFIG_H")
	assert.Equal(t, "0x200", h)
	e, ok := c.String("CONFIG_E")
	assert.True(t, ok)
	assert.Empty(t, e)
	u, _ := c.String("CONFIG_U")
	assert.Equal(t, "unterminated", u)
	assert.Len(t, c, 6)

	real := ParseConfig(readFixture(t, "nrf52dk-mcuboot/zephyr/.config"))
	v, _ := real.String("CONFIG_MCUBOOT_SIGNATURE_KEY_FILE")
	assert.Equal(t, "pkcs11:token=dev;object=fw-key", v)
}

func TestParseCache(t *testing.T) {
	c := ParseCache([]byte("# This is the CMakeCache file.\n//Help text: with=equals\nA:PATH=/x/y\nB:INTERNAL=\n\"C:D\":STRING=v=w\nWEST:INTERNAL=/usr/bin/python3;-m;west\nNOTYPE=z\nbad line\n"))
	assert.Equal(t, Cache{"A": "/x/y", "B": "", "C:D": "v=w", "WEST": "/usr/bin/python3;-m;west", "NOTYPE": "z"}, c)

	real := ParseCache(readFixture(t, "sysbuild-4x/CMakeCache.txt"))
	assert.Equal(t, "sysbuild_toplevel", real["CMAKE_PROJECT_NAME"])
	assert.Equal(t, "/home/user/ws/apps/sb-app", real["APP_DIR"])
}

func TestParseDefines(t *testing.T) {
	d := ParseDefines([]byte("#define A 1 /* 0x1 */\n#  define  B \\\n\t2, \\\n\t3\n#define F(x) x\n#define E\n#define S \"str\\\"q\" // c\n#define NODE DT_N_S_x\n#definex Y\n"))
	tok, n, ok := d.Number("A")
	assert.True(t, ok)
	assert.Equal(t, "1", tok)
	assert.Equal(t, uint64(1), n)
	assert.Equal(t, "2,  3", strings.Join(strings.Fields(d["B"]), "  "))
	assert.NotContains(t, d, "F")
	assert.Contains(t, d, "E")
	assert.NotContains(t, d, "x")
	s, ok := d.String("S")
	assert.True(t, ok)
	assert.Equal(t, `str"q`, s)
}

func TestDevicetree(t *testing.T) {
	dt := ParseDevicetree(readFixture(t, "nrf52dk-mcuboot/zephyr/include/generated/zephyr/devicetree_generated.h"))
	flash, ok := dt.Chosen("zephyr,flash")
	require.True(t, ok)
	assert.Equal(t, "/soc/flash-controller@4001e000/flash@0", dt.Path(flash))
	tok, wbs, ok := dt.Prop(flash, "write-block-size")
	require.True(t, ok)
	assert.Equal(t, "4", tok)
	assert.Equal(t, uint64(4), wbs)
	slot1, ok := dt.NodeLabel("slot1_partition")
	require.True(t, ok)
	_, size, ok := dt.RegSize(slot1)
	require.True(t, ok)
	assert.Equal(t, uint64(0x32000), size)
	_, ok = dt.NodeLabel("nope")
	assert.False(t, ok)

	// Zephyr 2.5: both node labels and label properties; the label
	// property is what west sign used then.
	old := ParseDevicetree(readFixture(t, "legacy-2.5-image-labels/zephyr/include/generated/devicetree_unfixed.h"))
	byLabel, ok := old.LabelProperty("image-1")
	require.True(t, ok)
	byNode, ok := old.NodeLabel("slot1_partition")
	require.True(t, ok)
	assert.Equal(t, byNode, byLabel)
	_, size, ok = old.RegSize(byLabel)
	require.True(t, ok)
	assert.Equal(t, uint64(0x67000), size)

	// Older headers have only the raw reg cells.
	raw := ParseDevicetree([]byte("#define DT_N_NODELABEL_slot0_partition DT_N_S_p\n#define DT_N_S_p_P_reg_IDX_1 4096\n"))
	n, _ := raw.NodeLabel("slot0_partition")
	_, size, ok = raw.RegSize(n)
	require.True(t, ok)
	assert.Equal(t, uint64(4096), size)
}

// TestPartitionManagerFiles: pm.config, pm_config.h and partitions.yml of
// the same build agree on every address and size.
func TestPartitionManagerFiles(t *testing.T) {
	cfg := ParsePMConfig(readFixture(t, "ncs-partition-manager/pm.config"))
	hdr := ParsePMHeader(readFixture(t, "ncs-partition-manager/zephyr/include/generated/pm_config.h"))
	yml := ParsePartitionsYAML(readFixture(t, "ncs-partition-manager/partitions.yml"))
	assert.True(t, strings.HasPrefix(cfg["PM_ALL_BY_SIZE"], "mcuboot_pad mcuboot "), "quoted value unquoted")
	n := 0
	for k, v := range yml {
		assert.Equal(t, v, cfg[k], k)
		assert.Equal(t, v, hdr[k], k)
		n++
	}
	assert.GreaterOrEqual(t, n, 14)
	_, pad, ok := yml.Number("PM_MCUBOOT_PAD_SIZE")
	require.True(t, ok)
	assert.Equal(t, uint64(0x200), pad)
	assert.NotContains(t, yml, "PM_MCUBOOT_PAD_START", "placement.align.start is not the partition's")
}

func TestParseDomains(t *testing.T) {
	d := ParseDomains(readFixture(t, "sysbuild-4x/domains.yaml"))
	assert.Equal(t, "sb-app", d.Default)
	assert.Equal(t, []string{"sb-app", "mcuboot"}, d.Names)
	assert.Equal(t, "/home/user/ws/apps/sb-app/build/mcuboot", d.Dirs["mcuboot"])
	d = ParseDomains([]byte("default: 'app'\ndomains:\n- build_dir: /b/app\n  name: app\n"))
	assert.Equal(t, "app", d.Default)
	assert.Equal(t, "/b/app", d.Dirs["app"])
}

func TestSplitUnixCommand(t *testing.T) {
	for in, want := range map[string][]string{
		``:                           nil,
		`  --pad  --confirm `:        {"--pad", "--confirm"},
		`--custom-tlv 0xa0 'a b'`:    {"--custom-tlv", "0xa0", "a b"},
		`-k "x y\"z" ''`:             {"-k", `x y"z`, ""},
		`a\ b 'c\d'`:                 {"a b", `c\d`},
		`--key pkcs11:token=a;obj=b`: {"--key", "pkcs11:token=a;obj=b"},
	} {
		assert.Equal(t, want, SplitUnixCommand(in), in)
	}
}

func TestExpandCMake(t *testing.T) {
	vars := map[string]string{"APP_DIR": "/app", "A.B": "dot"}
	for in, want := range map[string]string{
		"${APP_DIR}/k.pem": "/app/k.pem",
		"@APP_DIR@/k.pem":  "/app/k.pem",
		"${A.B}":           "dot",
		"a@b.c":            "a@b.c",
		"${":               "${",
		"$ENV{HOME}/k":     "$ENV{HOME}/k",
		"${NOPE}/k":        "/k",
	} {
		got, _ := ExpandCMake(in, vars)
		assert.Equal(t, want, got, in)
	}
	_, undef := ExpandCMake("${NOPE}@ALSO@", vars)
	assert.Equal(t, []string{"NOPE", "ALSO"}, undef)
}
