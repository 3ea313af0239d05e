package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bitvault/bitvault/attest/admission"
	attestscan "github.com/bitvault/bitvault/attest/scan"
	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/sign"
	"github.com/bitvault/bitvault/release/trust"
)

type verifyOptions struct {
	Config         string
	Identity       string
	IdentityRegexp string
	Issuer         string
	TrustedRoot    string
	CARoots        string
	IgnoreTlog     bool
	Key            string
	BuilderID      string
	BuilderRegexp  string
	Repository     string
	Ref            string
	VulnAllow      string
	AllowUnscanned bool
	Output         string
}

func (o *verifyOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.Config, "config", "c", config.FileName, "release configuration whose signing section gives the expected identity, issuer and trusted root (ignored when absent)")
	fs.StringVar(&o.Identity, "certificate-identity", "", "the signing certificate's identity (URI SAN), exactly (default: signing.identity)")
	fs.StringVar(&o.IdentityRegexp, "certificate-identity-regexp", "", "the signing certificate's identity, as a regular expression (default: signing.identity_regexp)")
	fs.StringVar(&o.Issuer, "certificate-oidc-issuer", "", "the signing certificate's OIDC issuer (default: signing.issuer)")
	fs.StringVar(&o.TrustedRoot, "trusted-root", "", "Sigstore trusted_root.json: Fulcio CAs and Rekor keys; transparency-log entries are checked against it (default: signing.trusted_root, else Sigstore's public-good root via TUF)")
	fs.StringVar(&o.CARoots, "ca-roots", "", "PEM root certificates to trust instead of a trusted root (e.g. dist/sign/dry-run-root.pem); needs --insecure-ignore-tlog")
	fs.BoolVar(&o.IgnoreTlog, "insecure-ignore-tlog", false, "accept signatures without a transparency-log entry (dry-run CA, offline keys)")
	fs.StringVar(&o.Key, "key", "", "PEM public key, for key-signed images")
	fs.StringVar(&o.BuilderID, "builder-id", "", "the provenance's builder id, exactly (default: the signing certificate's identity)")
	fs.StringVar(&o.BuilderRegexp, "builder-id-regexp", "", "the provenance's builder id, as a regular expression")
	fs.StringVar(&o.Repository, "source-repository", "", "the provenance's source repository, e.g. bitvault/bitvault (default: not checked)")
	fs.StringVar(&o.Ref, "source-ref", "", "the provenance's git ref, e.g. refs/tags/v1.2.3 (default: not checked)")
	fs.StringVar(&o.VulnAllow, "vuln-allow", "", "vulnerability allow-list (default: .bvrelease/vuln-allow.yaml beside the configuration, if any)")
	fs.BoolVar(&o.AllowUnscanned, "allow-unscanned", false, "report a platform manifest without a vulnerability attestation as NOT SCANNED instead of failing it (dry-runs without a DB)")
	fs.StringVarP(&o.Output, "output", "o", "table", "result format: table or json")
}

// expect builds what every image must satisfy from the flags, falling back to bvrelease.yaml.
func (o *verifyOptions) expect() (admission.Expect, error) {
	var e admission.Expect
	if o.Output != "table" && o.Output != "json" {
		return e, usageError{fmt.Errorf("--output %q: use table or json", o.Output)}
	}
	cfg, err := config.Load(o.Config)
	if err != nil {
		var ce *config.Error
		if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "no release configuration") || o.Config != config.FileName {
			return e, err // a configuration that exists (or was named) must load
		}
		cfg = nil
	}
	p := attestsign.Policy{Identity: o.Identity, IdentityRegexp: o.IdentityRegexp, Issuer: o.Issuer, IgnoreTlog: o.IgnoreTlog}
	trustedRoot := o.TrustedRoot
	allowFile := o.VulnAllow
	if cfg != nil {
		sg := cfg.Signing
		if p.Identity == "" && p.IdentityRegexp == "" {
			p.Identity, p.IdentityRegexp = sg.Identity, sg.IdentityRegexp
		}
		if p.Issuer == "" {
			p.Issuer = sg.Issuer
		}
		if trustedRoot == "" && sg.TrustedRoot != "" && o.CARoots == "" && o.Key == "" && !o.IgnoreTlog {
			trustedRoot = cfg.Abs(sg.TrustedRoot)
		}
		if allowFile == "" {
			allowFile = cfg.Abs(attestscan.DefaultAllowList)
		}
	}
	if p.Identity != "" && p.IdentityRegexp != "" {
		return e, usageError{errors.New("--certificate-identity and --certificate-identity-regexp: give one (flags override bvrelease.yaml's signing section)")}
	}
	switch {
	case o.Key != "" && o.CARoots != "":
		return e, usageError{errors.New("give either --key or --ca-roots, not both")}
	case o.CARoots != "" && !o.IgnoreTlog:
		return e, usageError{errors.New("--ca-roots trusts certificates without a transparency log: add --insecure-ignore-tlog, or give a --trusted-root instead")}
	case trustedRoot != "" && o.IgnoreTlog:
		return e, usageError{errors.New("--trusted-root with --insecure-ignore-tlog: the root's transparency logs would go unchecked; drop one")}
	case o.Key != "":
		p.Identity, p.IdentityRegexp, p.Issuer = "", "", ""
		if p.PublicKey, err = os.ReadFile(o.Key); err != nil {
			return e, err
		}
	case o.CARoots != "":
		if p.Roots, err = os.ReadFile(o.CARoots); err != nil {
			return e, err
		}
	case trustedRoot != "":
		if p.TrustedRoot, _, err = trust.TrustedRoot(trustedRoot); err != nil {
			return e, usageError{fmt.Errorf("--trusted-root: %w", err)}
		}
	case o.IgnoreTlog:
		return e, usageError{errors.New("--insecure-ignore-tlog: say whom to trust with --ca-roots or --key")}
	default:
		if p.Identity == "" && p.IdentityRegexp == "" {
			return e, usageError{errors.New("say whom to trust: --certificate-identity(-regexp) and --certificate-oidc-issuer (or bvrelease.yaml's signing section) with --trusted-root, --ca-roots ROOTS.pem --insecure-ignore-tlog, or --key PUBLIC.pem")}
		}
		if p.TrustedRoot, _, err = trust.TrustedRoot(""); err != nil {
			return e, err
		}
	}
	if len(p.TrustedRoot) > 0 {
		tr, err := root.NewTrustedRootFromJSON(p.TrustedRoot)
		if err != nil {
			return e, usageError{fmt.Errorf("--trusted-root: %w", err)}
		}
		p.IgnoreSCT = trust.IgnoreSCT(tr)
	}
	if p.PublicKey == nil && (p.Identity == "" && p.IdentityRegexp == "" || p.Issuer == "") {
		return e, usageError{errors.New("certificates need --certificate-identity (or -regexp) and --certificate-oidc-issuer, or bvrelease.yaml's signing section")}
	}
	if p.PublicKey != nil && o.BuilderID == "" && o.BuilderRegexp == "" {
		return e, usageError{errors.New("key-signed images carry no identity to expect as the builder: give --builder-id or --builder-id-regexp")}
	}
	e.Policy = p
	e.Builder = admission.Builder{ID: o.BuilderID, IDRegexp: o.BuilderRegexp, Repository: o.Repository, Ref: o.Ref}
	if e.Allow, err = attestscan.LoadAllowList(allowFile); err != nil && allowFile != "" {
		if _, statErr := os.Stat(allowFile); statErr == nil || o.VulnAllow != "" {
			return e, err
		}
		e.Allow = nil
	}
	e.AllowUnscanned = o.AllowUnscanned
	if cfg != nil {
		e.Producers = cfg.Policy.Provenance
	}
	return e, nil
}

func newVerifyCommand() *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify IMAGE@DIGEST...",
		Short: "Verify images as admission will: signatures, provenance, SBOMs, vulnerability scan, transparency log",
		Long: `Verify each IMAGE@DIGEST (an index and every platform manifest in it) as cluster admission will:

  signature   signed by the expected identity and OIDC issuer (or key), certificate chaining to
              the trusted root's Fulcio, transparency-log entry verified against its Rekor
  provenance  SLSA provenance v1 for the manifest's own digest, signed the same way, naming the
              expected builder (default: the signing identity), repository and ref
  sbom        SPDX and CycloneDX attestations (platform manifests)
  vuln        a vulnerability attestation whose trivy report has no fixable CRITICAL/HIGH
              finding outside the allow-list (platform manifests)
  referrers   the SBOMs and scan report as OCI 1.1 referrers (API or fallback tag)

The identity, issuer and trusted root default to bvrelease.yaml's signing section. One line
per check; exit 1 if any fails, 2 on bad usage.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			refs := make([]name.Digest, 0, len(args))
			for _, a := range args {
				ref, err := name.NewDigest(a)
				if err != nil {
					return usageError{fmt.Errorf("%s: want IMAGE@sha256:<digest> (%v)", a, err)}
				}
				refs = append(refs, ref)
			}
			e, err := o.expect()
			if err != nil {
				return err
			}
			var reports []admission.Report
			failed := 0
			for _, ref := range refs {
				rep, err := admission.Image(cmd.Context(), ref, e, sign.RemoteOptions(cmd.Context())...)
				if err != nil {
					rep.Checks = append(rep.Checks, admission.Check{Manifest: "index", Digest: ref.DigestStr(), Check: "read", Status: admission.Failed, Detail: err.Error()})
				}
				failed += rep.Failed()
				reports = append(reports, rep)
			}
			if err := printReports(cmd.OutOrStdout(), o.Output, reports); err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d check(s) failed", failed)
			}
			return nil
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func printReports(out io.Writer, format string, reports []admission.Report) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tMANIFEST\tDIGEST\tCHECK\tSTATUS\tDETAIL")
	for _, r := range reports {
		img := r.Image
		if i := strings.LastIndex(img, "@"); i >= 0 {
			img = filepath.Base(img[:i])
		}
		for _, c := range r.Checks {
			status := c.Status
			if status == admission.Failed {
				status = "FAIL"
			}
			d := strings.TrimPrefix(c.Digest, "sha256:")
			if len(d) > 12 {
				d = d[:12]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", img, c.Manifest, d, c.Check, status, c.Detail)
		}
	}
	return tw.Flush()
}
