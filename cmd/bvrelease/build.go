package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/pipeline"
)

type buildOptions struct {
	commonOptions
	VerifyReproducible bool
}

func (o *buildOptions) AddFlags(fs *pflag.FlagSet) {
	o.commonOptions.AddFlags(fs)
	fs.BoolVar(&o.VerifyReproducible, "verify-reproducible", false, "build a second time with wiped BuildKit state and fail unless every index and manifest digest matches")
}

func newBuildCommand() *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build every artifact for every platform into dist/oci",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := o.open(cmd.ErrOrStderr(), release.Options{VerifyReproducible: o.VerifyReproducible})
			if err != nil {
				return err
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), r, pipeline.Build()...)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
