package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/pipeline"
)

// targetOptions say where a publish goes; release and publish share them.
type targetOptions struct {
	DryRun     bool
	AllowDirty bool
	Registry   string
	VulnDB     string
	Key        string
	Keyless    bool
	Fulcio     string
	Rekor      string
	Trusted    string
}

func (o *targetOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.DryRun, "dry-run", false, "keep everything on this machine: publish to an embedded registry on 127.0.0.1")
	fs.BoolVar(&o.AllowDirty, "allow-dirty", false, "publish a work tree with uncommitted changes")
	fs.StringVar(&o.Registry, "registry", "", "registry prefix to publish to (overrides the configuration)")
	fs.StringVar(&o.Key, "key", "", "sign with this cosign key (file, password in COSIGN_PASSWORD) or KMS URI; default: the dry-run CA in a dry-run")
	fs.BoolVar(&o.Keyless, "keyless", false, "sign keylessly (GitHub Actions OIDC token → Fulcio → Rekor) even in a dry-run; the default for a real release in GitHub Actions")
	fs.StringVar(&o.Fulcio, "fulcio-url", "", "Fulcio for keyless signing (default: bvrelease.yaml signing.fulcio, else Sigstore's public Fulcio)")
	fs.StringVar(&o.Rekor, "rekor-url", "", "Rekor for keyless signing (default: bvrelease.yaml signing.rekor, else Sigstore's public Rekor)")
	fs.StringVar(&o.Trusted, "trusted-root", "", "Sigstore trusted_root.json naming that Fulcio and Rekor (default: signing.trusted_root, else the public-good root via TUF)")
	fs.StringVar(&o.VulnDB, "vuln-db", "", "offline trivy vulnerability DB directory (trivy.db + metadata.json); default: trivy's own download")
}

// options converts the flags for a run.
func (o *targetOptions) options() release.Options {
	return release.Options{DryRun: o.DryRun, AllowDirty: o.AllowDirty, Registry: o.Registry, VulnDB: o.VulnDB, SigningKey: o.Key,
		Keyless: o.Keyless, FulcioURL: o.Fulcio, RekorURL: o.Rekor, TrustedRoot: o.Trusted}
}

type publishOptions struct {
	commonOptions
	targetOptions
}

func (o *publishOptions) AddFlags(fs *pflag.FlagSet) {
	o.commonOptions.AddFlags(fs)
	o.targetOptions.AddFlags(fs)
}

func newPublishCommand() *cobra.Command {
	o := &publishOptions{}
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Check, SBOM and scan the built images in dist/oci, push them by digest, then tag v<semver> and <git-sha>",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := o.open(cmd.ErrOrStderr(), o.options())
			if err != nil {
				return err
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), r, pipeline.Publish()...)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
