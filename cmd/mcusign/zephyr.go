package main

import (
	"github.com/spf13/cobra"
)

// buildDirJobs turns `sign --build-dir DIR` into the images to sign.
func (e *env) buildDirJobs(cmd *cobra.Command, f *signFlags, args []string) ([]signJob, error) {
	return nil, usagef("--build-dir is not supported yet")
}
