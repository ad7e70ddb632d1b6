package main

import "github.com/spf13/cobra"

func newStatusCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    "status",
		Short:  "Show whether signing goes through a standing mcusignd or an on-demand one",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return usagef("status is not implemented yet") },
	}
}

func newAuditCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    "audit",
		Short:  "Work with mcusignd audit logs",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return usagef("audit is not implemented yet") },
	}
}
