package record_test

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/record"
)

// TestSummaryAttestationsAndReferrers: the table shows, per platform manifest,
// which SBOM and vulnerability attestations are verified or only attached, a
// missing scan as NOT SCANNED, and the referrers with the path the registry
// lists them by.
func TestSummaryAttestationsAndReferrers(t *testing.T) {
	h := func(c string) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(c, 64)} }
	all := []string{attestation.SPDX, attestation.CycloneDX, attestation.Vuln}
	refs := make([]release.ReferrerRecord, 4)
	for _, tc := range []struct {
		name string
		sig  release.SignatureRecord
		want []string
	}{
		{"verified", release.SignatureRecord{Verified: true, ProvenanceVerified: true, Attestations: all, AttestationsVerified: all, Referrers: refs, ReferrersVia: "referrers-api", ReferrersVerified: true},
			[]string{"verified SPDX CycloneDX vuln", "4 verified (referrers API)"}},
		{"attached, fallback tag", release.SignatureRecord{Attestations: all, Referrers: refs, ReferrersVia: "fallback-tag"},
			[]string{"attached SPDX CycloneDX vuln", "4 pushed (fallback tag)"}},
		{"not scanned", release.SignatureRecord{Verified: true, Attestations: all[:2], AttestationsVerified: all[:2], NotScanned: "no DB", Referrers: refs[:2], ReferrersVia: "fallback-tag", ReferrersVerified: true},
			[]string{"verified SPDX CycloneDX; vuln NOT SCANNED", "2 verified (fallback tag)"}},
		{"partly verified", release.SignatureRecord{Attestations: all, AttestationsVerified: all[:1]},
			[]string{"verified SPDX; attached CycloneDX vuln"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := tc.sig
			sig.Platform = "linux/amd64"
			rec := release.Record{Project: "bv", Artifacts: []release.ArtifactRecord{{
				Name: "one", Digest: h("a").String(),
				Manifests:  []builder.Manifest{{Platform: "linux/amd64", Digest: h("b")}},
				Signatures: []release.SignatureRecord{{Platform: "index"}, sig},
			}}}
			var b strings.Builder
			record.Summary(&b, rec, "")
			out := b.String()
			if !strings.Contains(out, "ATTESTATIONS") || !strings.Contains(out, "REFERRERS") {
				t.Errorf("no ATTESTATIONS/REFERRERS columns:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("table lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
