package policies_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/internal/testsupport/attesttest"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/policy"
)

// generatorProvenance is the predicate slsa-github-generator's container workflow writes
// (its README's "Provenance Example"), for a run of repo's release workflow on v1.2.3.
func generatorProvenance(repo string) map[string]any {
	sha := strings.Repeat("a", 40)
	return map[string]any{
		"builder":   map[string]any{"id": "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.1.0"},
		"buildType": policy.GeneratorBuildType,
		"invocation": map[string]any{
			"configSource": map[string]any{
				"uri":        "git+https://github.com/" + repo + "@refs/tags/v1.2.3",
				"digest":     map[string]any{"sha1": sha},
				"entryPoint": ".github/workflows/release.yml",
			},
			"parameters":  map[string]any{},
			"environment": map[string]any{"github_event_name": "push", "github_ref": "refs/tags/v1.2.3", "github_sha1": sha},
		},
		"metadata": map[string]any{
			"buildInvocationID": "1-1",
			"completeness":      map[string]any{"parameters": true, "environment": false, "materials": false},
			"reproducible":      false,
		},
		"materials": []any{map[string]any{"uri": "git+https://github.com/" + repo + "@refs/tags/v1.2.3", "digest": map[string]any{"sha1": sha}}},
	}
}

// generatorRelease is an image released by bvrelease (signatures, SBOM and scan attestations,
// also on the index) whose provenance is slsa-github-generator's, signed by s, naming repo.
func generatorRelease(t *testing.T, repo name.Repository, tr releaseTrust, s sign.Signer, provRepo string) registrytest.Fixture {
	t.Helper()
	f := registrytest.Push(t, repo, 2)
	release(t, f, tr, releaseOpts{skip: []string{attesttest.Provenance}, indexSBOMs: true})
	if s == nil {
		return f
	}
	for _, ref := range append([]name.Digest{f.Index}, f.Children...) {
		st, err := attestation.Statement(ref.Context().String(), digestOf(t, ref), policy.GeneratorPredicateType, generatorProvenance(provRepo))
		if err != nil {
			t.Fatal(err)
		}
		if err := attestation.Attach(context.Background(), ref, st, s); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// generate writes the policies bvrelease.yaml generates with policy.provenance set to producers
// into a temp dir and returns it (or the generation error).
func generate(t *testing.T, producers ...string) (string, error) {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Policy.Provenance = producers
	files, err := policy.Generate(cfg)
	if err != nil {
		return "", err
	}
	dir := t.TempDir()
	if err := policy.Write(dir, files); err != nil {
		t.Fatal(err)
	}
	return dir, nil
}

// TestSLSAGitHubGeneratorProvenance generates the policies for policy.provenance
// [slsa-github-generator] and [bvrelease, slsa-github-generator] and runs them, with the
// Kyverno CLI and policy-controller's tester, on images whose provenance is
// slsa-github-generator's container provenance (SLSA v0.2, signed by the reusable workflow's
// identity: sigstoretest issues it a certificate for generator_container_slsa3.yml@refs/tags/v2.1.0,
// which the generated pattern must match as it matches the real one) or bvrelease's own.
//
// [slsa-github-generator]: the generator's provenance is admitted by both; bvrelease's alone,
// a generator-shaped provenance signed by the release workflow instead of the generator's, one
// naming another repository, and none at all are refused. [bvrelease, slsa-github-generator]:
// policy-controller admits either provenance and refuses none; Kyverno cannot express "either"
// (each attestations entry is required and names one predicate type), so generation refuses it.
func TestSLSAGitHubGeneratorProvenance(t *testing.T) {
	kyverno := kyvernoBinary(t)
	tester := policyTester(t)
	tr := newReleaseTrust(t)
	f := pushFixtures(t, tr)
	host := f.repo.RegistryStr()
	byGenerator := generatorRelease(t, f.repo, tr, tr.Generator, repository)
	bySelf := generatorRelease(t, f.repo, tr, tr.Signer, repository)
	otherRepo := generatorRelease(t, f.repo, tr, tr.Generator, "evil/bitvault")
	none := generatorRelease(t, f.repo, tr, nil, "")

	only, err := generate(t, policy.SLSAGitHubGenerator)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := generate(t, policy.Bvrelease, policy.SLSAGitHubGenerator); err == nil || !strings.Contains(err.Error(), "cannot accept either") {
		t.Fatalf("generating for both producers: %v; want Kyverno's limitation explained", err)
	}
	both := t.TempDir()
	{
		// only the policy-controller policy, which can say "either"
		cfg, err := config.Load(filepath.Join("..", config.FileName))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Policy.Provenance = []string{policy.Bvrelease, policy.SLSAGitHubGenerator}
		data, err := policy.ClusterImagePolicy(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(both, "policy-controller"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(both, policy.ClusterImagePolicyFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	schema := crdSchema(t, "v1beta1")
	for _, dir := range []string{only, both} {
		cip := loadYAML(t, filepath.Join(dir, policy.ClusterImagePolicyFile))
		delete(cip, "apiVersion")
		delete(cip, "kind")
		delete(cip, "metadata")
		if errs := schemaErrors("ClusterImagePolicy", cip, schema); len(errs) > 0 {
			t.Fatalf("generated ClusterImagePolicy against the CRD schema:\n%s", strings.Join(errs, "\n"))
		}
	}

	kyvernoPolicy := testPolicy(t, t.TempDir(), policyOpts{
		source: filepath.Join(only, policy.VerifyImagesFile), images: host + "/bitvault/*",
		issuer: tr.Issuer, roots: tr.Roots, rekorURL: tr.RekorURL, rekorKey: tr.RekorKey,
	})
	root := trustRoot(t, t.TempDir(), tr, tr.RekorKey)
	cipOnly := testCIPFrom(t, filepath.Join(only, policy.ClusterImagePolicyFile), t.TempDir(), host, tr, "")
	cipBoth := testCIPFrom(t, filepath.Join(both, policy.ClusterImagePolicyFile), t.TempDir(), host, tr, "")

	for _, tc := range []struct {
		name  string
		image string
		// verdicts: Kyverno and policy-controller with [slsa-github-generator], policy-controller
		// with both; "" admits, anything else is in the refusal
		kyverno, cipOnly, cipBoth string
	}{
		{"generator provenance", byGenerator.Index.String(), "", "", ""},
		{"generator provenance on a platform manifest", byGenerator.Children[1].String(), "", "", ""},
		{"bvrelease provenance", f.released.Index.String(),
			"attestions not found for predicate type " + policy.GeneratorPredicateType, "for authority slsa-github-generator-provenance", ""},
		{"generator provenance signed by the release workflow", bySelf.Index.String(),
			"subject mismatch", "for authority slsa-github-generator-provenance", "for authority slsa-github-generator-provenance"},
		{"generator provenance of another repository", otherRepo.Index.String(),
			"attestation checks failed for " + otherRepo.Index.String(), "failed evaluating rego policy for type provenance", "failed evaluating rego policy for type provenance"},
		{"no provenance", none.Index.String(),
			"attestions not found for predicate type " + policy.GeneratorPredicateType, "for authority slsa-github-generator-provenance", "Failed to validate CIP level policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, r, out := kyvernoApply(t, kyverno, kyvernoPolicy, tc.image)
			var msgs []string
			for _, res := range r.Results {
				msgs = append(msgs, res.Result+": "+res.Message)
			}
			t.Logf("kyverno: exit %d, %+v\n%s", code, r.Summary, strings.Join(msgs, "\n"))
			if tc.kyverno == "" {
				if code != 0 || r.Summary.Fail != 0 || r.Summary.Error != 0 || r.Summary.Pass < 1 {
					t.Errorf("kyverno apply: exit %d, %+v; want it admitted:\n%s", code, r.Summary, out)
				}
			} else if code != 1 || r.Summary.Pass != 0 || r.Summary.Error != 0 || !strings.Contains(strings.Join(msgs, "\n"), tc.kyverno) {
				t.Errorf("kyverno apply: exit %d, %+v; want it refused with %q:\n%s", code, r.Summary, tc.kyverno, out)
			}
			for _, c := range []struct{ name, policy, want string }{{"[slsa-github-generator]", cipOnly, tc.cipOnly}, {"[bvrelease, slsa-github-generator]", cipBoth, tc.cipBoth}} {
				code, out := runTester(t, tester, c.policy, tc.image, root)
				switch {
				case c.want == "" && (code != 0 || !strings.Contains(out, "Verification was successful")):
					t.Errorf("policy-tester %s: exit %d; want it admitted:\n%s", c.name, code, out)
				case c.want != "" && (code != 1 || !strings.Contains(out, c.want)):
					t.Errorf("policy-tester %s: exit %d; want it refused with %q:\n%s", c.name, code, c.want, out)
				default:
					t.Logf("policy-tester %s: exit %d", c.name, code)
				}
			}
		})
	}
}
