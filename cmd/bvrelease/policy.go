package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/policy"
)

type policyOptions struct {
	Config string
	Check  bool
}

func (o *policyOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.Config, "config", "c", config.FileName, "release configuration")
	fs.BoolVar(&o.Check, "check", false, "write nothing; exit 1 with a diff when the files in policy.output differ from what the configuration generates (for CI)")
}

// errPolicyDrift is --check finding committed policies that differ from the configuration's.
var errPolicyDrift = errors.New("admission policies out of date")

func newPolicyCommand() *cobra.Command {
	o := &policyOptions{}
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Generate the cluster's admission policies from bvrelease.yaml into policy.output",
		Long: `Generate the admission policies from the signing and policy sections of
bvrelease.yaml into policy.output (default policies/):

  verify-images.yaml                           Kyverno: signature, SBOM, vuln and provenance attestations
  pod-security.yaml                            Kyverno: digests, no :latest, non-root, read-only, no escalation, drop ALL, seccomp
  policy-controller/cluster-image-policy.yaml  sigstore policy-controller: the verify-images requirements

With --check nothing is written: the command prints a diff and exits 1 when the
files differ from what the configuration generates.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.NoArgs(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(o.Config)
			if err != nil {
				return err
			}
			files, err := policy.Generate(cfg)
			if err != nil {
				return err
			}
			dir := policy.Dir(cfg)
			rel := relPath(dir)
			if o.Check {
				diff, err := policy.Check(dir, rel, files)
				if err != nil {
					return err
				}
				if diff != "" {
					fmt.Fprint(cmd.OutOrStdout(), diff)
					return fmt.Errorf("%w: %s differs from %s; run 'bvrelease policy' and commit the result", errPolicyDrift, rel, filepath.Base(cfg.Path))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d policies up to date with %s\n", rel, len(files), filepath.Base(cfg.Path))
				return nil
			}
			if err := policy.Write(dir, files); err != nil {
				return err
			}
			for _, f := range files {
				fmt.Fprintln(cmd.OutOrStdout(), filepath.Join(rel, filepath.FromSlash(f.Path)))
			}
			return nil
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// relPath is p relative to the working directory when it is below it, else p.
func relPath(p string) string {
	if wd, err := filepath.Abs("."); err == nil {
		if r, err := filepath.Rel(wd, p); err == nil && filepath.IsLocal(r) {
			return r
		}
	}
	return p
}
