// Command mcusignd is mcusign's signing daemon. It holds the PKCS#11
// module and the token login, serves the Signer gRPC service over a unix
// socket through hashicorp/go-plugin, checks every client's peer
// credentials, and records every request in a hash-chained audit log
// before it returns a signature.
//
// `mcusignd serve` runs it as a standing daemon (systemd, a CI runner);
// mcusign also launches it as a go-plugin subprocess, for one command,
// when no standing daemon is running. See docs/daemon.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Version is mcusignd's version; it is released together with mcusign.
const Version = "0.1.0"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake on the command line (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func run(args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:   "mcusignd",
		Short: "The mcusign signing daemon: owns the HSM login, audits every signature",
		Long: `mcusignd holds the PKCS#11 module and the token login so that builds never see
the PIN. mcusign forwards pkcs11: signing to it over a unix socket; every
request is checked against an allow list of users and groups, bounded by
limits, and recorded in a hash-chained audit log before a signature is
returned. Without a standing daemon, mcusign starts one for each command.

See docs/daemon.md for the systemd unit and CI usage.`,
		Version:           Version,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newServeCmd(stderr), &cobra.Command{
		Use:   "version",
		Short: "Print mcusignd's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(stdout, Version)
			return nil
		},
	})
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	name := "mcusignd"
	if cmd != nil && cmd != root {
		name += " " + cmd.Name()
	}
	fmt.Fprintf(stderr, "%s: error: %s\n", name, strings.Join(strings.Fields(err.Error()), " "))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
