package zephyr

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/mcusign/mcusign/signer"
)

// Kind is the sort of build directory, which decides how it is signed.
type Kind string

const (
	// KindZephyr is one Zephyr image, signed the way `west sign -t imgtool`
	// and cmake/mcuboot.cmake sign it.
	KindZephyr Kind = "zephyr"
	// KindSysbuild is a sysbuild top-level directory; the application image
	// is a directory below it.
	KindSysbuild Kind = "sysbuild"
	// KindNCSChild is an nRF Connect SDK multi-image (parent/child image)
	// build with the partition manager: NCS pads the header in and signs
	// mcuboot_primary_app.hex with MCUboot's key.
	KindNCSChild Kind = "ncs-child-image"
	// KindNCSSysbuild is an nRF Connect SDK sysbuild build with the partition
	// manager: the app image is signed with a padded header.
	KindNCSSysbuild Kind = "ncs-sysbuild"
)

// Value is one inferred setting: Text as the build passes it to imgtool
// ("0x200" from .config, "204800" from the devicetree) and From, where it
// came from. Err is set instead when it cannot be inferred; it names the fix.
type Value struct {
	Text string
	From string
	Err  error
}

// Key is the signing key the build configures.
type Key struct {
	Ref     string // what to pass as -k: a file path or a pkcs11: URI; "" for none
	From    string
	Err     error // why Ref cannot be used: no key configured, file missing
	InExtra bool  // Ref comes from CONFIG_MCUBOOT_EXTRA_IMGTOOL_ARGS
}

// Job is one output: In signed into Out. Paths are relative to Build.Dir,
// with forward slashes. Pad and Confirm are added for this output only.
type Job struct {
	In, Out      string
	Pad, Confirm bool
	What         string
}

// Arg is extra imgtool arguments the build adds, and why.
type Arg struct {
	Args []string
	From string
}

// Build is what a build directory says about signing its application.
type Build struct {
	Dir      string // absolute
	Kind     Kind
	ImageDir string // the signed image's directory relative to Dir ("" for Dir itself)

	Version, HeaderSize, SlotSize, Align Value
	PadHeader                            bool // NCS: the header is padded in, not reserved by the linker
	Key                                  Key
	Extra                                []Arg

	Jobs    []Job
	JobsErr error    // nothing to sign; set instead of Jobs
	Notes   []string // what the reader should know or fix
}

// ErrNoMCUboot is wrapped by the error for an app built without MCUboot.
var ErrNoMCUboot = errors.New("built without MCUboot")

type noMCUbootError struct{ msg string }

func (e *noMCUbootError) Error() string { return e.msg }
func (e *noMCUbootError) Unwrap() error { return ErrNoMCUboot }

// image is one image's build directory.
type image struct {
	abs, rel string // rel is relative to Build.Dir, "" for Dir itself
	conf     Config
	cache    Cache // nil if CMakeCache.txt is missing
}

// file names a file of the image for messages: "zephyr/.config" or
// "sb-app/zephyr/.config".
func (im *image) file(p string) string { return path.Join(im.rel, p) }

func (im *image) path(p string) string { return filepath.Join(im.abs, filepath.FromSlash(p)) }

// Inspect reads the build directory dir and infers how to sign its
// application. An app built without MCUboot is an error wrapping
// ErrNoMCUboot; values that merely cannot be inferred are reported in the
// Build (Value.Err, Key.Err, JobsErr) so that explicit flags can replace them.
func Inspect(dir string) (*Build, error) { return inspect(dir, os.Getenv) }

func inspect(dir string, getenv func(string) string) (*Build, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("build directory %s not found: pass the directory `west build` wrote (build/ unless -d or build.dir-fmt says otherwise)", dir)
	}
	b := &Build{Dir: abs, Kind: KindZephyr}
	top, err := loadImage(abs, "")
	if err != nil {
		return nil, err
	}
	im := top
	if isSysbuild(top) {
		b.Kind = KindSysbuild
		rel, from, err := findSysbuildApp(top)
		if err != nil {
			return nil, err
		}
		if im, err = loadImage(abs, rel); err != nil {
			return nil, err
		}
		if im.conf == nil {
			return nil, fmt.Errorf("sysbuild image %s has no zephyr/.config: finish the build (west build -d %s) first", rel, dir)
		}
		b.ImageDir = rel
		b.Notes = append(b.Notes, fmt.Sprintf("sysbuild build: signing image %s (%s)", rel, from))
		if !im.conf.Bool("CONFIG_BOOTLOADER_MCUBOOT") {
			return nil, &noMCUbootError{fmt.Sprintf("image %s of the sysbuild build in %s was built without MCUboot (CONFIG_BOOTLOADER_MCUBOOT is not set in %s; sysbuild sets it when SB_CONFIG_BOOTLOADER_MCUBOOT=y), so it has no room for the MCUboot header: rebuild with west build -p --sysbuild -- -DSB_CONFIG_BOOTLOADER_MCUBOOT=y (or add SB_CONFIG_BOOTLOADER_MCUBOOT=y to sysbuild.conf)", rel, dir, im.file("zephyr/.config"))}
		}
	} else {
		if im.conf == nil {
			return nil, fmt.Errorf("%s is not a Zephyr build directory: it has no zephyr/.config; pass the directory `west build` wrote, after the build has run", dir)
		}
		if !im.conf.Bool("CONFIG_BOOTLOADER_MCUBOOT") {
			return nil, &noMCUbootError{fmt.Sprintf("the app in %s was built without MCUboot (CONFIG_BOOTLOADER_MCUBOOT is not set in zephyr/.config), so it has no room for the MCUboot header and is linked for the start of flash: rebuild with CONFIG_BOOTLOADER_MCUBOOT=y (west build -p -- -DCONFIG_BOOTLOADER_MCUBOOT=y), or with sysbuild and MCUboot (west build -p --sysbuild -- -DSB_CONFIG_BOOTLOADER_MCUBOOT=y)", dir)}
		}
	}
	pm := im.conf.Bool("CONFIG_PARTITION_MANAGER_ENABLED")
	switch {
	case pm && b.Kind == KindSysbuild:
		b.Kind = KindNCSSysbuild
	case pm:
		b.Kind = KindNCSChild
	}

	dt := &dtSource{im: im}
	b.inferVersion(im)
	if pm {
		b.inferFromPM(top, im, dt)
	} else {
		b.inferHeader(im)
		b.inferSlot(dt)
	}
	b.inferAlign(im, dt)
	b.inferExtra(im)
	b.inferKey(top, im, getenv)
	b.keyFromExtra()
	b.inferJobs(im)
	return b, nil
}

func loadImage(top, rel string) (*image, error) {
	im := &image{abs: filepath.Join(top, filepath.FromSlash(rel)), rel: rel}
	if data, err := os.ReadFile(im.path("zephyr/.config")); err == nil {
		im.conf = ParseConfig(data)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cannot read %s: %w", im.file("zephyr/.config"), err)
	}
	if data, err := os.ReadFile(im.path("CMakeCache.txt")); err == nil {
		im.cache = ParseCache(data)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cannot read %s: %w", im.file("CMakeCache.txt"), err)
	}
	return im, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// isSysbuild recognises a sysbuild top-level directory. Its .config holds
// only SB_CONFIG_ symbols, so `west sign -d` on it silently signs nothing.
// An image's own directory (CONFIG_ symbols) is never one, even when it has
// a domains.yaml, as NCS multi-image builds do.
func isSysbuild(top *image) bool {
	if top.cache["CMAKE_PROJECT_NAME"] == "sysbuild_toplevel" {
		return true
	}
	sb := false
	for k := range top.conf {
		if strings.HasPrefix(k, "CONFIG_") {
			return false
		}
		sb = sb || strings.HasPrefix(k, "SB_CONFIG_")
	}
	return sb || (top.conf == nil && exists(top.path("domains.yaml")))
}

// findSysbuildApp finds the application image below a sysbuild directory:
// domains.yaml's default domain, else the image named after APP_DIR (as
// sysbuild names it), else the one image that boots from MCUboot.
func findSysbuildApp(top *image) (rel, from string, err error) {
	isImage := func(name string) bool {
		return name != "" && !strings.ContainsAny(name, `/\`) && name != ".." && exists(top.path(name+"/zephyr/.config"))
	}
	if data, err := os.ReadFile(top.path("domains.yaml")); err == nil {
		d := ParseDomains(data)
		if isImage(d.Default) {
			return d.Default, "the default domain in domains.yaml", nil
		}
		if name := filepath.Base(d.Dirs[d.Default]); d.Default != "" && isImage(name) {
			return name, "the default domain's build_dir in domains.yaml", nil
		}
	}
	if appDir := top.cache["APP_DIR"]; appDir != "" {
		if name := filepath.Base(filepath.FromSlash(appDir)); isImage(name) {
			return name, "named after APP_DIR in CMakeCache.txt", nil
		}
	}
	entries, _ := os.ReadDir(top.abs)
	var apps []string
	for _, e := range entries {
		if !e.IsDir() || !isImage(e.Name()) {
			continue
		}
		data, err := os.ReadFile(top.path(e.Name() + "/zephyr/.config"))
		if err != nil {
			continue
		}
		c := ParseConfig(data)
		if c.Bool("CONFIG_BOOTLOADER_MCUBOOT") && !c.Bool("CONFIG_MCUBOOT") {
			apps = append(apps, e.Name())
		}
	}
	if len(apps) == 1 {
		return apps[0], "the only image built for MCUboot", nil
	}
	return "", "", fmt.Errorf("cannot tell which image of sysbuild directory %s to sign (no usable domains.yaml default; candidates: %s): pass the image's directory, e.g. --build-dir %s",
		top.abs, orNone(apps), filepath.Join(top.abs, "<app>"))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// inferVersion: CONFIG_MCUBOOT_IMGTOOL_SIGN_VERSION since Zephyr 3.x and
// NCS 2.5; NCS before that used CONFIG_MCUBOOT_IMAGE_VERSION; older west
// sign always passed 0.0.0+0.
func (b *Build) inferVersion(im *image) {
	for _, sym := range []string{"CONFIG_MCUBOOT_IMGTOOL_SIGN_VERSION", "CONFIG_MCUBOOT_IMAGE_VERSION"} {
		v, ok := im.conf.String(sym)
		if !ok || v == "" {
			continue
		}
		b.Version = Value{Text: v, From: im.file("zephyr/.config") + " " + sym}
		if _, err := signer.ParseVersion(v); err != nil {
			b.Version.Err = fmt.Errorf("%s %s=%q is not an image version: set it to maj.min.rev+build (e.g. 1.2.3+4) or pass --version", im.file("zephyr/.config"), sym, v)
		}
		return
	}
	b.Version = Value{Text: "0.0.0+0", From: "default: " + im.file("zephyr/.config") + " has no CONFIG_MCUBOOT_IMGTOOL_SIGN_VERSION (older west sign passed 0.0.0+0); pass --version to set one"}
}

// inferHeader: the space the linker reserved in front of the vector table.
func (b *Build) inferHeader(im *image) {
	for _, sym := range []string{"CONFIG_ROM_START_OFFSET", "CONFIG_TEXT_SECTION_OFFSET"} {
		v, ok := im.conf.String(sym)
		if !ok {
			continue
		}
		b.HeaderSize = Value{Text: v, From: im.file("zephyr/.config") + " " + sym}
		n, err := signer.ParseInt(v)
		switch {
		case err != nil:
			b.HeaderSize.Err = fmt.Errorf("%s %s=%q is not a number: pass --header-size", im.file("zephyr/.config"), sym, v)
		case n < signer.ImageHeaderSize:
			b.HeaderSize.Err = fmt.Errorf("%s has %s=%s, which leaves no room for the MCUboot header although CONFIG_BOOTLOADER_MCUBOOT=y: rebuild without overriding it (Zephyr's default is 0x200 with MCUboot), or pass --pad-header --header-size 0x200", im.file("zephyr/.config"), sym, v)
		}
		return
	}
	b.HeaderSize = Value{Err: fmt.Errorf("%s has no CONFIG_ROM_START_OFFSET: pass --header-size (the space reserved for the MCUboot header, usually 0x200)", im.file("zephyr/.config"))}
}

// dtSource loads the devicetree header once, on first use: NCS builds may
// not need it at all.
type dtSource struct {
	im     *image
	loaded bool
	dt     Devicetree
	file   string
	err    error
}

// dtHeaders are where gen_defines.py wrote its header, newest Zephyr first:
// 3.7+, 3.2-3.6, 2.2-3.1.
var dtHeaders = []string{
	"zephyr/include/generated/zephyr/devicetree_generated.h",
	"zephyr/include/generated/devicetree_generated.h",
	"zephyr/include/generated/devicetree_unfixed.h",
}

func (s *dtSource) get() (Devicetree, string, error) {
	if !s.loaded {
		s.loaded = true
		for _, h := range dtHeaders {
			data, err := os.ReadFile(s.im.path(h))
			if err == nil {
				s.dt, s.file = ParseDevicetree(data), s.im.file(h)
				return s.dt, s.file, nil
			}
		}
		s.err = fmt.Errorf("no devicetree header in %s (looked for %s)", s.im.file("zephyr/include/generated"), strings.Join(dtHeaders, ", "))
	}
	return s.dt, s.file, s.err
}

// inferSlot: slot1's size if there is a slot1 (images are built to fit the
// upgrade slot), else slot0's. Partitions are found by node label, or by
// label property "image-0"/"image-1" as Zephyr did up to 3.2.
func (b *Build) inferSlot(src *dtSource) {
	dt, file, err := src.get()
	if err != nil {
		b.SlotSize = Value{Err: fmt.Errorf("%v: pass --slot-size", err)}
		return
	}
	for _, slot := range []struct{ label, old string }{{"slot1_partition", "image-1"}, {"slot0_partition", "image-0"}} {
		node, how := "", ""
		if n, ok := dt.NodeLabel(slot.label); ok {
			node, how = n, slot.label
		} else if n, ok := dt.LabelProperty(slot.old); ok {
			node, how = n, fmt.Sprintf("label = %q", slot.old)
		}
		if node == "" {
			continue
		}
		text, _, ok := dt.RegSize(node)
		if !ok {
			b.SlotSize = Value{Err: fmt.Errorf("%s: partition %s has no reg size: pass --slot-size", file, dt.Path(node))}
			return
		}
		b.SlotSize = Value{Text: text, From: fmt.Sprintf("%s %s (%s) reg size", file, how, dt.Path(node))}
		return
	}
	b.SlotSize = Value{Err: fmt.Errorf("%s has no slot0_partition or slot1_partition (nor label \"image-0\"/\"image-1\"): pass --slot-size", file)}
}

// inferAlign: the write-block-size of the chosen zephyr,flash node, which
// MCUboot uses for its trailer. NCS child-image builds copy it into
// CONFIG_MCUBOOT_FLASH_WRITE_BLOCK_SIZE and sign with that.
func (b *Build) inferAlign(im *image, src *dtSource) {
	defer func() {
		if b.Align.Err == nil && !validAlign(b.Align.Text) {
			b.Align.Err = fmt.Errorf("write block size %s (%s) is not an alignment imgtool supports (1, 2, 4, 8, 16 or 32): pass --align", b.Align.Text, b.Align.From)
		}
	}()
	if b.Kind == KindNCSChild {
		if v, ok := im.conf.String("CONFIG_MCUBOOT_FLASH_WRITE_BLOCK_SIZE"); ok {
			b.Align = Value{Text: v, From: im.file("zephyr/.config") + " CONFIG_MCUBOOT_FLASH_WRITE_BLOCK_SIZE"}
			return
		}
	}
	dt, file, err := src.get()
	if err != nil {
		b.Align = Value{Err: fmt.Errorf("%v: pass --align", err)}
		return
	}
	flash, ok := dt.Chosen("zephyr,flash")
	if !ok {
		b.Align = Value{Err: fmt.Errorf("%s has no chosen zephyr,flash node: pass --align (the flash's write block size)", file)}
		return
	}
	text, _, ok := dt.Prop(flash, "write-block-size")
	if !ok {
		b.Align = Value{Text: "4", From: fmt.Sprintf("default: %s (chosen zephyr,flash) has no write-block-size in %s; Zephyr's build assumes 4", dt.Path(flash), file)}
		b.Notes = append(b.Notes, "the flash node has no write-block-size; assuming 4 as Zephyr's build does: pass --align if that is wrong")
		return
	}
	b.Align = Value{Text: text, From: fmt.Sprintf("%s write-block-size of %s (chosen zephyr,flash)", file, dt.Path(flash))}
}

func validAlign(s string) bool {
	n, err := signer.ParseInt(s)
	return err == nil && (n == 1 || n == 2 || n == 4 || n == 8 || n == 16 || n == 32)
}

// inferFromPM: with the partition manager, the app is linked after an
// mcuboot_pad partition and ROM_START_OFFSET is 0; NCS signs with
// --pad-header --header-size <mcuboot_pad size> --slot-size <primary size>.
// The devicetree slot partitions are stale in such builds and are ignored.
func (b *Build) inferFromPM(top, im *image, src *dtSource) {
	pm, file := loadPM(top, im)
	if pm == nil {
		err := fmt.Errorf("the partition manager is enabled but %s has no pm.config, pm_config.h or partitions.yml: finish the build first, or pass --pad-header --header-size and --slot-size", im.file(""))
		b.HeaderSize, b.SlotSize = Value{Err: err}, Value{Err: err}
		return
	}
	if text, _, ok := pm.Number("PM_MCUBOOT_PAD_SIZE"); ok {
		b.HeaderSize = Value{Text: text, From: file + " PM_MCUBOOT_PAD_SIZE (the mcuboot_pad partition; NCS pads the header in)"}
		b.PadHeader = true
	} else {
		b.HeaderSize = Value{Err: fmt.Errorf("%s has no mcuboot_pad partition (PM_MCUBOOT_PAD_SIZE), so the app has no room for the MCUboot header: rebuild with MCUboot, or pass --pad-header --header-size", file)}
	}
	if text, _, ok := pm.Number("PM_MCUBOOT_PRIMARY_SIZE"); ok {
		b.SlotSize = Value{Text: text, From: file + " PM_MCUBOOT_PRIMARY_SIZE (the mcuboot_primary partition)"}
	} else {
		b.SlotSize = Value{Err: fmt.Errorf("%s has no mcuboot_primary partition (PM_MCUBOOT_PRIMARY_SIZE): pass --slot-size", file)}
	}
	if dt, _, err := src.get(); err == nil {
		if node, ok := dt.NodeLabel("slot0_partition"); ok {
			if text, n, ok := dt.RegSize(node); ok {
				if _, p, ok := pm.Number("PM_MCUBOOT_PRIMARY_SIZE"); ok && p != n {
					b.Notes = append(b.Notes, fmt.Sprintf("the devicetree's slot0_partition size (%s) is not the partition manager's (%s); the partition manager's is used, as NCS does", text, b.SlotSize.Text))
				}
			}
		}
	}
}

// loadPM reads the partition manager's output for an image: pm.config (the
// image's, or sysbuild's at the top), else the image's pm_config.h, else
// partitions.yml.
func loadPM(top, im *image) (PM, string) {
	type source struct {
		im    *image
		name  string
		parse func([]byte) PM
	}
	for _, s := range []source{
		{im, "pm.config", ParsePMConfig},
		{top, "pm.config", ParsePMConfig},
		{im, "zephyr/include/generated/pm_config.h", ParsePMHeader},
		{im, "partitions.yml", ParsePartitionsYAML},
		{top, "partitions.yml", ParsePartitionsYAML},
	} {
		data, err := os.ReadFile(s.im.path(s.name))
		if err != nil {
			continue
		}
		if pm := s.parse(data); len(pm) > 0 {
			return pm, s.im.file(s.name)
		}
	}
	return nil, ""
}

// inferExtra: arguments the build adds to every imgtool call.
func (b *Build) inferExtra(im *image) {
	cfg := im.file("zephyr/.config")
	for _, f := range []struct {
		sym  string
		args []string
	}{
		{"CONFIG_MCUBOOT_IMGTOOL_OVERWRITE_ONLY", []string{"--overwrite-only"}},
		{"CONFIG_MCUBOOT_BOOTLOADER_SIGNATURE_TYPE_PURE", []string{"--pure"}},
		{"CONFIG_MCUBOOT_BOOTLOADER_USES_SHA512", []string{"--sha", "512"}},
	} {
		if im.conf.Bool(f.sym) {
			b.Extra = append(b.Extra, Arg{Args: f.args, From: cfg + " " + f.sym})
		}
	}
	if v, _ := im.conf.String("CONFIG_MCUBOOT_EXTRA_IMGTOOL_ARGS"); strings.TrimSpace(v) != "" {
		b.Extra = append(b.Extra, Arg{Args: SplitUnixCommand(v), From: cfg + " CONFIG_MCUBOOT_EXTRA_IMGTOOL_ARGS"})
	}
	if im.conf.Bool("CONFIG_MCUBOOT_BOOTLOADER_MODE_RAM_LOAD") {
		b.Notes = append(b.Notes, "RAM-load mode: pass --load-addr (the zephyr,sram address) and --align 1 as Zephyr's build does; they are not inferred")
	}
	if v, _ := im.conf.String("CONFIG_MCUBOOT_ENCRYPTION_KEY_FILE"); v != "" {
		b.Notes = append(b.Notes, "CONFIG_MCUBOOT_ENCRYPTION_KEY_FILE is set, but --build-dir writes only the signed outputs, not *.signed.encrypted.*: sign those with -E KEY INFILE OUTFILE")
	}
}

// keyFromExtra: a key in CONFIG_MCUBOOT_EXTRA_IMGTOOL_ARGS comes after the
// build's --key, so it is the one imgtool uses. That is how a build signs
// with a pkcs11: URI while CONFIG_MCUBOOT_SIGNATURE_KEY_FILE names a file
// (the public key MCUboot is built with), which Zephyr's CMake requires.
func (b *Build) keyFromExtra() {
	for _, a := range b.Extra {
		for i := 0; i < len(a.Args); i++ {
			arg, v := a.Args[i], ""
			switch {
			case (arg == "-k" || arg == "--key") && i+1 < len(a.Args):
				v = a.Args[i+1]
				i++
			case strings.HasPrefix(arg, "--key="):
				v = strings.TrimPrefix(arg, "--key=")
			case strings.HasPrefix(arg, "-k") && len(arg) > 2 && !strings.HasPrefix(arg, "--"):
				v = strings.TrimPrefix(arg[2:], "=")
			default:
				continue
			}
			if b.Key.Ref != "" && b.Key.Ref != v {
				b.Notes = append(b.Notes, fmt.Sprintf("%s names the key %s; %s, after it, names %s, which is the one used", b.Key.From, b.Key.Ref, a.From, v))
			}
			b.Key = Key{Ref: v, From: a.From, InExtra: true}
		}
	}
}

// SplitUnixCommand splits a string into arguments as CMake's
// separate_arguments(UNIX_COMMAND) does: on unquoted whitespace, honouring
// single and double quotes, with backslash escaping the next character.
func SplitUnixCommand(s string) []string {
	var args []string
	var cur strings.Builder
	inArg := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && quote != '\'' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inArg = true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, inArg = c, true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// inferJobs: the outputs Zephyr's build writes (or NCS's, for child-image
// builds). Inputs are checked here so doctor can say what is missing.
func (b *Build) inferJobs(im *image) {
	cfg := im.file("zephyr/.config")
	if b.Kind == KindNCSChild {
		in := "zephyr/mcuboot_primary_app.hex"
		if !exists(im.path(in)) {
			name := kernelName(im)
			if exists(im.path("zephyr/" + name + ".hex")) {
				b.Notes = append(b.Notes, fmt.Sprintf("%s is missing; signing zephyr/%s.hex instead (the same unless other images share the primary slot)", im.file(in), name))
				in = "zephyr/" + name + ".hex"
			}
		}
		in = im.file(in)
		b.Jobs = []Job{
			{In: in, Out: im.file("zephyr/app_signed.hex"), What: "signed HEX, at the app's address"},
			{In: in, Out: im.file("zephyr/app_update.bin"), What: "signed binary for DFU"},
			{In: in, Out: im.file("zephyr/app_test_update.hex"), Pad: true, What: "signed HEX marked for a test swap"},
		}
	} else {
		name := kernelName(im)
		in := im.file("zephyr/" + name)
		out := im.file("zephyr/" + name + ".signed")
		confirmed := im.conf.Bool("CONFIG_MCUBOOT_GENERATE_CONFIRMED_IMAGE")
		for _, ext := range []string{"bin", "hex"} {
			if !im.conf.Bool("CONFIG_BUILD_OUTPUT_" + strings.ToUpper(ext)) {
				continue
			}
			b.Jobs = append(b.Jobs, Job{In: in + "." + ext, Out: out + "." + ext, What: "signed " + ext})
			if confirmed {
				b.Jobs = append(b.Jobs, Job{In: in + "." + ext, Out: out + ".confirmed." + ext, Pad: true, Confirm: true, What: "signed and confirmed " + ext + " (CONFIG_MCUBOOT_GENERATE_CONFIRMED_IMAGE)"})
			}
		}
		if len(b.Jobs) == 0 {
			b.JobsErr = fmt.Errorf("nothing to sign: neither CONFIG_BUILD_OUTPUT_BIN nor CONFIG_BUILD_OUTPUT_HEX is set in %s; enable one and rebuild, or give INFILE OUTFILE", cfg)
			return
		}
	}
	seen := map[string]bool{}
	for _, j := range b.Jobs {
		if !seen[j.In] && !exists(filepath.Join(b.Dir, filepath.FromSlash(j.In))) {
			b.Notes = append(b.Notes, fmt.Sprintf("%s is missing: build the app first (west build -d %s)", j.In, b.Dir))
		}
		seen[j.In] = true
	}
}

func kernelName(im *image) string {
	if v, ok := im.conf.String("CONFIG_KERNEL_BIN_NAME"); ok && v != "" {
		return v
	}
	return "zephyr"
}

// Argv is the imgtool command line equivalent to signing job j with the
// inferred values (values that could not be inferred are left out).
func (b *Build) Argv(j Job) []string {
	argv := []string{"sign"}
	add := func(flag string, v Value) {
		if v.Err == nil && v.Text != "" {
			argv = append(argv, flag, v.Text)
		}
	}
	add("--version", b.Version)
	add("--header-size", b.HeaderSize)
	if b.PadHeader {
		argv = append(argv, "--pad-header")
	}
	add("--slot-size", b.SlotSize)
	add("--align", b.Align)
	if b.Key.Ref != "" && !b.Key.InExtra {
		argv = append(argv, "--key", b.Key.Ref)
	}
	for _, a := range b.Extra {
		argv = append(argv, a.Args...)
	}
	if j.Pad {
		argv = append(argv, "--pad")
	}
	if j.Confirm {
		argv = append(argv, "--confirm")
	}
	return append(argv, j.In, j.Out)
}
