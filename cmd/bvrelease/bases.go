package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/plan"
	"github.com/bitvault/bitvault/release/standins"
)

type basesOptions struct {
	commonOptions
	UpdateLock bool
}

func (o *basesOptions) AddFlags(fs *pflag.FlagSet) {
	o.commonOptions.AddFlags(fs)
	fs.BoolVar(&o.UpdateLock, "update-lock", false, "resolve the stand-ins' inputs anew (Debian packages, Go, Node.js, npm) and rewrite the lock file")
}

func newBasesCommand() *cobra.Command {
	o := &basesOptions{}
	cmd := &cobra.Command{
		Use:   "bases",
		Short: "Build the offline stand-ins for the pinned base images into dist/bases",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.BasesMode == "" {
				o.BasesMode = "standin"
			}
			r, err := o.open(cmd.ErrOrStderr(), release.Options{DryRun: true})
			if err != nil {
				return err
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), r, plan.Stage{}, standins.Stage{UpdateLock: o.UpdateLock})
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
