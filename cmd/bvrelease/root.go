package main

import (
	"github.com/spf13/cobra"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "bvrelease",
		Short:         "Build, check, publish and record reproducible multi-arch OCI images",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newReleaseCommand(),
		newPlanCommand(),
		newBasesCommand(),
		newBuildCommand(),
		newCheckCommand(),
		newPublishCommand(),
		newVerifyCommand(),
		newConfigCommand(),
		newPromoteCommand(),
		newPolicyCommand(),
	)
	return root
}
