package admission

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/attest/referrers"
	attestscan "github.com/bitvault/bitvault/attest/scan"
	"github.com/bitvault/bitvault/attest/sign"
)

// Expect is what Image requires of an image.
type Expect struct {
	Policy sign.Policy
	// Builder is checked against every provenance. When it names no builder id, the
	// builder must be the verified certificate identity (in GitHub Actions both are the
	// workflow URI; in a dry-run both are https://bitvault.dev/dry-run); for key-signed
	// images give Builder.ID.
	Builder Builder
	Allow   *attestscan.AllowList
	// AllowUnscanned reports a platform manifest with no vulnerability attestation as NOT
	// SCANNED instead of failing it (a dry-run without a vulnerability DB).
	AllowUnscanned bool
	// Producers are the accepted provenance producers (bvrelease.yaml policy.provenance):
	// "bvrelease" (our SLSA v1, signed by the release identity) and/or "slsa-github-generator"
	// (its container generator's SLSA v0.2). Empty means bvrelease only.
	Producers []string
}

// Provenance producers.
const (
	ProducerBvrelease = "bvrelease"
	ProducerGenerator = "slsa-github-generator"
)

// Check statuses.
const (
	OK         = "ok"
	Failed     = "failed"
	NotScanned = "not-scanned"
)

// Check is the result of one check on one manifest.
type Check struct {
	Manifest string `json:"manifest"` // "index", or the platform
	Digest   string `json:"digest"`
	Check    string `json:"check"` // signature, provenance, sbom, vuln, referrers
	Status   string `json:"status"`
	Detail   string `json:"detail"`
}

// Report is every check of one image.
type Report struct {
	Image  string  `json:"image"`
	Checks []Check `json:"checks"`
}

// Failed counts the failed checks.
func (r Report) Failed() int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == Failed {
			n++
		}
	}
	return n
}

// Image runs every check on ref (an index, or a single manifest) and its platform
// manifests: signature and provenance on each, SBOM and vuln attestations on each (the
// index's are what admission reads for a workload naming the index digest), referrers on
// the platform manifests. The error is for what stops checking at all (the registry unreachable, ref not
// found); everything else is a failed Check.
func Image(ctx context.Context, ref name.Digest, e Expect, opts ...remote.Option) (Report, error) {
	rep := Report{Image: ref.String()}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return rep, fmt.Errorf("%s: %w", ref, err)
	}
	type target struct {
		platform string
		ref      name.Digest
	}
	targets := []target{{"index", ref}}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return rep, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return rep, err
		}
		for _, m := range im.Manifests {
			p := "unknown"
			if m.Platform != nil {
				p = m.Platform.String()
			}
			targets = append(targets, target{p, ref.Context().Digest(m.Digest.String())})
		}
	} else {
		targets[0].platform = "image"
	}
	image := ref.Context().RepositoryStr()
	for _, t := range targets {
		add := func(check, status, detail string) {
			rep.Checks = append(rep.Checks, Check{Manifest: t.platform, Digest: t.ref.DigestStr(), Check: check, Status: status, Detail: detail})
		}
		vs, err := sign.Verify(ctx, t.ref, e.Policy, opts...)
		if err != nil {
			add("signature", Failed, err.Error())
			continue // nothing signed by anyone else counts
		}
		add("signature", OK, "signed by "+vs[0].Identity+issuerSuffix(vs[0].Issuer))
		want := e.Builder
		if want.ID == "" && want.IDRegexp == "" && isURI(vs[0].Identity) {
			want.ID = vs[0].Identity
		}
		if detail, err := anyProvenance(ctx, t.ref, e, want, opts...); err != nil {
			add("provenance", Failed, err.Error())
		} else {
			add("provenance", OK, detail)
		}
		if _, err := SBOMs(ctx, t.ref, e.Policy, opts...); err != nil {
			add("sbom", Failed, err.Error())
		} else {
			add("sbom", OK, "SPDX and CycloneDX attestations")
		}
		err = Vuln(ctx, t.ref, e.Policy, e.Allow, image, t.platform, opts...)
		scanned := !errors.Is(err, attestation.ErrNoAttestation) // unscanned: no report referrer either
		switch {
		case err == nil:
			add("vuln", OK, "vulnerability attestation, clean by the gate")
		case !scanned && e.AllowUnscanned:
			add("vuln", NotScanned, "NOT SCANNED: no vulnerability attestation (allowed for a dry-run only; not clean)")
		default:
			add("vuln", Failed, err.Error())
		}
		if t.platform == "index" {
			continue // referrers hang off the platform manifests
		}
		want2 := []referrers.Pushed{{ArtifactType: referrers.SPDX}, {ArtifactType: referrers.CycloneDX}}
		if scanned {
			want2 = append(want2, referrers.Pushed{ArtifactType: referrers.TrivyReport})
		}
		if via, err := referrers.Verify(ctx, t.ref, want2, opts...); err != nil {
			add("referrers", Failed, err.Error())
		} else {
			add("referrers", OK, fmt.Sprintf("%d artifacts (%s)", len(want2), via))
		}
	}
	return rep, nil
}

func issuerSuffix(iss string) string {
	if iss == "" {
		return ""
	}
	return " (" + iss + ")"
}

func isURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && !strings.Contains(s, ",")
}

// anyProvenance accepts the provenance of any producer e allows; the error names what each
// lacked.
func anyProvenance(ctx context.Context, ref name.Digest, e Expect, want Builder, opts ...remote.Option) (string, error) {
	producers := e.Producers
	if len(producers) == 0 {
		producers = []string{ProducerBvrelease}
	}
	var errs []string
	for _, p := range producers {
		switch p {
		case ProducerBvrelease:
			id, err := Provenance(ctx, ref, e.Policy, want, opts...)
			if err == nil {
				return "SLSA v1, builder " + id, nil
			}
			errs = append(errs, err.Error())
		case ProducerGenerator:
			gen := want
			gen.ID, gen.IDRegexp = "", ""
			id, err := GeneratorProvenance(ctx, ref, e.Policy, gen, opts...)
			if err == nil {
				return "SLSA v0.2 (slsa-github-generator), builder " + id, nil
			}
			errs = append(errs, err.Error())
		default:
			errs = append(errs, fmt.Sprintf("unknown provenance producer %q", p))
		}
	}
	return "", errors.New(strings.Join(errs, "; or "))
}
