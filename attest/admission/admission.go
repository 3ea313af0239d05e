// Package admission checks a published image the way cluster admission does before it
// lets the image run: the index and every platform manifest signed by the expected identity
// (attest/sign: cosign's verification, transparency log checked against a trusted root
// where the policy has one); SLSA provenance v1 for each, signed the same way, naming the
// expected builder, repository and ref; per platform manifest, SPDX and CycloneDX SBOM
// attestations and a vulnerability attestation whose trivy report passes the scan gate; and
// the SBOMs and scan reports as OCI 1.1 referrers.
//
// The release pipeline's verify stage and `bvrelease verify` both call these checks; Image
// runs them all for one image and returns one line per check.
package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bitvault/bitvault/attest/attestation"
	attestscan "github.com/bitvault/bitvault/attest/scan"
	"github.com/bitvault/bitvault/attest/sign"
)

// Builder is what the provenance must say about who built the image and from what.
// Empty fields are not checked; ID and IDRegexp exclude each other.
type Builder struct {
	ID, IDRegexp string
	Repository   string // externalParameters.repository, e.g. bitvault/bitvault
	Ref          string // externalParameters.ref, e.g. refs/tags/v1.2.3
}

func (b Builder) String() string {
	var parts []string
	if b.ID != "" {
		parts = append(parts, "builder "+b.ID)
	}
	if b.IDRegexp != "" {
		parts = append(parts, "builder matching "+b.IDRegexp)
	}
	if b.Repository != "" {
		parts = append(parts, "repository "+b.Repository)
	}
	if b.Ref != "" {
		parts = append(parts, "ref "+b.Ref)
	}
	return strings.Join(parts, ", ")
}

// provenanceFacts is what Provenance reads from a SLSA v1 statement.
type provenanceFacts struct {
	Predicate struct {
		BuildDefinition struct {
			ExternalParameters struct {
				Repository string `json:"repository"`
				Ref        string `json:"ref"`
			} `json:"externalParameters"`
		} `json:"buildDefinition"`
		RunDetails struct {
			Builder struct {
				ID string `json:"id"`
			} `json:"builder"`
		} `json:"runDetails"`
	} `json:"predicate"`
}

// Provenance checks that ref carries a SLSA provenance v1 attestation for its own digest,
// signed per p, that satisfies want. It returns the builder id of the one that did.
func Provenance(ctx context.Context, ref name.Digest, p sign.Policy, want Builder, opts ...remote.Option) (string, error) {
	var re *regexp.Regexp
	if want.IDRegexp != "" {
		var err error
		if re, err = regexp.Compile(want.IDRegexp); err != nil {
			return "", fmt.Errorf("builder id regexp: %w", err)
		}
	}
	stmts, err := attestation.VerifyAttestations(ctx, ref, attestation.SLSAProvenanceV1, p, opts...)
	if err != nil {
		return "", fmt.Errorf("SLSA provenance (cosign --type slsaprovenance1) missing or not verified: %w", err)
	}
	var seen []string
	for _, st := range stmts {
		var f provenanceFacts
		if err := json.Unmarshal(st, &f); err != nil {
			return "", fmt.Errorf("SLSA provenance: %w", err)
		}
		id, ext := f.Predicate.RunDetails.Builder.ID, f.Predicate.BuildDefinition.ExternalParameters
		ok := (want.ID == "" || id == want.ID) && (re == nil || re.MatchString(id)) &&
			(want.Repository == "" || ext.Repository == want.Repository) && (want.Ref == "" || ext.Ref == want.Ref)
		if ok {
			return id, nil
		}
		seen = append(seen, fmt.Sprintf("builder %s, repository %s, ref %s", id, ext.Repository, ext.Ref))
	}
	return "", fmt.Errorf("SLSA provenance says %s; want %s", strings.Join(seen, "; "), want)
}

// SBOMs checks the SPDX and CycloneDX attestations on ref; it returns the predicate types
// that verified and an error naming each that did not.
func SBOMs(ctx context.Context, ref name.Digest, p sign.Policy, opts ...remote.Option) ([]string, error) {
	var ok []string
	var missing []string
	for _, s := range []struct{ typ, what string }{{attestation.SPDX, "SPDX SBOM"}, {attestation.CycloneDX, "CycloneDX SBOM"}} {
		if _, err := attestation.VerifyAttestations(ctx, ref, s.typ, p, opts...); err != nil {
			missing = append(missing, fmt.Sprintf("%s attestation (cosign --type %s) missing or not verified: %v", s.what, attestation.CosignType(s.typ), err))
			continue
		}
		ok = append(ok, s.typ)
	}
	if len(missing) > 0 {
		return ok, fmt.Errorf("%s", strings.Join(missing, "; "))
	}
	return ok, nil
}

// Vuln checks ref's vulnerability attestations: present, signed per p for this digest,
// about this digest, and clean by the scan gate with allow (every one must pass: admission
// sees them all). image and platform name the manifest in findings.
func Vuln(ctx context.Context, ref name.Digest, p sign.Policy, allow *attestscan.AllowList, image, platform string, opts ...remote.Option) error {
	stmts, err := attestation.VerifyAttestations(ctx, ref, attestation.Vuln, p, opts...)
	if err != nil {
		return fmt.Errorf("vulnerability attestation (cosign --type vuln) missing or not verified: %w", err)
	}
	// A report is about this manifest; on an index, about one of its platform manifests.
	about := map[string]bool{ref.DigestStr(): true}
	if idx, err := remote.Index(ref, opts...); err == nil {
		if im, err := idx.IndexManifest(); err == nil {
			for _, m := range im.Manifests {
				about[m.Digest.String()] = true
			}
		}
	}
	var reports []*attestscan.Report
	for _, st := range stmts {
		_, raw, err := attestation.VulnOf(st)
		if err != nil {
			return fmt.Errorf("vulnerability attestation: %w", err)
		}
		rep, err := attestscan.ParseReport(raw, image, platform)
		if err != nil {
			return fmt.Errorf("vulnerability attestation: %w", err)
		}
		if rep.Digest != "" && !about[rep.Digest] {
			return fmt.Errorf("vulnerability attestation: its report is about %s, not %s or a manifest in it", rep.Digest, ref.DigestStr())
		}
		reports = append(reports, rep)
	}
	verdict := attestscan.Gate(reports, allow, time.Now())
	if len(verdict.Blocking) > 0 {
		var lines []string
		for _, f := range verdict.Blocking {
			if l := f.Line(); !slices.Contains(lines, l) {
				lines = append(lines, l)
			}
		}
		return fmt.Errorf("vulnerability attestation not clean: %d fixable CRITICAL/HIGH finding(s) not allow-listed: %s", len(lines), strings.Join(lines, "; "))
	}
	return nil
}
