package signer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcusign/mcusign/signer/ihex"
	"github.com/stretchr/testify/require"
)

const dumpVectors = "../testdata/vectors"

// readDumpInput reads an image like imgtool dumpinfo: Intel HEX by extension.
func readDumpInput(t testing.TB, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	if strings.EqualFold(filepath.Ext(path), ".hex") {
		data, _, err := ihex.Read(bytes.NewReader(raw))
		require.NoError(t, err)
		return data
	}
	return raw
}

// runDumpinfo mimics `imgtool dumpinfo` on argv (without "imgtool dumpinfo"),
// returning what goes to stdout and to the -o file.
func runDumpinfo(t testing.TB, dir string, args []string) (stdout, file string, outPath string, err error) {
	t.Helper()
	format, img := "", ""
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-f", "--format":
			i++
			format = args[i]
		case "-o", "--outfile":
			i++
			outPath = args[i]
		case "-s", "--silent":
		default:
			require.Empty(t, img, "two image arguments in %q", args)
			img = args[i]
		}
	}
	if format == "" {
		format = FormatHuman
		if outPath != "" {
			format = FormatYAML
		}
	}
	info, err := Inspect(readDumpInput(t, filepath.Join(dir, img)), img)
	if err != nil {
		return "", "", outPath, err
	}
	var so, fo bytes.Buffer
	if info.Warning != "" {
		so.WriteString(info.Warning + "\n")
	}
	if outPath != "" {
		require.NoError(t, info.Write(&fo, format, false))
	} else {
		require.NoError(t, info.Write(&so, format, true))
	}
	return so.String(), fo.String(), outPath, nil
}

type vectorCommand struct {
	Name string   `json:"name"`
	RC   int      `json:"rc"`
	Argv []string `json:"argv"`
}

func dumpinfoCommands(t testing.TB) []vectorCommand {
	t.Helper()
	f, err := os.Open(filepath.Join(dumpVectors, "commands.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var cmds []vectorCommand
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c vectorCommand
		require.NoError(t, json.Unmarshal(sc.Bytes(), &c))
		if len(c.Argv) >= 3 && c.Argv[0] == "imgtool" && c.Argv[1] == "dumpinfo" && c.Argv[2] != "--help" {
			cmds = append(cmds, c)
		}
	}
	require.NoError(t, sc.Err())
	return cmds
}

// TestDumpinfoVectors replays every dumpinfo command of the golden vectors.
func TestDumpinfoVectors(t *testing.T) {
	cmds := dumpinfoCommands(t)
	require.GreaterOrEqual(t, len(cmds), 50)
	for _, c := range cmds {
		t.Run(c.Name, func(t *testing.T) {
			stdout, file, outPath, err := runDumpinfo(t, dumpVectors, c.Argv[2:])
			if c.RC != 0 {
				require.Error(t, err)
				require.NotContains(t, err.Error(), "\n")
				return
			}
			require.NoError(t, err)
			want, err := os.ReadFile(filepath.Join(dumpVectors, "logs", c.Name+".out"))
			require.NoError(t, err)
			require.Equal(t, string(want), stdout, "stdout")
			if outPath != "" {
				want, err := os.ReadFile(filepath.Join(dumpVectors, outPath))
				require.NoError(t, err)
				require.Equal(t, string(want), file, outPath)
			}
		})
	}
}

// TestDumpinfoTextVectors checks the saved human dumps against their images.
func TestDumpinfoTextVectors(t *testing.T) {
	txts, err := filepath.Glob(filepath.Join(dumpVectors, "dumpinfo", "*.txt"))
	require.NoError(t, err)
	more, err := filepath.Glob(filepath.Join(dumpVectors, "variants", "*.dumpinfo.txt"))
	require.NoError(t, err)
	txts = append(txts, more...)
	require.GreaterOrEqual(t, len(txts), 15)
	for _, txt := range txts {
		var img string
		if strings.HasSuffix(txt, ".dumpinfo.txt") {
			img = strings.TrimSuffix(txt, ".dumpinfo.txt") + ".bin"
		} else {
			img = filepath.Join(dumpVectors, "signed", strings.TrimSuffix(filepath.Base(txt), ".txt")+".bin")
		}
		t.Run(filepath.Base(txt), func(t *testing.T) {
			info, err := Inspect(readDumpInput(t, img), img)
			require.NoError(t, err)
			var b bytes.Buffer
			require.NoError(t, info.WriteHuman(&b))
			want, err := os.ReadFile(txt)
			require.NoError(t, err)
			require.Equal(t, string(want), b.String())
		})
	}
}
