package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/attest/sign"
)

// What slsa-github-generator's container generator (generator_container_slsa3.yml, v1.4 –
// v2.x) attaches to an image: SLSA provenance v0.2, signed keylessly by the reusable workflow
// itself (its identity is the workflow at a vX.Y.Z tag, issued through GitHub Actions' OIDC
// issuer), builder id that same workflow, invocation.configSource the calling repository.
const (
	GeneratorPredicateType  = "https://slsa.dev/provenance/v0.2"
	GeneratorBuildType      = "https://github.com/slsa-framework/slsa-github-generator/container@v1"
	GeneratorIdentityRegexp = `^https://github\.com/slsa-framework/slsa-github-generator/\.github/workflows/generator_container_slsa3\.yml@refs/tags/v[0-9]+\.[0-9]+\.[0-9]+$`
	GitHubIssuer            = "https://token.actions.githubusercontent.com"
)

var generatorIdentity = regexp.MustCompile(GeneratorIdentityRegexp)

// GeneratorProvenance checks that ref carries slsa-github-generator's container provenance:
// signed by the generator's workflow identity (under p's trust: trusted root or roots, with
// the identity replaced), builder id that workflow, build type the container generator's, and
// — when want.Repository is set — built from that repository (invocation.configSource.uri
// git+https://github.com/<repository>@<ref>, the ref checked when want.Ref is set).
func GeneratorProvenance(ctx context.Context, ref name.Digest, p sign.Policy, want Builder, opts ...remote.Option) (string, error) {
	gp := p
	gp.Identity, gp.IdentityRegexp, gp.Issuer = "", GeneratorIdentityRegexp, GitHubIssuer
	stmts, err := attestation.VerifyAttestations(ctx, ref, GeneratorPredicateType, gp, opts...)
	if err != nil {
		return "", fmt.Errorf("slsa-github-generator provenance (cosign --type slsaprovenance02) missing or not verified: %w", err)
	}
	var seen []string
	for _, st := range stmts {
		var s struct {
			Predicate struct {
				Builder struct {
					ID string `json:"id"`
				} `json:"builder"`
				BuildType  string `json:"buildType"`
				Invocation struct {
					ConfigSource struct {
						URI string `json:"uri"`
					} `json:"configSource"`
				} `json:"invocation"`
			} `json:"predicate"`
		}
		if err := json.Unmarshal(st, &s); err != nil {
			return "", fmt.Errorf("slsa-github-generator provenance: %w", err)
		}
		pr := s.Predicate
		uri := pr.Invocation.ConfigSource.URI
		repoOK := want.Repository == "" || strings.HasPrefix(uri, "git+https://github.com/"+want.Repository+"@")
		refOK := want.Ref == "" || strings.HasSuffix(uri, "@"+want.Ref)
		if generatorIdentity.MatchString(pr.Builder.ID) && pr.BuildType == GeneratorBuildType && repoOK && refOK {
			return pr.Builder.ID, nil
		}
		seen = append(seen, fmt.Sprintf("builder %s, build type %s, source %s", pr.Builder.ID, pr.BuildType, uri))
	}
	return "", fmt.Errorf("slsa-github-generator provenance says %s; want the container generator, %s", strings.Join(seen, "; "), want)
}
