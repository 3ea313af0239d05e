package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/release/sign"
)

type verifyOptions struct {
	Identity       string
	IdentityRegexp string
	Issuer         string
	CARoots        string
	Key            string
	Output         string
}

func (o *verifyOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Identity, "certificate-identity", "", "the signing certificate's identity (URI SAN), exactly")
	fs.StringVar(&o.IdentityRegexp, "certificate-identity-regexp", "", "the signing certificate's identity, as a regular expression")
	fs.StringVar(&o.Issuer, "certificate-oidc-issuer", "", "the signing certificate's OIDC issuer")
	fs.StringVar(&o.CARoots, "ca-roots", "", "PEM file of trusted root certificates (e.g. dist/sign/dry-run-root.pem)")
	fs.StringVar(&o.Key, "key", "", "PEM public key, for key-signed images")
	fs.StringVarP(&o.Output, "output", "o", "table", "result format: table or json")
}

func (o *verifyOptions) policy() (attestsign.Policy, error) {
	p := attestsign.Policy{Identity: o.Identity, IdentityRegexp: o.IdentityRegexp, Issuer: o.Issuer, IgnoreTlog: true}
	var err error
	switch {
	case o.Key != "" && o.CARoots != "":
		return p, usageError{errors.New("give either --key or --ca-roots, not both")}
	case o.Key != "":
		p.PublicKey, err = os.ReadFile(o.Key)
	case o.CARoots != "":
		p.Roots, err = os.ReadFile(o.CARoots)
	default:
		return p, usageError{errors.New("say whom to trust: --key PUBLIC.pem, or --ca-roots ROOTS.pem with --certificate-identity and --certificate-oidc-issuer")}
	}
	if o.Output != "table" && o.Output != "json" {
		return p, usageError{fmt.Errorf("--output %q: use table or json", o.Output)}
	}
	return p, err
}

type verifyResult struct {
	Reference string `json:"reference"`
	Verified  bool   `json:"verified"`
	Identity  string `json:"identity,omitempty"`
	Issuer    string `json:"issuer,omitempty"`
	Error     string `json:"error,omitempty"`
}

func newVerifyCommand() *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify IMAGE@DIGEST...",
		Short: "Verify the signatures on images as admission will (cosign's verification)",
		Long: `Verify that each IMAGE@DIGEST carries a cosign signature from the expected signer:
a certificate chaining to --ca-roots with --certificate-identity (or -regexp) and
--certificate-oidc-issuer, or a --key. One line per image; exit 1 if any fails.
Transparency-log checks are not done yet (signatures carry no Rekor entry).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := o.policy()
			if err != nil {
				return err
			}
			var results []verifyResult
			failed := 0
			for _, a := range args {
				ref, err := name.NewDigest(a)
				if err != nil {
					return usageError{fmt.Errorf("%s: want IMAGE@sha256:<digest> (%v)", a, err)}
				}
				res := verifyResult{Reference: ref.String()}
				vs, err := attestsign.Verify(cmd.Context(), ref, p, sign.RemoteOptions(cmd.Context())...)
				if err != nil {
					res.Error = err.Error()
					failed++
				} else {
					res.Verified, res.Identity, res.Issuer = true, vs[0].Identity, vs[0].Issuer
				}
				results = append(results, res)
			}
			out := cmd.OutOrStdout()
			if o.Output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					if r.Verified {
						fmt.Fprintf(out, "ok    %s  signed by %s %s\n", r.Reference, r.Identity, r.Issuer)
					} else {
						fmt.Fprintf(out, "FAIL  %s  %s\n", r.Reference, r.Error)
					}
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d image(s) failed verification", failed, len(results))
			}
			return nil
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
