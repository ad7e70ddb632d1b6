package main

import (
	"github.com/spf13/cobra"
)

// buildDirJobs turns `sign --build-dir DIR` into the images to sign.
func (e *env) buildDirJobs(cmd *cobra.Command, f *signFlags, args []string) ([]signJob, error) {
	return nil, usagef("--build-dir is not supported yet")
}

func newDoctorCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    "doctor --build-dir DIR",
		Short:  "Explain what mcusign infers from a Zephyr build directory",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return usagef("doctor is not implemented yet") },
	}
}
