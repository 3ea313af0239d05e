package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/bitvault/bitvault/attest/attestation"
)

// Authority names of the ClusterImagePolicy.
const (
	AuthoritySignature           = "release-signature"
	AuthorityAttestations        = "release-attestations"
	AuthorityBvreleaseProvenance = "bvrelease-provenance"
	AuthorityGeneratorProvenance = "slsa-github-generator-provenance"
)

// clusterImagePolicy is the sigstore policy-controller equivalent of verifyImages.
//
// policy-controller checks each authority on its own — one with attestations checks only
// attestations, one without only signatures — and, without a CIP-level policy, admits when any
// one passes. So every requirement is an authority (the image signature; the SBOM and scan
// attestations; each accepted provenance) and the CIP-level Rego policy requires the signature,
// the attestations and one of the provenance authorities. Rego rather than CUE: a CUE policy
// is unified with the attestation and an absent field leaves it incomplete, not failed, so a
// provenance without a builder id would pass; Rego's isCompliant is simply undefined.
func (t trust) clusterImagePolicy() ([]byte, error) {
	release := t.cipKeyless()
	ctlog := m{"url": t.rekor}
	authorities := l{
		m{"name": AuthoritySignature, "keyless": release, "ctlog": ctlog},
	}
	var atts l
	for _, a := range releaseAttestations {
		// no policy: an attestation of the predicate type, signed by the identity, is the requirement
		atts = append(atts, m{"name": a.name, "predicateType": a.predicateType})
	}
	authorities = append(authorities, m{"name": AuthorityAttestations, "keyless": release, "ctlog": ctlog, "attestations": atts})

	var provenance []string // the CIP-level alternatives
	desc := []string{
		"sigstore policy-controller ClusterImagePolicy (policy.sigstore.dev/v1beta1; checked by policies/policycontroller_test.go with policy-controller's own tester, tools/policy-controller): the same requirements as verify-images.yaml for " + t.registry + "/** images, in namespaces labelled policy.sigstore.dev/include=true. Authorities:",
		"",
		"- " + AuthoritySignature + ": the image signed keylessly by " + t.identityText() + ", issuer " + t.issuer + ", certificate from " + t.fulcio + ", logged in " + t.rekor + ";",
		"- " + AuthorityAttestations + ": SPDX, CycloneDX and vulnerability-scan attestations signed by the same identity;",
	}
	if t.has(Bvrelease) {
		checks := []string{
			"input.predicateType == " + regoString(attestation.SLSAProvenanceV1),
			t.regoMatch("input.predicate.runDetails.builder.id"),
		}
		text := "whose runDetails.builder.id is " + t.identityText()
		if t.repository != "" {
			checks = append(checks, "input.predicate.buildDefinition.externalParameters.repository == "+regoString(t.repository))
			text += " and source repository " + t.repository
		}
		authorities = append(authorities, m{
			"name": AuthorityBvreleaseProvenance, "keyless": release, "ctlog": ctlog,
			"attestations": l{m{
				"name": "provenance", "predicateType": attestation.SLSAProvenanceV1,
				"policy": m{"type": "rego", "data": rego(checks...)},
			}},
		})
		provenance = append(provenance, AuthorityBvreleaseProvenance)
		desc = append(desc, "- "+AuthorityBvreleaseProvenance+": a SLSA provenance v1 signed by the same identity, "+text+";")
	}
	if t.has(SLSAGitHubGenerator) {
		checks := []string{
			"input.predicateType == " + regoString(GeneratorPredicateType),
			"regex.match(" + regoString(GeneratorIdentityRegexp) + ", input.predicate.builder.id)",
			"input.predicate.buildType == " + regoString(GeneratorBuildType),
		}
		text := "builder.id that workflow"
		if t.repository != "" {
			checks = append(checks, "startswith(input.predicate.invocation.configSource.uri, "+regoString("git+https://github.com/"+t.repository+"@")+")")
			text += ", source repository " + t.repository
		}
		if t.workflow != "" {
			checks = append(checks, "input.predicate.invocation.configSource.entryPoint == "+regoString(t.workflow))
			text += " at " + t.workflow
		}
		authorities = append(authorities, m{
			"name": AuthorityGeneratorProvenance,
			"keyless": m{"url": PublicFulcio, "identities": l{m{
				"issuer": GitHubIssuer, "subjectRegExp": GeneratorIdentityRegexp,
			}}},
			"ctlog": m{"url": PublicRekor},
			"attestations": l{m{
				"name": "provenance", "predicateType": GeneratorPredicateType,
				"policy": m{"type": "rego", "data": rego(checks...)},
			}},
		})
		provenance = append(provenance, AuthorityGeneratorProvenance)
		desc = append(desc, "- "+AuthorityGeneratorProvenance+": slsa-github-generator's container provenance ("+GeneratorPredicateType+") signed keylessly by generator_container_slsa3.yml at a vX.Y.Z tag (Sigstore's public Fulcio and Rekor), "+text+";")
	}
	desc = append(desc,
		"",
		"The CIP-level policy requires "+AuthoritySignature+", "+AuthorityAttestations+" and "+strings.Join(provenance, " or ")+". policy-controller resolves a tag to its digest and checks that digest.",
	)

	var cip bytes.Buffer
	cip.WriteString("package sigstore\n\ndefault isCompliant = false\n\nisCompliant {\n")
	fmt.Fprintf(&cip, "  input.authorityMatches[%s]\n", regoString(AuthoritySignature))
	fmt.Fprintf(&cip, "  input.authorityMatches[%s]\n", regoString(AuthorityAttestations))
	cip.WriteString("  provenance\n}\n")
	for _, p := range provenance {
		fmt.Fprintf(&cip, "\nprovenance {\n  input.authorityMatches[%s]\n}\n", regoString(p))
	}

	doc := m{
		"apiVersion": "policy.sigstore.dev/v1beta1",
		"kind":       "ClusterImagePolicy",
		"metadata":   m{"name": t.project + "-release"},
		"spec": m{
			"images":      l{m{"glob": t.registry + "/**"}},
			"mode":        "enforce",
			"authorities": authorities,
			"policy":      m{"type": "rego", "data": cip.String()},
		},
	}
	return t.encode(desc, doc)
}

// cipKeyless is the keyless authority of the signing identity.
func (t trust) cipKeyless() m {
	id := m{"issuer": t.issuer}
	if t.identity != "" {
		id["subject"] = t.identity
	} else {
		id["subjectRegExp"] = t.idRegexp
	}
	return m{"url": t.fulcio, "identities": l{id}}
}

// regoMatch is the Rego check that field is the signing identity.
func (t trust) regoMatch(field string) string {
	if t.identity != "" {
		return field + " == " + regoString(t.identity)
	}
	return "regex.match(" + regoString(t.idRegexp) + ", " + field + ")"
}

// rego is a policy module (Rego v0, what cosign's evaluator parses) whose isCompliant holds when
// every check does.
func rego(checks ...string) string {
	var b strings.Builder
	b.WriteString("package sigstore\n\ndefault isCompliant = false\n\nisCompliant {\n")
	for _, c := range checks {
		b.WriteString("  " + c + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// regoString is s as a Rego (JSON) string literal.
func regoString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
