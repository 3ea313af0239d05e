package main

import (
	"github.com/spf13/cobra"

	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/plan"
)

func newPlanCommand() *cobra.Command {
	o := &commonOptions{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print what a release would build: version, tags, epoch, artifacts, bases",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := o.open(cmd.ErrOrStderr(), release.Options{DryRun: true})
			if err != nil {
				return err
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), r, plan.Stage{})
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
