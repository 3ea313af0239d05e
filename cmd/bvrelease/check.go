package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/check"
	"github.com/bitvault/bitvault/release/plan"
	"github.com/bitvault/bitvault/release/record"
)

type checkOptions struct {
	commonOptions
	DockerfilesOnly bool
}

func (o *checkOptions) AddFlags(fs *pflag.FlagSet) {
	o.commonOptions.AddFlags(fs)
	fs.BoolVar(&o.DockerfilesOnly, "dockerfiles", false, "check only the Dockerfiles (no built images needed)")
}

func newCheckCommand() *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check Dockerfiles and built images (dist/oci) against the image design rules",
		Long: `Check every artifact's Dockerfile and every platform image of its built index
against the image design rules. Violations print as
  file:line: rule: what is wrong; how to fix
and the command exits 3.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := o.open(cmd.ErrOrStderr(), release.Options{DryRun: true})
			if err != nil {
				return err
			}
			stages := []release.Stage{plan.Stage{}, check.Stage{DockerfilesOnly: o.DockerfilesOnly}}
			if !o.DockerfilesOnly {
				stages = append(stages, record.Stage{})
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), r, stages...)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
