package admission_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bitvault/bitvault/attest/admission"
	"github.com/bitvault/bitvault/attest/attestation"
	attestscan "github.com/bitvault/bitvault/attest/scan"
	"github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/attest/sign/keyless"
	"github.com/bitvault/bitvault/internal/testsupport/attesttest"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
	"github.com/bitvault/bitvault/internal/testsupport/sigstoretest"
)

var workflow = sigstoretest.Workflow{
	Repository: "bitvault/bitvault", Ref: "refs/tags/v1.2.3", SHA: strings.Repeat("ab", 20),
	WorkflowPath: ".github/workflows/release.yml", EventName: "push", RunID: "9",
}

// TestImage: a complete keyless release image passes every check; each missing or wrong
// part fails the check that names it, and only that one.
func TestImage(t *testing.T) {
	ctx := context.Background()
	ss := sigstoretest.New(t, workflow)
	ss.Env(t)
	s, err := keyless.FromEnv(ctx, keyless.Config{FulcioURL: ss.FulcioURL, RekorURL: ss.RekorURL, TrustedRoot: ss.TrustedRoot(), IgnoreSCT: true})
	if err != nil {
		t.Fatal(err)
	}
	other := sigstoretest.New(t, workflow)
	expect := admission.Expect{
		Policy: sign.Policy{TrustedRoot: ss.TrustedRoot(), IdentityRegexp: `^https://github\.com/bitvault/bitvault/\.github/workflows/release\.yml@refs/tags/v`,
			Issuer: sigstoretest.GitHubIssuer, IgnoreSCT: true},
		Builder: admission.Builder{Repository: workflow.Repository, Ref: workflow.Ref},
		Allow:   &attestscan.AllowList{},
	}
	good := attesttest.Options{Builder: workflow.Identity(), Repository: workflow.Repository, Ref: workflow.Ref}
	with := func(edit func(*attesttest.Options)) attesttest.Options { o := good; edit(&o); return o }
	for _, tc := range []struct {
		name   string
		opts   attesttest.Options
		expect func(*admission.Expect)
		failed map[string]string // check → text in its detail; nil: everything passes
	}{
		{"complete", good, nil, nil},
		{"unsigned", with(func(o *attesttest.Options) { o.Skip = []string{attesttest.Signature} }), nil, map[string]string{"signature": "no signature"}},
		{"wrong identity expected", good, func(e *admission.Expect) { e.Policy.IdentityRegexp = `@refs/tags/v9\.` }, map[string]string{"signature": "wrong identity"}},
		{"untrusted root", good, func(e *admission.Expect) { e.Policy.TrustedRoot = other.TrustedRoot() }, map[string]string{"signature": "untrusted CA"}},
		{"no provenance", with(func(o *attesttest.Options) { o.Skip = []string{attesttest.Provenance} }), nil, map[string]string{"provenance": "no attestation"}},
		{"provenance from another builder", with(func(o *attesttest.Options) {
			o.Builder = "https://github.com/bitvault/bitvault/.github/workflows/ci.yml@refs/heads/main"
		}), nil, map[string]string{"provenance": "want builder " + workflow.Identity()}},
		{"provenance for another ref", with(func(o *attesttest.Options) { o.Ref = "refs/heads/main" }), nil, map[string]string{"provenance": "ref refs/heads/main"}},
		{"provenance for another repository", with(func(o *attesttest.Options) { o.Repository = "evil/bitvault" }), nil, map[string]string{"provenance": "repository evil/bitvault"}},
		{"no SPDX", with(func(o *attesttest.Options) { o.Skip = []string{attesttest.SPDX} }), nil, map[string]string{"sbom": "SPDX SBOM attestation"}},
		{"no CycloneDX", with(func(o *attesttest.Options) { o.Skip = []string{attesttest.CycloneDX} }), nil, map[string]string{"sbom": "CycloneDX SBOM attestation"}},
		{"vulnerable", with(func(o *attesttest.Options) { o.Report = attesttest.TrivyReport("v0.3.8") }), nil, map[string]string{"vuln": "CVE-2022-32149"}},
		{"HIGH without a fix yet", with(func(o *attesttest.Options) { o.Report = attesttest.TrivyReport("") }), nil, nil},
		{"not scanned", with(func(o *attesttest.Options) { o.Skip = []string{attesttest.Vuln} }), nil, map[string]string{"vuln": "no attestation"}},
		{"not scanned, allowed", with(func(o *attesttest.Options) { o.Skip = []string{attesttest.Vuln} }), func(e *admission.Expect) { e.AllowUnscanned = true }, nil},
		{"no referrers", with(func(o *attesttest.Options) { o.Skip = []string{attesttest.Referrers} }), nil, map[string]string{"referrers": "no referrer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := registrytest.New(t, "bitvault/bitvaultd", 2)
			attesttest.Attest(t, s, f.Index, f.Children, tc.opts)
			e := expect
			if tc.expect != nil {
				tc.expect(&e)
			}
			rep, err := admission.Image(ctx, f.Index, e)
			if err != nil {
				t.Fatal(err)
			}
			if tc.failed == nil && len(rep.Checks) != 4+2*5 {
				t.Errorf("%d checks, want %d (index: signature, provenance, sbom, vuln; each platform: those and referrers)", len(rep.Checks), 4+2*5)
			}
			failed := map[string]bool{}
			for _, c := range rep.Checks {
				if c.Status != admission.Failed {
					continue
				}
				failed[c.Check] = true
				want, ok := tc.failed[c.Check]
				if !ok {
					t.Errorf("%s %s failed unexpectedly: %s", c.Manifest, c.Check, c.Detail)
				} else if !strings.Contains(c.Detail, want) {
					t.Errorf("%s %s: %q lacks %q", c.Manifest, c.Check, c.Detail, want)
				}
			}
			for check := range tc.failed {
				if !failed[check] {
					t.Errorf("%s passed, want it to fail", check)
				}
			}
			if (rep.Failed() == 0) != (tc.failed == nil) {
				t.Errorf("Failed() = %d", rep.Failed())
			}
		})
	}
}

// TestGeneratorProvenance: an image whose provenance comes from slsa-github-generator's
// container generator (SLSA v0.2, signed by the generator's reusable workflow) passes when
// bvrelease.yaml accepts that producer, and fails when only bvrelease's own is accepted or the
// provenance names another repository.
func TestGeneratorProvenance(t *testing.T) {
	ctx := context.Background()
	ss := sigstoretest.New(t, workflow)
	ss.Env(t)
	cfg := keyless.Config{FulcioURL: ss.FulcioURL, RekorURL: ss.RekorURL, TrustedRoot: ss.TrustedRoot(), IgnoreSCT: true}
	release, err := keyless.FromEnv(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	generatorWorkflow := sigstoretest.Workflow{Repository: "slsa-framework/slsa-github-generator", Ref: "refs/tags/v2.1.0",
		WorkflowPath: ".github/workflows/generator_container_slsa3.yml", SHA: workflow.SHA, EventName: "push", RunID: "9"}
	ss.SetWorkflow(generatorWorkflow)
	generator, err := keyless.FromEnv(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	attestGenerator := func(f registrytest.Fixture, repo string) {
		t.Helper()
		for _, ref := range append([]name.Digest{f.Index}, f.Children...) {
			h, err := v1.NewHash(ref.DigestStr())
			if err != nil {
				t.Fatal(err)
			}
			stmt, err := attestation.Statement(ref.Context().String(), h, admission.GeneratorPredicateType, map[string]any{
				"builder":    map[string]any{"id": generatorWorkflow.Identity()},
				"buildType":  admission.GeneratorBuildType,
				"invocation": map[string]any{"configSource": map[string]any{"uri": "git+https://github.com/" + repo + "@" + workflow.Ref, "entryPoint": ".github/workflows/release.yml"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := attestation.Attach(ctx, ref, stmt, generator); err != nil {
				t.Fatal(err)
			}
		}
	}
	expect := admission.Expect{
		Policy:  sign.Policy{TrustedRoot: ss.TrustedRoot(), Identity: workflow.Identity(), Issuer: sigstoretest.GitHubIssuer, IgnoreSCT: true},
		Builder: admission.Builder{Repository: workflow.Repository, Ref: workflow.Ref},
		Allow:   &attestscan.AllowList{},
	}
	for _, tc := range []struct {
		name      string
		repo      string
		producers []string
		ok        bool
		want      string
	}{
		{"generator accepted", workflow.Repository, []string{admission.ProducerBvrelease, admission.ProducerGenerator}, true, "slsa-github-generator"},
		{"generator alone", workflow.Repository, []string{admission.ProducerGenerator}, true, "slsa-github-generator"},
		{"only bvrelease accepted", workflow.Repository, nil, false, "SLSA provenance (cosign --type slsaprovenance1) missing"},
		{"generator ran for another repository", "evil/bitvault", []string{admission.ProducerGenerator}, false, "source git+https://github.com/evil/bitvault@"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := registrytest.New(t, "bitvault/bitvaultd", 1)
			attesttest.Attest(t, release, f.Index, f.Children, attesttest.Options{Skip: []string{attesttest.Provenance}})
			attestGenerator(f, tc.repo)
			e := expect
			e.Producers = tc.producers
			rep, err := admission.Image(ctx, f.Index, e)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range rep.Checks {
				if c.Check != "provenance" {
					if c.Status == admission.Failed {
						t.Errorf("%s %s failed: %s", c.Manifest, c.Check, c.Detail)
					}
					continue
				}
				if (c.Status == admission.OK) != tc.ok || !strings.Contains(c.Detail, tc.want) {
					t.Errorf("%s provenance: %s %q, want ok=%v and %q", c.Manifest, c.Status, c.Detail, tc.ok, tc.want)
				}
			}
		})
	}
}
