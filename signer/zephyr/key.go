package zephyr

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// inferKey finds the key the build signs with. Zephyr's app uses
// CONFIG_MCUBOOT_SIGNATURE_KEY_FILE (sysbuild copies SB_CONFIG_BOOT_SIGNATURE_KEY_FILE
// into it, already expanded); NCS child-image builds sign with MCUboot's own
// CONFIG_BOOT_SIGNATURE_KEY_FILE and ignore the app's. A pkcs11: URI is used
// as it is; a file path is expanded (string(CONFIGURE): ${VAR}, @VAR@) and
// searched the way that image's build searches it.
func (b *Build) inferKey(top, im *image, getenv func(string) string) {
	owner, sym := im, "CONFIG_MCUBOOT_SIGNATURE_KEY_FILE"
	if b.Kind == KindNCSChild {
		if child, err := loadImage(im.abs, "mcuboot"); err == nil && child.conf != nil {
			child.rel = im.file("mcuboot")
			owner, sym = child, "CONFIG_BOOT_SIGNATURE_KEY_FILE"
		} else {
			b.Notes = append(b.Notes, "NCS child-image build without a readable mcuboot/zephyr/.config: using the app's CONFIG_MCUBOOT_SIGNATURE_KEY_FILE instead of MCUboot's key")
		}
	}
	cfg := owner.file("zephyr/.config")
	setting, _ := owner.conf.String(sym)
	b.Key = Key{From: cfg + " " + sym}
	if setting == "" {
		if im.conf.Bool("CONFIG_MCUBOOT_GENERATE_UNSIGNED_IMAGE") {
			b.Key.From = im.file("zephyr/.config") + " CONFIG_MCUBOOT_GENERATE_UNSIGNED_IMAGE=y: the build makes an unsigned image; pass -k to sign"
			return
		}
		b.Key.Err = fmt.Errorf("no signing key: %s is empty in %s; pass -k KEY (a PEM file or a pkcs11: URI)", sym, cfg)
		return
	}
	if strings.HasPrefix(setting, "pkcs11:") {
		b.Key.Ref = setting
		return
	}
	if first, _, ok := strings.Cut(setting, ","); ok && !exists(setting) {
		// MCUboot accepts a comma-separated list of keys (2026); images are
		// signed with the first.
		b.Notes = append(b.Notes, fmt.Sprintf("%s lists several keys; signing with the first, %s", sym, strings.TrimSpace(first)))
		setting = strings.TrimSpace(first)
	}

	topdir, topFrom := westTopdir(top, im, getenv)
	vars := map[string]string{}
	for _, c := range []Cache{top.cache, owner.cache} {
		for k, v := range c {
			vars[k] = v
		}
	}
	if topdir != "" {
		vars["WEST_TOPDIR"] = topdir
	}
	p, undefined := ExpandCMake(setting, vars)
	if len(undefined) > 0 {
		b.Notes = append(b.Notes, fmt.Sprintf("%s uses %s, unknown to this build's CMakeCache.txt; it expands to nothing, as in CMake", sym, strings.Join(undefined, ", ")))
	}
	if p != setting {
		b.Key.From += fmt.Sprintf(" (%q expanded)", setting)
	}

	if filepath.IsAbs(p) || strings.HasPrefix(p, "/") {
		b.Key.Ref = p
		if !exists(p) {
			b.Key.Err = fmt.Errorf("key file %s (%s in %s) not found: fix the path, or pass -k KEY", p, sym, cfg)
		}
		return
	}
	// Relative: Zephyr's app tries APPLICATION_CONFIG_DIR, then WEST_TOPDIR;
	// MCUboot (NCS child) tries its APPLICATION_CONFIG_DIR, then its repository.
	type place struct{ name, dir, why string }
	var places []place
	if d := owner.cache["APPLICATION_CONFIG_DIR"]; d != "" {
		places = append(places, place{"APPLICATION_CONFIG_DIR", d, ""})
	}
	if owner != im {
		if src := owner.cache["APPLICATION_SOURCE_DIR"]; src != "" {
			places = append(places, place{"the MCUboot repository", filepath.Dir(filepath.Dir(filepath.FromSlash(src))), ""})
		}
	} else if topdir != "" {
		places = append(places, place{"WEST_TOPDIR", topdir, " (" + topFrom + ")"})
	}
	var tried []string
	for _, pl := range places {
		cand := filepath.Join(filepath.FromSlash(pl.dir), filepath.FromSlash(p))
		tried = append(tried, pl.name+"="+pl.dir+pl.why)
		b.Key.Ref = cand
		if exists(cand) {
			b.Key.From += " relative to " + pl.name
			return
		}
	}
	if len(places) == 0 {
		b.Key.Ref = p
		b.Key.Err = fmt.Errorf("key file %s (%s in %s) is relative and this build records no directory to resolve it against: pass -k KEY", p, sym, cfg)
		return
	}
	b.Key.Err = fmt.Errorf("key file %s (%s in %s) not found: searched %s; fix the path (an absolute path or ${APP_DIR}/... works for every image), or pass -k KEY", p, sym, cfg, strings.Join(tried, " and "))
}

// westTopdir finds the west workspace Zephyr resolved relative key paths
// against. Zephyr runs `west topdir` from ZEPHYR_BASE; the recorded
// ZEPHYR_BASE may be stale when the build directory has moved.
func westTopdir(top, im *image, getenv func(string) string) (dir, from string) {
	for _, c := range []Cache{im.cache, top.cache} {
		if d := c["WEST_TOPDIR"]; d != "" {
			return d, "WEST_TOPDIR in CMakeCache.txt"
		}
	}
	base := im.cache["ZEPHYR_BASE"]
	if base == "" {
		base = top.cache["ZEPHYR_BASE"]
	}
	if base != "" {
		if d := findWest(base); d != "" {
			return d, "west topdir of ZEPHYR_BASE"
		}
	}
	if d := getenv("WEST_TOPDIR"); d != "" {
		return d, "WEST_TOPDIR environment variable"
	}
	if d := findWest(im.abs); d != "" {
		return d, "the west workspace around the build directory"
	}
	if base != "" {
		return filepath.Dir(filepath.FromSlash(base)), "parent of the recorded ZEPHYR_BASE, no .west found"
	}
	return "", ""
}

// findWest walks up from dir to the directory holding .west/, as west does.
func findWest(dir string) string {
	dir = filepath.Clean(filepath.FromSlash(dir))
	for {
		if st, err := os.Stat(filepath.Join(dir, ".west")); err == nil && st.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// ExpandCMake expands ${VAR} and @VAR@ as CMake's string(CONFIGURE) does,
// with vars as the variables in scope. Undefined variables expand to
// nothing, as in CMake, and are returned so the caller can say so. $ENV{X}
// is not expanded: the build's environment is not known here.
func ExpandCMake(s string, vars map[string]string) (string, []string) {
	var b strings.Builder
	var undefined []string
	lookup := func(name string) string {
		v, ok := vars[name]
		if !ok {
			undefined = append(undefined, name)
		}
		return v
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '$' && i+1 < len(s) && s[i+1] == '{' {
			if end := strings.IndexByte(s[i+2:], '}'); end >= 0 && isCMakeVarName(s[i+2:i+2+end]) {
				b.WriteString(lookup(s[i+2 : i+2+end]))
				i += 2 + end
				continue
			}
		}
		if c == '@' {
			if end := strings.IndexByte(s[i+1:], '@'); end > 0 && isIdent(s[i+1:i+1+end]) {
				b.WriteString(lookup(s[i+1 : i+1+end]))
				i += 1 + end
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String(), undefined
}

func isCMakeVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isIdentByte(c) && !strings.ContainsRune("/.+-", rune(c)) {
			return false
		}
	}
	return true
}
