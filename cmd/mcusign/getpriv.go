package main

import "github.com/spf13/cobra"

func newGetprivCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    "getpriv -k KEY",
		Short:  "Export the bootloader's encryption private key as C or Rust source",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return usagef("getpriv is not implemented yet") },
	}
}
