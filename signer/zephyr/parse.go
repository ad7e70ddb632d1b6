package zephyr

import (
	"bufio"
	"bytes"
	"sort"
	"strconv"
	"strings"
)

// Config is a Kconfig output (zephyr/.config): symbol name, with its
// CONFIG_ or SB_CONFIG_ prefix, to value. Strings are unquoted; a symbol
// written as "# CONFIG_X is not set" has the value "n", as Kconfig means it.
type Config map[string]string

// ParseConfig reads a Kconfig .config file. Lines it does not understand are
// skipped, as Kconfig itself does with a warning.
func ParseConfig(data []byte) Config {
	c := Config{}
	for _, line := range lines(data) {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			if name, ok := strings.CutSuffix(rest, " is not set"); ok && isIdent(name) {
				c[name] = "n"
			}
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok || !isIdent(name) {
			continue
		}
		if strings.HasPrefix(val, `"`) {
			val = unquoteKconfig(val)
		}
		c[name] = val
	}
	return c
}

// Bool reports whether a bool symbol is y.
func (c Config) Bool(name string) bool { return c[name] == "y" }

// String returns a symbol's value and whether the symbol is present at all
// ("is not set" counts as absent).
func (c Config) String(name string) (string, bool) {
	v, ok := c[name]
	if v == "n" {
		return "", false
	}
	return v, ok
}

// unquoteKconfig undoes Kconfig's string escaping: only \" and \\ are
// escaped. A missing closing quote keeps the rest of the line.
func unquoteKconfig(s string) string {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String()
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// Cache is a CMakeCache.txt: variable name to value (the type is dropped).
type Cache map[string]string

// ParseCache reads a CMakeCache.txt. Entries are NAME:TYPE=VALUE, with NAME
// quoted when it holds special characters; // and # lines are comments.
func ParseCache(data []byte) Cache {
	c := Cache{}
	for _, line := range lines(data) {
		line = strings.TrimLeft(line, " \t")
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "//") {
			continue
		}
		var name, rest string
		if strings.HasPrefix(line, `"`) {
			end := strings.IndexByte(line[1:], '"')
			if end < 0 {
				continue
			}
			name, rest = line[1:end+1], line[end+2:]
		} else {
			i := strings.IndexAny(line, ":=")
			if i < 0 {
				continue
			}
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, ":") {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 {
				continue
			}
			rest = rest[eq:]
		}
		val, ok := strings.CutPrefix(rest, "=")
		if !ok || name == "" {
			continue
		}
		c[name] = val
	}
	return c
}

// Defines are the object-like macros of a generated C header (the
// devicetree header, pm_config.h): name to replacement text, with
// continuation lines joined and comments kept.
type Defines map[string]string

// ParseDefines reads the "#define NAME VALUE" lines of a header. Function-like
// macros are skipped: nothing here needs them.
func ParseDefines(data []byte) Defines {
	d := Defines{}
	ls := lines(data)
	for i := 0; i < len(ls); i++ {
		line := ls[i]
		for strings.HasSuffix(line, `\`) && i+1 < len(ls) {
			i++
			line = line[:len(line)-1] + " " + ls[i]
		}
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "#")
		if !ok {
			continue
		}
		rest, ok = strings.CutPrefix(strings.TrimLeft(rest, " \t"), "define")
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		rest = strings.TrimLeft(rest, " \t")
		end := 0
		for end < len(rest) && isIdentByte(rest[end]) {
			end++
		}
		name := rest[:end]
		if name == "" || (end < len(rest) && rest[end] == '(') {
			continue
		}
		d[name] = strings.TrimSpace(rest[end:])
	}
	return d
}

// Number returns the first token of a macro's value, such as 49152 in
// "49152 /* 0xc000 */", and its value. Devicetree headers print decimal;
// pm_config.h prints hex.
func (d Defines) Number(name string) (string, uint64, bool) {
	v, ok := d[name]
	if !ok {
		return "", 0, false
	}
	return parseNumberToken(v)
}

// String returns a macro whose value is a C string literal, unquoted.
func (d Defines) String(name string) (string, bool) {
	v, ok := d[name]
	if !ok || len(v) < 2 || v[0] != '"' {
		return "", false
	}
	s, err := strconv.Unquote(v[:strings.LastIndexByte(v, '"')+1])
	if err != nil {
		return "", false
	}
	return s, true
}

func parseNumberToken(v string) (string, uint64, bool) {
	tok := v
	if i := strings.IndexAny(tok, " \t/"); i >= 0 {
		tok = tok[:i]
	}
	tok = strings.TrimRight(tok, "UuLl") // C suffixes: 0x200UL
	n, err := strconv.ParseUint(tok, 0, 64)
	if err != nil {
		return "", 0, false
	}
	return tok, n, true
}

// Devicetree is the generated devicetree header (gen_defines.py output):
// devicetree_generated.h, or devicetree_unfixed.h before Zephyr 3.2.
type Devicetree struct{ Defines }

// ParseDevicetree reads a generated devicetree header.
func ParseDevicetree(data []byte) Devicetree { return Devicetree{ParseDefines(data)} }

// token turns a devicetree name into its macro form: zephyr,flash becomes
// zephyr_flash, write-block-size becomes write_block_size.
func token(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !isIdentByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

// Chosen returns the node identifier of a /chosen property (zephyr,flash).
func (dt Devicetree) Chosen(prop string) (string, bool) {
	return dt.node("DT_CHOSEN_" + token(prop))
}

// NodeLabel returns the node with a node label (slot0_partition).
func (dt Devicetree) NodeLabel(label string) (string, bool) {
	return dt.node("DT_N_NODELABEL_" + token(label))
}

func (dt Devicetree) node(macro string) (string, bool) {
	v, ok := dt.Defines[macro]
	if !ok || !strings.HasPrefix(v, "DT_N") || strings.ContainsAny(v, " \t(") {
		return "", false
	}
	return v, true
}

// LabelProperty returns the node whose label property is value ("image-0"),
// how partitions were named up to Zephyr 3.2. Several matches: the first by
// node identifier, so the answer does not depend on map order.
func (dt Devicetree) LabelProperty(value string) (string, bool) {
	want := strconv.Quote(value)
	var found []string
	for k, v := range dt.Defines {
		if node, ok := strings.CutSuffix(k, "_P_label"); ok && v == want && strings.HasPrefix(node, "DT_N") {
			found = append(found, node)
		}
	}
	if len(found) == 0 {
		return "", false
	}
	sort.Strings(found)
	return found[0], true
}

// Prop returns a numeric property of a node (write-block-size).
func (dt Devicetree) Prop(node, prop string) (string, uint64, bool) {
	return dt.Number(node + "_P_" + token(prop))
}

// RegSize returns the size of a node's first register block. The
// REG_IDX_0_VAL_SIZE form is right whatever #size-cells is; P_reg_IDX_1 is
// the raw second cell, which older headers have alone.
func (dt Devicetree) RegSize(node string) (string, uint64, bool) {
	if t, n, ok := dt.Number(node + "_REG_IDX_0_VAL_SIZE"); ok {
		return t, n, true
	}
	return dt.Number(node + "_P_reg_IDX_1")
}

// Path returns a node's full path for messages, or its identifier.
func (dt Devicetree) Path(node string) string {
	if p, ok := dt.String(node + "_PATH"); ok {
		return p
	}
	return node
}

// PM holds partition manager values by their pm.config names
// (PM_MCUBOOT_PAD_SIZE, PM_APP_ADDRESS, ...), whichever file they came from.
type PM map[string]string

// ParsePMConfig reads pm.config: KEY=VALUE lines, strings quoted.
func ParsePMConfig(data []byte) PM {
	pm := PM{}
	for _, line := range lines(data) {
		name, val, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || !strings.HasPrefix(name, "PM_") || !isIdent(name) {
			continue
		}
		if strings.HasPrefix(val, `"`) {
			if s, err := strconv.Unquote(val); err == nil {
				val = s
			}
		}
		pm[name] = val
	}
	return pm
}

// ParsePMHeader reads an image's pm_config.h.
func ParsePMHeader(data []byte) PM {
	pm := PM{}
	for k, v := range ParseDefines(data) {
		if strings.HasPrefix(k, "PM_") {
			pm[k] = v
		}
	}
	return pm
}

// ParsePartitionsYAML reads the partitions.yml partition manager writes:
// a mapping of partition name to a mapping with address and size (and
// placement details, ignored). Only that shape is read, not YAML in general.
func ParsePartitionsYAML(data []byte) PM {
	pm := PM{}
	part, inner := "", -1
	for _, line := range lines(data) {
		body := strings.TrimLeft(line, " ")
		indent := len(line) - len(body)
		if body == "" || strings.HasPrefix(body, "#") {
			continue
		}
		key, val, ok := strings.Cut(body, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch {
		case indent == 0:
			part, inner = "", -1
			if val == "" && isIdent(key) {
				part = strings.ToUpper(key)
			}
		case part != "" && (inner < 0 || indent == inner):
			inner = indent
			if key == "address" || key == "size" {
				if _, _, ok := parseNumberToken(val); ok {
					pm["PM_"+part+"_"+strings.ToUpper(key)] = val
				}
			}
		}
	}
	return pm
}

// Number returns a partition manager value and its number.
func (pm PM) Number(name string) (string, uint64, bool) {
	v, ok := pm[name]
	if !ok {
		return "", 0, false
	}
	return parseNumberToken(v)
}

// Domains is sysbuild's domains.yaml: the default image and each image's
// recorded build directory.
type Domains struct {
	Default string
	Names   []string
	Dirs    map[string]string
}

// ParseDomains reads domains.yaml. Only its fixed shape is read: a default
// key and a list of {name, build_dir}.
func ParseDomains(data []byte) Domains {
	d := Domains{Dirs: map[string]string{}}
	inList, cur, pendingDir := false, "", ""
	for _, line := range lines(data) {
		body := strings.TrimLeft(line, " ")
		indent := len(line) - len(body)
		if body == "" || strings.HasPrefix(body, "#") {
			continue
		}
		if indent == 0 && !strings.HasPrefix(body, "-") {
			key, val, _ := strings.Cut(body, ":")
			inList = key == "domains"
			if key == "default" {
				d.Default = yamlScalar(val)
			}
			continue
		}
		if !inList {
			continue
		}
		if item, ok := strings.CutPrefix(body, "-"); ok {
			body, cur, pendingDir = strings.TrimLeft(item, " "), "", ""
		}
		key, val, ok := strings.Cut(body, ":")
		if !ok {
			continue
		}
		switch key {
		case "name":
			cur = yamlScalar(val)
			if cur != "" {
				d.Names = append(d.Names, cur)
				if pendingDir != "" {
					d.Dirs[cur] = pendingDir
				}
			}
		case "build_dir":
			if cur != "" {
				d.Dirs[cur] = yamlScalar(val)
			} else {
				pendingDir = yamlScalar(val)
			}
		}
	}
	return d
}

// yamlScalar unquotes a plain or quoted one-line YAML scalar.
func yamlScalar(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

func lines(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, strings.TrimRight(sc.Text(), "\r"))
	}
	return out // a line over 1 MiB ends the scan: no real build file has one
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdentByte(s[i]) {
			return false
		}
	}
	return true
}
