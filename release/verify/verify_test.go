package verify_test

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/attest/referrers"
	attestscan "github.com/bitvault/bitvault/attest/scan"
	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/attest"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/sign"
	"github.com/bitvault/bitvault/release/verify"
)

// TestVerifyStage: a signed image without provenance, then with provenance
// from the wrong builder, is refused; with the right one it passes.
func TestVerifyStage(t *testing.T) {
	ctx := context.Background()
	fx := registrytest.New(t, "bv/one", 1)
	ref := fx.Index
	d, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	r := release.New(&config.Config{Project: "bv", Artifacts: []config.Artifact{{Name: "one"}}}, t.TempDir(), release.Options{DryRun: true})
	s, err := attestsign.NewEphemeral(filepath.Join(r.Dist, "sign"))
	if err != nil {
		t.Fatal(err)
	}
	if err := attestsign.SignImage(ctx, ref, s); err != nil {
		t.Fatal(err)
	}
	policy, _ := json.Marshal(s.Policy())
	if err := os.WriteFile(sign.PolicyPath(r), policy, 0o644); err != nil {
		t.Fatal(err)
	}
	ar := r.Artifact("one")
	ar.Signatures = []release.SignatureRecord{{Platform: "index", Reference: ref.String()}}

	attach := func(builder string) {
		p := attestation.Provenance{BuildType: attest.BuildType, BuilderID: builder, InvocationID: "test", ExternalParameters: map[string]any{"repository": "local/bv", "ref": "local"}, StartedOn: time.Unix(1, 0), FinishedOn: time.Unix(2, 0)}
		stmt, err := attestation.Statement(ref.Context().String(), v1.Hash{Algorithm: "sha256", Hex: d.Hex}, attestation.SLSAProvenanceV1, p.Predicate())
		if err != nil {
			t.Fatal(err)
		}
		if err := attestation.Attach(ctx, ref, stmt, s); err != nil {
			t.Fatal(err)
		}
		ar.Signatures[0].Provenance = true
	}
	steps := []struct {
		name string
		edit func()
		want string // "" = passes
	}{
		{"no provenance", func() {}, "no SLSA provenance attached"},
		{"wrong builder", func() { attach("https://example.invalid/other-builder") }, "SLSA provenance says builder https://example.invalid/other-builder"},
		{"right builder", func() { attach(attest.BuilderID()) }, ""},
	}
	for _, st := range steps {
		st.edit()
		err := verify.Stage{}.Run(ctx, r)
		switch {
		case st.want == "" && err != nil:
			t.Fatalf("%s: %v", st.name, err)
		case st.want != "" && (err == nil || !strings.Contains(err.Error(), st.want) || !strings.Contains(err.Error(), "not recorded")):
			t.Fatalf("%s: err = %v, want %q and a refusal to record", st.name, err, st.want)
		}
	}
	if sr := r.Artifact("one").Signatures[0]; !sr.Verified || !sr.ProvenanceVerified || sr.Identity != attestsign.DryRunIdentity {
		t.Errorf("record after a passing verify: %+v", sr)
	}
}

const (
	spdxDoc   = `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"one","packages":[]}`
	cdxDoc    = `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[]}`
	sarifDoc  = `{"version":"2.1.0","runs":[]}`
	cleanScan = `{"SchemaVersion":2,"CreatedAt":"2026-01-02T03:04:05Z","Results":[]}`
)

// trivyReport is a trivy JSON report with one HIGH finding, fixed in fixed ("" = no fix yet).
func trivyReport(fixed string) string {
	return `{"SchemaVersion":2,"CreatedAt":"2026-01-02T03:04:05Z","Results":[{"Target":"app/server","Type":"gobinary","Vulnerabilities":[` +
		`{"VulnerabilityID":"CVE-2022-32149","VendorIDs":["GO-2022-1059"],"PkgName":"golang.org/x/text","InstalledVersion":"v0.3.7","FixedVersion":"` + fixed + `","Severity":"HIGH"}]}]}`
}

// platformFixture is a registry (with or without the referrers API) holding
// an index with one platform manifest (linux/amd64), both signed and given
// provenance by an ephemeral signer, and a release whose record names them,
// with the SBOMs and scan files the sbom and scan stages would have written.
type platformFixture struct {
	r            *release.Release
	s            attestsign.Signer
	index, child name.Digest
	log          *strings.Builder
}

func newPlatformFixture(t *testing.T, referrersAPI, dryRun bool, report string) *platformFixture {
	t.Helper()
	ctx := context.Background()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(referrersAPI)))
	t.Cleanup(srv.Close)
	repo, err := name.NewRepository(strings.TrimPrefix(srv.URL, "http://") + "/bv/one")
	if err != nil {
		t.Fatal(err)
	}
	fx := registrytest.Push(t, repo, 1)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Project: "bv", Root: root, Platforms: []string{"linux/amd64"}, Artifacts: []config.Artifact{{Name: "one", Dockerfile: "Dockerfile"}}}
	var logs strings.Builder
	r := release.New(cfg, t.TempDir(), release.Options{DryRun: dryRun, Log: &logs})
	r.Record.Commit = strings.Repeat("a", 40)
	s, err := attestsign.NewEphemeral(filepath.Join(r.Dist, "sign"))
	if err != nil {
		t.Fatal(err)
	}
	r.Signer = s
	policy, _ := json.Marshal(s.Policy())
	if err := os.WriteFile(sign.PolicyPath(r), policy, 0o644); err != nil {
		t.Fatal(err)
	}
	f := &platformFixture{r: r, s: s, index: fx.Index, child: fx.Children[0], log: &logs}
	files := map[string]string{
		"sbom/one/linux-amd64.spdx.json": spdxDoc, "sbom/one/linux-amd64.cdx.json": cdxDoc,
		"scan/one/linux-amd64.trivy.json": report, "scan/one/linux-amd64.sarif": sarifDoc,
	}
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(r.Dist, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(r.Dist, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ar := r.Artifact("one")
	child := f.child.DigestStr()
	ar.SBOMs = []release.SBOMRecord{{Platform: "linux/amd64", Digest: child, SPDX: "sbom/one/linux-amd64.spdx.json", CycloneDX: "sbom/one/linux-amd64.cdx.json"}}
	ar.Scans = []release.ScanRecord{{Platform: "linux/amd64", Digest: child, Status: "clean", Report: "scan/one/linux-amd64.trivy.json", SARIF: "scan/one/linux-amd64.sarif", Seconds: 1.5}}
	for _, ref := range []name.Digest{f.index, f.child} {
		if err := attestsign.SignImage(ctx, ref, s); err != nil {
			t.Fatal(err)
		}
		platform := "index"
		if ref == f.child {
			platform = "linux/amd64"
		}
		ar.Signatures = append(ar.Signatures, release.SignatureRecord{Platform: platform, Reference: ref.String(), Signer: s.Identity()})
		p := attestation.Provenance{BuildType: attest.BuildType, BuilderID: attest.BuilderID(), InvocationID: "test", ExternalParameters: map[string]any{"repository": "local/bv", "ref": "local"}, StartedOn: time.Unix(1, 0), FinishedOn: time.Unix(2, 0)}
		stmt, err := attestation.Statement(ref.Context().String(), hashOf(t, ref), attestation.SLSAProvenanceV1, p.Predicate())
		if err != nil {
			t.Fatal(err)
		}
		if err := attestation.Attach(ctx, ref, stmt, s); err != nil {
			t.Fatal(err)
		}
		ar.Signatures[len(ar.Signatures)-1].Provenance = true
	}
	return f
}

func hashOf(t *testing.T, ref name.Digest) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (f *platformFixture) platform() *release.SignatureRecord {
	return &f.r.Artifact("one").Signatures[1]
}

// attach attaches to the platform manifest what the attest stage would, less
// what skip names: "spdx", "cyclonedx", "vuln" (attestations), "referrers"
// (all of them), "sarif" (the SARIF referrer).
func (f *platformFixture) attach(t *testing.T, skip ...string) {
	t.Helper()
	ctx := context.Background()
	ar, sr := f.r.Artifact("one"), f.platform()
	repo := f.child.Context().String()
	sc := ar.Scans[0]
	scanned := sc.Status != "not-scanned"
	type part struct {
		key          string
		stmt         func(h v1.Hash) ([]byte, error)
		artifactType string
		file         string
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(f.r.Dist, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	parts := []part{
		{"spdx", func(h v1.Hash) ([]byte, error) {
			return attestation.SBOMStatement(repo, h, attestation.SPDX, read(ar.SBOMs[0].SPDX))
		}, referrers.SPDX, ar.SBOMs[0].SPDX},
		{"cyclonedx", func(h v1.Hash) ([]byte, error) {
			return attestation.SBOMStatement(repo, h, attestation.CycloneDX, read(ar.SBOMs[0].CycloneDX))
		}, referrers.CycloneDX, ar.SBOMs[0].CycloneDX},
	}
	if scanned {
		parts = append(parts,
			part{"vuln", func(h v1.Hash) ([]byte, error) {
				vs, err := attest.VulnScan(f.r, sc, read(sc.Report), filepath.Join(f.r.Dist, sc.Report))
				if err != nil {
					return nil, err
				}
				return attestation.VulnStatement(repo, h, vs)
			}, referrers.TrivyReport, sc.Report},
			part{"sarif", nil, referrers.SARIF, sc.SARIF})
	}
	var arts []referrers.Artifact
	var files []string
	for _, p := range parts {
		if p.stmt != nil && !slices.Contains(skip, p.key) {
			// on the platform manifest, and (as release/attest does) on the index
			for _, ref := range []name.Digest{f.child, f.index} {
				stmt, err := p.stmt(hashOf(t, ref))
				if err != nil {
					t.Fatal(err)
				}
				if err := attestation.Attach(ctx, ref, stmt, f.s); err != nil {
					t.Fatal(err)
				}
			}
			sr.Attestations = append(sr.Attestations, map[string]string{"spdx": attestation.SPDX, "cyclonedx": attestation.CycloneDX, "vuln": attestation.Vuln}[p.key])
		}
		if !slices.Contains(skip, "referrers") && !(p.key == "sarif" && slices.Contains(skip, "sarif")) {
			arts = append(arts, referrers.Artifact{ArtifactType: p.artifactType, Data: read(p.file)})
			files = append(files, p.file)
		}
	}
	if len(arts) > 0 {
		res, err := referrers.Push(ctx, f.child, arts)
		if err != nil {
			t.Fatal(err)
		}
		sr.ReferrersVia = string(res.Via)
		for i, p := range res.Artifacts {
			sr.Referrers = append(sr.Referrers, release.ReferrerRecord{ArtifactType: p.ArtifactType, Digest: p.Digest.String(), File: files[i], FileDigest: p.Layer.String()})
		}
	}
}

// TestVerifyPlatformManifests: a platform manifest must carry verified SPDX
// and CycloneDX attestations, a verified vulnerability attestation whose
// report passes the gate (or, in a dry-run only, a recorded "not scanned"
// that is not counted as clean), and its referrers — in a registry with the
// referrers API and in one without. Every failure names image, platform,
// manifest and what is missing.
func TestVerifyPlatformManifests(t *testing.T) {
	allowHigh := "entries:\n  - id: CVE-2022-32149\n    reason: not reachable in this test\n    expires: 2099-01-01\n"
	cases := []struct {
		name       string
		dryRun     bool
		report     string
		notScanned bool
		allow      string   // .bvrelease/vuln-allow.yaml
		skip       []string // what is not attached
		want       []string // in the error; nil: verify passes
		verified   []string // attestations_verified when it passes
	}{
		{name: "complete and clean", dryRun: true, report: cleanScan, verified: []string{attestation.SPDX, attestation.CycloneDX, attestation.Vuln}},
		{name: "complete and clean, release", report: cleanScan, verified: []string{attestation.SPDX, attestation.CycloneDX, attestation.Vuln}},
		{name: "SPDX attestation missing", dryRun: true, report: cleanScan, skip: []string{"spdx"}, want: []string{"SPDX SBOM attestation", "spdxjson", "missing"}},
		{name: "CycloneDX attestation missing", dryRun: true, report: cleanScan, skip: []string{"cyclonedx"}, want: []string{"CycloneDX SBOM attestation", "missing"}},
		{name: "vuln attestation missing", dryRun: true, report: cleanScan, skip: []string{"vuln"}, want: []string{"vulnerability attestation (cosign --type vuln) missing"}},
		{name: "vuln predicate with an unfixed HIGH", dryRun: true, report: trivyReport("v0.3.8"), want: []string{"not clean", "one linux/amd64: golang.org/x/text 0.3.7 → 0.3.8 CVE-2022-32149 (HIGH)"}},
		{name: "HIGH allow-listed", dryRun: true, report: trivyReport("v0.3.8"), allow: allowHigh, verified: []string{attestation.SPDX, attestation.CycloneDX, attestation.Vuln}},
		{name: "HIGH without a fix yet", dryRun: true, report: trivyReport(""), verified: []string{attestation.SPDX, attestation.CycloneDX, attestation.Vuln}},
		{name: "referrers missing", dryRun: true, report: cleanScan, skip: []string{"referrers"}, want: []string{"referrers:", "no referrer", referrers.SPDX, referrers.CycloneDX, referrers.TrivyReport, referrers.SARIF}},
		{name: "SARIF referrer missing", dryRun: true, report: cleanScan, skip: []string{"sarif"}, want: []string{"referrers:", referrers.SARIF}},
		{name: "not scanned, dry-run", dryRun: true, report: cleanScan, notScanned: true, verified: []string{attestation.SPDX, attestation.CycloneDX}},
		{name: "not scanned, release", report: cleanScan, notScanned: true, want: []string{"NOT SCANNED (trivy could not download its vulnerability DB)", "--vuln-db"}},
	}
	for _, mode := range []struct {
		name string
		api  bool
		via  string
	}{{"referrers API", true, "referrers-api"}, {"fallback tag", false, "fallback-tag"}} {
		for _, tc := range cases {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				ctx := context.Background()
				f := newPlatformFixture(t, mode.api, tc.dryRun, tc.report)
				if tc.notScanned {
					sc := &f.r.Artifact("one").Scans[0]
					sc.Status, sc.Reason, sc.Report, sc.SARIF = "not-scanned", "trivy could not download its vulnerability DB", "", ""
					f.platform().NotScanned = sc.Reason
				}
				if tc.allow != "" {
					p := f.r.Config.Abs(attestscan.DefaultAllowList)
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte(tc.allow), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				f.attach(t, tc.skip...)
				err := verify.Stage{}.Run(ctx, f.r)
				sr := f.platform()
				if tc.want == nil {
					if err != nil {
						t.Fatal(err)
					}
					if !sr.Verified || !sr.ProvenanceVerified || !slices.Equal(sr.AttestationsVerified, tc.verified) || !sr.ReferrersVerified || sr.ReferrersVia != mode.via {
						t.Errorf("record after a passing verify: %+v", sr)
					}
					if tc.notScanned && !strings.Contains(f.log.String(), "one linux/amd64: NOT SCANNED") {
						t.Errorf("a dry-run without a scan does not say NOT SCANNED:\n%s", f.log)
					}
					return
				}
				if err == nil {
					t.Fatalf("verify passed, want %q", tc.want)
				}
				t.Log(err)
				for _, w := range append([]string{"not recorded", "one linux/amd64 (" + f.child.DigestStr() + ")"}, tc.want...) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not say %q:\n%v", w, err)
					}
				}
				if slices.Contains(sr.AttestationsVerified, attestation.Vuln) && tc.report != cleanScan {
					t.Errorf("a failed vulnerability check is recorded verified: %+v", sr.AttestationsVerified)
				}
			})
		}
	}
}

// TestAttestThenVerify runs the attest stage itself, twice (a resumed run),
// then verify: the second run adds no SBOM or vulnerability attestation and
// pushes the same referrers; verify passes and the record says what is there.
func TestAttestThenVerify(t *testing.T) {
	for _, mode := range []struct {
		api bool
		via string
	}{{true, "referrers-api"}, {false, "fallback-tag"}} {
		t.Run(mode.via, func(t *testing.T) {
			ctx := context.Background()
			f := newPlatformFixture(t, mode.api, true, trivyReport(""))
			if err := (attest.Stage{}).Run(ctx, f.r); err != nil {
				t.Fatal(err)
			}
			first := *f.platform()
			counts := attestationCounts(t, f.child)
			if err := (attest.Stage{}).Run(ctx, f.r); err != nil {
				t.Fatal(err)
			}
			again := attestationCounts(t, f.child)
			for _, typ := range []string{attestation.SPDX, attestation.CycloneDX, attestation.Vuln} {
				if counts[typ] != 1 || again[typ] != 1 {
					t.Errorf("%s attestations: %d, then %d after a re-run; want 1 and 1", typ, counts[typ], again[typ])
				}
			}
			sr := f.platform()
			if !slices.Equal(sr.Attestations, []string{attestation.SPDX, attestation.CycloneDX, attestation.Vuln}) || sr.ReferrersVia != mode.via || len(sr.Referrers) != 4 || sr.NotScanned != "" {
				t.Errorf("record after attest: %+v", sr)
			}
			for i := range sr.Referrers {
				if sr.Referrers[i] != first.Referrers[i] {
					t.Errorf("referrer %d changed on a re-run: %+v, was %+v", i, sr.Referrers[i], first.Referrers[i])
				}
			}
			if !strings.Contains(f.log.String(), "attest: one linux/amd64: spdxjson, cyclonedx, vuln attested; 4 referrers via the "+referrers.Via(mode.via).String()) {
				t.Errorf("log:\n%s", f.log)
			}
			if err := (verify.Stage{}).Run(ctx, f.r); err != nil {
				t.Fatal(err)
			}
			if sr := f.platform(); len(sr.AttestationsVerified) != 3 || !sr.ReferrersVerified {
				t.Errorf("record after verify: %+v", sr)
			}

			// Not scanned: no vuln predicate, and the record says why.
			sc := &f.r.Artifact("one").Scans[0]
			sc.Status, sc.Reason, sc.Report, sc.SARIF = "not-scanned", "no DB", "", ""
			if err := (attest.Stage{}).Run(ctx, f.r); err != nil {
				t.Fatal(err)
			}
			if sr := f.platform(); sr.NotScanned != "no DB" || slices.Contains(sr.Attestations, attestation.Vuln) || len(sr.Referrers) != 2 {
				t.Errorf("record after attest of a not-scanned manifest: %+v", sr)
			}
		})
	}
}

// attestationCounts counts ref's attestation layers by predicate type.
func attestationCounts(t *testing.T, ref name.Digest) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, l := range registrytest.AttestationLayers(t, ref) {
		n[l.Annotations[attestation.PredicateTypeAnnotation]]++
	}
	return n
}
