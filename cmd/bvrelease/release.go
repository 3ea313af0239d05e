package main

import (
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bitvault/bitvault/release/pipeline"
)

type releaseOptions struct {
	commonOptions
	targetOptions
	VerifyReproducible bool
}

func (o *releaseOptions) AddFlags(fs *pflag.FlagSet) {
	o.commonOptions.AddFlags(fs)
	o.targetOptions.AddFlags(fs)
	fs.BoolVar(&o.VerifyReproducible, "verify-reproducible", false, "build everything twice, the second time with wiped BuildKit state, and fail unless the digests match")
}

// inCI reports whether credentials for a real release are present.
func inCI() bool {
	return os.Getenv("GITHUB_ACTIONS") == "true" && os.Getenv("ACTIONS_ID_TOKEN_REQUEST_URL") != ""
}

func newReleaseCommand() *cobra.Command {
	o := &releaseOptions{}
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Run the whole pipeline: plan, bases, build, check, publish, record",
		Long: `Run the whole pipeline: plan → bases → build → check → publish → record.

Without CI credentials (GitHub Actions with an OIDC token) the run is a dry-run
(unless --dry-run=false is given):
every stage runs for real, but the registry is embedded on 127.0.0.1 and
nothing leaves the machine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("dry-run") && !inCI() {
				o.DryRun = true
			}
			ro := o.options()
			ro.VerifyReproducible = o.VerifyReproducible
			r, err := o.open(cmd.ErrOrStderr(), ro)
			if err != nil {
				return err
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), r, pipeline.Release()...)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
