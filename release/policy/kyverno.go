package policy

import (
	"fmt"
	"strings"

	"github.com/bitvault/bitvault/attest/attestation"
)

// verifyImages is the Kyverno ClusterPolicy verifying release images. Kyverno quirks it
// respects (checked by policies/admission_test.go with the Kyverno CLI v1.19.1):
//   - a keyless rekor needs a url, even one never contacted;
//   - every attestations entry needs its own attestors: without them Kyverno takes an
//     attestation signed by any Sigstore identity, its SCT unchecked;
//   - attestation conditions see the predicate as the root of the context
//     (runDetails.builder.id, not predicate.runDetails.builder.id);
//   - subjectRegExp (v1.19: cpol/cosign matchCertificateData) takes a Go regular expression; in a
//     condition the same expression goes through JMESPath's regex_match.
//
// Kyverno requires every attestations entry of a rule, and each entry names one predicate
// type: it cannot accept "either this provenance or that one" when the two producers write
// different predicate types (bvrelease v1, slsa-github-generator v0.2). With both producers
// listed the ClusterPolicy cannot be generated; the policy-controller policy can (its
// CIP-level policy ORs authorities).
func (t trust) verifyImages() ([]byte, error) {
	if len(t.producers) > 1 {
		return nil, t.configError("policy.provenance", fmt.Sprintf("lists %s, but a Kyverno ClusterPolicy requires every attestations entry of a rule and each names one predicate type, so it cannot accept either %s's provenance (%s) or %s's (%s); list one producer",
			strings.Join(t.producers, " and "), Bvrelease, attestation.SLSAProvenanceV1, SLSAGitHubGenerator, GeneratorPredicateType))
	}
	release := t.kyvernoKeyless()
	atts := l{}
	var provenanceText string
	if t.has(Bvrelease) {
		conds := l{t.kyvernoMatch("runDetails.builder.id")}
		provenanceText = "- it carries a SLSA provenance v1 (release/attest.Provenance) signed by the same identity, whose runDetails.builder.id is " + t.identityText()
		if t.repository != "" {
			conds = append(conds, m{"key": "{{ buildDefinition.externalParameters.repository }}", "operator": "Equals", "value": t.repository})
			provenanceText += " and buildDefinition.externalParameters.repository " + t.repository
		}
		provenanceText += ";"
		atts = append(atts, m{
			"type":       attestation.SLSAProvenanceV1,
			"attestors":  attestors(release),
			"conditions": l{m{"all": conds}},
		})
	}
	if t.has(SLSAGitHubGenerator) {
		conds := l{
			m{"key": fmt.Sprintf("{{ regex_match('%s', builder.id) }}", GeneratorIdentityRegexp), "operator": "Equals", "value": true},
			m{"key": "{{ buildType }}", "operator": "Equals", "value": GeneratorBuildType},
		}
		provenanceText = "- it carries slsa-github-generator's container provenance (" + GeneratorPredicateType + ") signed keylessly by generator_container_slsa3.yml at a vX.Y.Z tag (Sigstore's public Fulcio and Rekor), its builder.id that workflow, its buildType " + GeneratorBuildType
		if t.repository != "" {
			conds = append(conds, m{"key": "{{ invocation.configSource.uri }}", "operator": "Equals", "value": "git+https://github.com/" + t.repository + "@*"})
			provenanceText += ", its invocation.configSource the repository " + t.repository
		}
		if t.workflow != "" {
			conds = append(conds, m{"key": "{{ invocation.configSource.entryPoint }}", "operator": "Equals", "value": t.workflow})
			provenanceText += " at the workflow " + t.workflow
		}
		provenanceText += ";"
		atts = append(atts, m{
			"type": GeneratorPredicateType,
			"attestors": attestors(m{
				"issuer": GitHubIssuer, "subjectRegExp": GeneratorIdentityRegexp,
				"rekor": m{"url": PublicRekor},
			}),
			"conditions": l{m{"all": conds}},
		})
	}
	for _, a := range releaseAttestations {
		atts = append(atts, m{"type": a.predicateType, "attestors": attestors(release)})
	}

	name := t.project + "-verify-images"
	rule := "verify-" + t.project + "-release"
	images := t.registry + "/*"
	doc := m{
		"apiVersion": "kyverno.io/v1",
		"kind":       "ClusterPolicy",
		"metadata": m{
			"name": name,
			"annotations": m{
				"policies.kyverno.io/title":    "Verify " + t.project + " release images",
				"policies.kyverno.io/category": "Supply Chain Security",
				"policies.kyverno.io/severity": "high",
				"policies.kyverno.io/subject":  "Pod",
				"policies.kyverno.io/description": images + " images must be signed keylessly by " + t.identityText() +
					" (issuer " + t.issuer + ", logged in " + t.rekor + "), carry SPDX, CycloneDX and vulnerability-scan attestations by the same identity and a SLSA provenance from " +
					strings.Join(t.producers, " or ") + ", and run by digest.",
			},
		},
		"spec": m{
			"background":            false,
			"webhookTimeoutSeconds": 30,
			"rules": l{m{
				"name":  rule,
				"match": m{"any": l{m{"resources": m{"kinds": l{"Pod"}}}}},
				"verifyImages": l{m{
					"type":            "Cosign",
					"imageReferences": l{images},
					"failureAction":   "Enforce",
					"mutateDigest":    true,
					"verifyDigest":    true,
					"required":        true,
					"attestors":       attestors(release),
					"attestations":    atts,
				}},
			}},
		},
	}
	desc := []string{
		"Kyverno ClusterPolicy (Kyverno >= 1.13; tested with the pinned Kyverno CLI, tools/kyverno, by policies/admission_test.go): a Pod — and, through Kyverno's auto-generated rules, a Deployment, StatefulSet, Job … — may run a " + images + " image only when",
		"",
		"- the image is signed keylessly by " + t.identityText() + ", issuer " + t.issuer + ", the signature logged in " + t.rekor + " (and its certificate's SCT checked against Sigstore's public CT log: Kyverno's default without ctlog settings);",
		"- it carries SPDX (" + attestation.SPDX + "), CycloneDX (" + attestation.CycloneDX + ") and vulnerability-scan (" + attestation.Vuln + ") attestations signed by the same identity, on the very digest admitted (an index's attestations are its own, not its platform manifests');",
		provenanceText,
		"- it is referenced by digest after admission: a tag is resolved and pinned (mutateDigest), a digest reference verified as given (verifyDigest).",
		"",
		"A signature is checked for the digest that will run, so a tag moved to another image, or a digest of another image, is refused unless that image is itself signed and attested.",
	}
	return t.encode(desc, doc)
}

// kyvernoKeyless is the keyless attestor of the signing identity.
func (t trust) kyvernoKeyless() m {
	k := m{"issuer": t.issuer, "rekor": m{"url": t.rekor}}
	if t.identity != "" {
		k["subject"] = t.identity
	} else {
		k["subjectRegExp"] = t.idRegexp
	}
	return k
}

// kyvernoMatch is the condition that field (of the predicate) is the signing identity: equal to
// it, or matching its regular expression.
func (t trust) kyvernoMatch(field string) m {
	if t.identity != "" {
		return m{"key": "{{ " + field + " }}", "operator": "Equals", "value": t.identity}
	}
	return m{"key": fmt.Sprintf("{{ regex_match('%s', %s) }}", t.idRegexp, field), "operator": "Equals", "value": true}
}

// attestors is one attestor set requiring the keyless entry k.
func attestors(k m) l {
	return l{m{"count": 1, "entries": l{m{"keyless": k}}}}
}
