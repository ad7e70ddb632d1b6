// Command mcusign signs MCUboot images. It accepts imgtool's command line
// and writes the same bytes, and it also takes keys held in a PKCS#11 token
// (pkcs11: URIs) so the private key never has to exist as a file.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/signer"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Version is mcusign's own version; `mcusign version` prints the imgtool
// version it is compatible with, for scripts that check it.
const (
	Version        = "0.1.0"
	imgtoolVersion = "2.4.0"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// usageError is a mistake on the command line; it exits 2 like imgtool's.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// env is what commands need from the process; tests substitute it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	standing *plugin.Conn // the command's connection to a standing mcusignd, once made
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(joinPairOptions(args))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if e.standing != nil {
		e.standing.Close()
	}
	trace.print(stderr)
	if err == nil {
		return 0
	}
	name := "mcusign"
	if cmd != nil && cmd != root {
		name += " " + cmd.Name()
	}
	fmt.Fprintf(stderr, "%s: error: %s\n", name, oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "mcusign",
		Short: "Sign MCUboot images with keys in files or in a PKCS#11 HSM",
		Long: `mcusign signs MCUboot firmware images. It is a drop-in replacement for
imgtool: same sub-commands, same flags, same output bytes. Keys are PEM files
(as written by imgtool keygen) or, so that the private key never leaves the
hardware, PKCS#11 URIs such as 'pkcs11:token=release;object=fw-signing'.

Examples:
  mcusign keygen -k dev.pem -t ed25519
  mcusign sign -k dev.pem --version 1.2.3+4 --header-size 0x200 \
      --align 4 --slot-size 0x60000 --pad-header zephyr.bin zephyr.signed.bin
  mcusign verify -k dev.pem zephyr.signed.bin
  mcusign getpub -k dev.pem > autogen-pubkey.c`,
		Version:           Version,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newSignCmd(e, "sign"),
		newSignCmd(e, "create"),
		newVerifyCmd(e),
		newDumpinfoCmd(e),
		newGetpubCmd(e),
		newGetpubhashCmd(e),
		newKeygenCmd(e),
		newKeyinfoCmd(e),
		newVersionCmd(e),
		newGetprivCmd(e),
		newDoctorCmd(e),
		newStatusCmd(e),
		newAuditCmd(e),
	)
	for _, c := range root.Commands() {
		c.Flags().SortFlags = false
		c.Args = wrapArgs(c.Args)
	}
	return root
}

// wrapArgs turns cobra's positional-argument errors into usage errors.
func wrapArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	if check == nil {
		return nil
	}
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the imgtool version mcusign is compatible with",
		Long: `Print the imgtool version mcusign is compatible with (` + imgtoolVersion + `), for scripts
that check it. 'mcusign --version' prints mcusign's own version.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(e.stdout, imgtoolVersion)
			return nil
		},
	}
}

// pairSep joins the two values of imgtool's two-argument options
// (--custom-tlv TAG VALUE). A NUL cannot occur in argv, so it is unambiguous.
const pairSep = "\x00"

// joinPairOptions rewrites "--custom-tlv TAG VALUE" into one flag value,
// since pflag options take a single argument.
func joinPairOptions(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if (a == "--custom-tlv" || a == "--custom-tlv-file") && i+2 < len(args) {
			out = append(out, a+"="+args[i+1]+pairSep+args[i+2])
			i += 2
			continue
		}
		out = append(out, a)
	}
	return out
}

func splitPair(v string) (string, string, error) {
	tag, val, ok := strings.Cut(v, pairSep)
	if !ok {
		return "", "", usagef("expected two values: TAG VALUE")
	}
	return tag, val, nil
}

// choice is a string flag restricted to a set of values.
type choice struct {
	value   string
	allowed []string
}

func newChoice(def string, allowed ...string) *choice { return &choice{def, allowed} }

func (c *choice) String() string { return c.value }
func (c *choice) Type() string   { return strings.Join(c.allowed, "|") }
func (c *choice) Set(s string) error {
	for _, a := range c.allowed {
		if s == a {
			c.value = s
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", s, strings.Join(c.allowed, ", "))
}

// intFlag is an integer flag read like Python's int(x, 0): 512, 0x200, 0o1000.
type intFlag struct {
	value int64
	set   bool
}

func (f *intFlag) String() string {
	if !f.set {
		return ""
	}
	return fmt.Sprint(f.value)
}
func (f *intFlag) Type() string { return "int" }
func (f *intFlag) Set(s string) error {
	n, err := signer.ParseInt(s)
	if err != nil {
		return err
	}
	f.value, f.set = n, true
	return nil
}

var _ pflag.Value = (*intFlag)(nil)
