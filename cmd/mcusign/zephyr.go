package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/pkcs11key"
	"github.com/mcusign/mcusign/signer/zephyr"
)

// buildDirJobs turns `sign --build-dir DIR` into the images to sign: the
// values the build directory implies, with every flag the user gave winning
// over them, and one job per output the build would write.
func (e *env) buildDirJobs(cmd *cobra.Command, f *signFlags, args []string) ([]signJob, error) {
	if len(args) == 1 {
		return nil, usagef("with --build-dir give no files (to sign what the build made) or both INFILE and OUTFILE")
	}
	b, err := zephyr.Inspect(f.buildDir)
	if err != nil {
		return nil, err
	}
	fl := cmd.Flags()
	user := map[string]bool{}
	fl.Visit(func(x *pflag.Flag) { user[x.Name] = true })
	// Extra arguments come after the inferred ones in the build's imgtool
	// call, so they win over them (but not over the user's flags).
	var extras []flagValue
	fromExtra := map[string]bool{}
	for _, a := range b.Extra {
		vs, err := e.parseExtra(a)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			fromExtra[v.name] = true
		}
		extras = append(extras, vs...)
	}
	set := func(name, value, from string) error {
		if err := fl.Set(name, value); err != nil {
			return fmt.Errorf("%s gives --%s %s, which mcusign cannot use (%v): pass --%s", from, name, value, err, name)
		}
		return nil
	}
	for _, v := range []struct {
		flag string
		val  zephyr.Value
	}{{"version", b.Version}, {"header-size", b.HeaderSize}, {"slot-size", b.SlotSize}, {"align", b.Align}} {
		if user[v.flag] || fromExtra[v.flag] {
			continue
		}
		if v.val.Err != nil {
			return nil, v.val.Err
		}
		if err := set(v.flag, v.val.Text, v.val.From); err != nil {
			return nil, err
		}
	}
	if b.PadHeader && !user["pad-header"] {
		if err := set("pad-header", "true", b.HeaderSize.From); err != nil {
			return nil, err
		}
	}
	if !user["key"] && !b.Key.InExtra {
		if b.Key.Err != nil {
			return nil, b.Key.Err
		}
		if b.Key.Ref != "" {
			if err := set("key", b.Key.Ref, b.Key.From); err != nil {
				return nil, err
			}
		}
	}
	for _, v := range extras {
		if user[v.name] {
			continue
		}
		if err := set(v.name, v.value, v.from); err != nil {
			return nil, err
		}
	}

	if len(args) == 2 {
		return []signJob{{flags: f, infile: args[0], outfile: args[1]}}, nil
	}
	if b.JobsErr != nil {
		return nil, b.JobsErr
	}
	if f.sigOut != "" && len(b.Jobs) > 1 {
		return nil, usagef("--sig-out with --build-dir would be overwritten by each of the %d outputs: give INFILE OUTFILE to sign one image", len(b.Jobs))
	}
	var jobs []signJob
	for _, j := range b.Jobs {
		in := filepath.Join(b.Dir, filepath.FromSlash(j.In))
		if _, err := os.Stat(in); err != nil {
			return nil, fmt.Errorf("%s not found: build the app first (west build -d %s), or give INFILE OUTFILE", in, f.buildDir)
		}
		jf := *f // shares the choice values, which are no longer changed
		jf.pad = jf.pad || j.Pad
		jf.confirm = jf.confirm || j.Confirm
		jobs = append(jobs, signJob{flags: &jf, infile: in, outfile: filepath.Join(b.Dir, filepath.FromSlash(j.Out))})
	}
	return jobs, nil
}

// flagValue is one flag setting from the build's extra imgtool arguments.
type flagValue struct{ name, value, from string }

// parseExtra reads a's imgtool arguments with sign's own flag set, so they
// mean exactly what they mean on the command line.
func (e *env) parseExtra(a zephyr.Arg) ([]flagValue, error) {
	scratch := newSignCmd(e, "sign")
	sf := scratch.Flags()
	if err := sf.Parse(joinPairOptions(a.Args)); err != nil {
		return nil, fmt.Errorf("%s: %q: %v; fix it, or override that flag on the command line", a.From, strings.Join(a.Args, " "), err)
	}
	if rest := sf.Args(); len(rest) > 0 {
		return nil, fmt.Errorf("%s: %q has stray arguments %q; it may hold only imgtool sign options", a.From, strings.Join(a.Args, " "), rest)
	}
	var out []flagValue
	sf.Visit(func(x *pflag.Flag) {
		if x.Name == "build-dir" {
			return
		}
		values := []string{x.Value.String()}
		if sv, ok := x.Value.(pflag.SliceValue); ok {
			values = sv.GetSlice()
		}
		for _, v := range values {
			out = append(out, flagValue{x.Name, v, a.From})
		}
	})
	return out, nil
}

func newDoctorCmd(e *env) *cobra.Command {
	var dir string
	format := newChoice("text", "text", "json")
	cmd := &cobra.Command{
		Use:   "doctor --build-dir DIR [--format json]",
		Short: "Explain what mcusign infers from a Zephyr build directory",
		Long: `Read a Zephyr or nRF Connect SDK build directory and print what
'mcusign sign --build-dir DIR' would sign, with what, and why: the image
version, header size, slot size, alignment, key and the input and output
files, each with the file and setting it comes from, then what is wrong and
how to fix it. Nothing is signed and no key is opened.

It reads zephyr/.config, CMakeCache.txt, the generated devicetree header and,
for nRF Connect SDK, the partition manager's output. For a sysbuild directory
it finds the application image below it. Flags given to 'sign' override any
of these values.

--format json prints one object (version, header_size, slot_size, align,
pad_header, key, infile, outfile, image_dir, jobs, sources, problems, notes)
for tools. The exit status is 1 only when the directory cannot be signed at
all (not a build directory, or built without MCUboot); problems a flag can
fix are listed but do not fail.`,
		Example: `  mcusign doctor --build-dir build
  mcusign doctor --build-dir build --format json | jq .slot_size
  west mcusign doctor            # the same, build directory found as west does`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if dir != "" && dir != args[0] {
					return usagef("give the build directory once: --build-dir %s or %s", dir, args[0])
				}
				dir = args[0]
			}
			if dir == "" {
				return usagef("which build directory? pass --build-dir DIR (west build's default is build)")
			}
			b, err := zephyr.Inspect(dir)
			if format.value == "json" {
				if jerr := e.doctorJSON(dir, b, err); jerr != nil {
					return jerr
				}
				return err
			}
			if err != nil {
				return err
			}
			return e.doctorText(b)
		},
	}
	cmd.Flags().StringVarP(&dir, "build-dir", "d", "", "Zephyr/NCS build directory (what west build wrote)")
	cmd.Flags().Var(format, "format", "output format")
	return cmd
}

// doctorReport is doctor's JSON: the keys of expected.json's "inferred"
// (values as the build passes them to imgtool) plus how they were found.
type doctorReport struct {
	BuildDir   string            `json:"build_dir"`
	Kind       string            `json:"kind,omitempty"`
	ImageDir   string            `json:"image_dir,omitempty"`
	Version    string            `json:"version,omitempty"`
	HeaderSize string            `json:"header_size,omitempty"`
	PadHeader  *bool             `json:"pad_header,omitempty"`
	SlotSize   string            `json:"slot_size,omitempty"`
	Align      string            `json:"align,omitempty"`
	Key        string            `json:"key,omitempty"`
	Infile     string            `json:"infile,omitempty"`
	Outfile    string            `json:"outfile,omitempty"`
	ExtraArgs  []string          `json:"extra_args,omitempty"`
	Jobs       []doctorJob       `json:"jobs,omitempty"`
	Sources    map[string]string `json:"sources,omitempty"`
	Problems   []string          `json:"problems"`
	Notes      []string          `json:"notes"`
	Error      string            `json:"error,omitempty"`
}

type doctorJob struct {
	Infile  string   `json:"infile"`
	Outfile string   `json:"outfile"`
	What    string   `json:"what"`
	Argv    []string `json:"imgtool_argv"`
}

func (e *env) doctorJSON(dir string, b *zephyr.Build, err error) error {
	r := doctorReport{BuildDir: dir, Problems: []string{}, Notes: []string{}}
	if err != nil {
		r.Error = oneLine(err.Error())
	} else {
		r = buildReport(b)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // paths and URIs as written, not \u003c
	return enc.Encode(r)
}

func buildReport(b *zephyr.Build) doctorReport {
	r := doctorReport{
		BuildDir: b.Dir, Kind: string(b.Kind), ImageDir: b.ImageDir,
		Version: b.Version.Text, HeaderSize: b.HeaderSize.Text, PadHeader: &b.PadHeader,
		SlotSize: b.SlotSize.Text, Align: b.Align.Text, Key: shownKey(b.Key.Ref),
		Sources: map[string]string{}, Problems: problems(b), Notes: append([]string{}, b.Notes...),
	}
	for name, v := range map[string]zephyr.Value{"version": b.Version, "header_size": b.HeaderSize, "slot_size": b.SlotSize, "align": b.Align} {
		if v.Err == nil {
			r.Sources[name] = v.From
		}
	}
	r.Sources["key"] = b.Key.From
	for _, a := range b.Extra {
		r.ExtraArgs = append(r.ExtraArgs, a.Args...)
	}
	for i, j := range b.Jobs {
		if i == 0 {
			r.Infile, r.Outfile = j.In, j.Out
		}
		r.Jobs = append(r.Jobs, doctorJob{Infile: j.In, Outfile: j.Out, What: j.What, Argv: shownArgv(b.Argv(j))})
	}
	return r
}

// problems are what makes `sign --build-dir` fail unless a flag stands in.
func problems(b *zephyr.Build) []string {
	out := []string{}
	for _, err := range []error{b.Version.Err, b.HeaderSize.Err, b.SlotSize.Err, b.Align.Err, b.Key.Err, b.JobsErr} {
		if err != nil && !contains(out, err.Error()) {
			out = append(out, err.Error())
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (e *env) doctorText(b *zephyr.Build) error {
	w := e.stdout
	kind := map[zephyr.Kind]string{
		zephyr.KindZephyr:      "Zephyr application",
		zephyr.KindSysbuild:    "Zephyr sysbuild",
		zephyr.KindNCSChild:    "nRF Connect SDK multi-image build (partition manager)",
		zephyr.KindNCSSysbuild: "nRF Connect SDK sysbuild (partition manager)",
	}[b.Kind]
	fmt.Fprintf(w, "Build directory %s\n  %s", b.Dir, kind)
	if b.ImageDir != "" {
		fmt.Fprintf(w, "; application image in %s/", b.ImageDir)
	}
	fmt.Fprint(w, "\n\n")

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name string, v zephyr.Value, number bool) {
		text := v.Text
		if v.Err != nil {
			text = "?"
		} else if number {
			if n, err := signer.ParseInt(v.Text); err == nil && fmt.Sprint(n) != v.Text {
				text += fmt.Sprintf(" (%d)", n)
			} else if err == nil {
				text += fmt.Sprintf(" (%#x)", n)
			}
		}
		from := v.From
		if v.Err != nil {
			from = "not inferred, see below"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, text, from)
	}
	row("version", b.Version, false)
	row("header size", b.HeaderSize, true)
	if b.PadHeader {
		fmt.Fprintf(tw, "  pad header\tyes\tthe header is padded in front of the image (partition manager)\n")
	}
	row("slot size", b.SlotSize, true)
	row("align", b.Align, false)
	key := zephyr.Value{Text: shownKey(b.Key.Ref), From: b.Key.From}
	if key.Text == "" {
		key.Text = "(none)"
	}
	row("key", key, false)
	for _, a := range b.Extra {
		fmt.Fprintf(tw, "  extra\t%s\t%s\n", strings.Join(a.Args, " "), a.From)
	}
	tw.Flush()

	if len(b.Jobs) > 0 {
		fmt.Fprintf(w, "\nmcusign sign --build-dir %s writes:\n", b.Dir)
		for _, j := range b.Jobs {
			fmt.Fprintf(w, "  %s -> %s  (%s)\n", j.In, j.Out, j.What)
		}
		fmt.Fprintf(w, "\nThe same as imgtool, run in %s:\n  imgtool %s\n", b.Dir, shellJoin(shownArgv(b.Argv(b.Jobs[0]))))
	}
	if p := problems(b); len(p) > 0 {
		fmt.Fprintln(w, "\nProblems (sign --build-dir fails until they are fixed or a flag overrides the value):")
		for _, s := range p {
			fmt.Fprintf(w, "  - %s\n", s)
		}
	}
	if len(b.Notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, s := range b.Notes {
			fmt.Fprintf(w, "  - %s\n", s)
		}
	}
	return nil
}

// shownKey keeps a PIN written into a pkcs11: URI (pin-value=) out of
// doctor's output, which ends up in logs.
func shownKey(ref string) string {
	if u, err := pkcs11key.ParseURI(ref); err == nil && u.HasPINValue() {
		return u.String()
	}
	return ref
}

func shownArgv(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = shownKey(a)
	}
	return out
}

// shellJoin quotes arguments for a POSIX shell where needed.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./+=:,@%") == "" {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
