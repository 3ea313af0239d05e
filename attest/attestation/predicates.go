package attestation

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	cosignatt "github.com/sigstore/cosign/v2/pkg/cosign/attestation"
)

// Predicate types besides SLSA provenance, exactly the URIs `cosign attest` writes and
// `cosign verify-attestation --type` looks for (cosign v2.6.5 options.PredicateTypeMap; a test
// keeps them equal). CycloneDX is declared with the statement.
const (
	// SPDX is the predicate type of an SPDX SBOM (--type spdx and --type spdxjson).
	SPDX = "https://spdx.dev/Document"
	// Vuln is cosign's vulnerability scan predicate (--type vuln).
	Vuln = cosignatt.CosignVulnProvenanceV01
)

// CosignTypes maps each predicate type bvrelease attaches to the name `cosign attest --type` /
// `cosign verify-attestation --type` gives it.
var CosignTypes = map[string]string{
	SLSAProvenanceV1: "slsaprovenance1",
	SPDX:             "spdxjson",
	CycloneDX:        "cyclonedx",
	Vuln:             "vuln",
}

// CosignType returns the `--type` name of predicateType, or predicateType itself (cosign also
// takes a URI) when it has none.
func CosignType(predicateType string) string {
	if n, ok := CosignTypes[predicateType]; ok {
		return n
	}
	return predicateType
}

// SBOMStatement builds the in-toto statement of an SBOM document (SPDX 2.3 JSON for SPDX,
// CycloneDX JSON for CycloneDX), embedded as the predicate the way `cosign attest --type spdxjson`
// and `--type cyclonedx` embed it: the document's JSON object, unchanged in content. A document
// that is not of the predicate type's format is refused.
func SBOMStatement(subjectName string, digest v1.Hash, predicateType string, doc []byte) ([]byte, error) {
	var probe struct {
		SPDXVersion string `json:"spdxVersion"`
		BOMFormat   string `json:"bomFormat"`
	}
	if err := json.Unmarshal(doc, &probe); err != nil {
		return nil, fmt.Errorf("SBOM predicate: not a JSON object: %w", err)
	}
	switch predicateType {
	case SPDX:
		if probe.SPDXVersion == "" {
			return nil, errors.New("SBOM predicate: not an SPDX JSON document (no spdxVersion)")
		}
	case CycloneDX:
		if probe.BOMFormat != "CycloneDX" {
			return nil, fmt.Errorf("SBOM predicate: not a CycloneDX JSON document (bomFormat %q)", probe.BOMFormat)
		}
	default:
		return nil, fmt.Errorf("SBOM predicate: predicate type %q is neither %s nor %s", predicateType, SPDX, CycloneDX)
	}
	return Statement(subjectName, digest, predicateType, json.RawMessage(doc))
}

// VulnScan is what a vulnerability predicate says about one scan.
type VulnScan struct {
	// Report is the scanner's JSON report (trivy's), embedded verbatim as scanner.result.
	Report []byte
	// ScannerURI and ScannerVersion name the scanner ("pkg:github/aquasecurity/trivy@v0.74.0").
	ScannerURI, ScannerVersion string
	// DBURI and DBVersion name the vulnerability database the scan used.
	DBURI, DBVersion string
	// InvocationURI, EventID and BuilderID say which run produced the scan.
	InvocationURI, EventID, BuilderID string
	// StartedOn and FinishedOn are when the scan ran. For Attach to find the same attestation
	// again on a re-run they must come from the scan's record, not the clock.
	StartedOn, FinishedOn time.Time
}

// Predicate returns cosign's vulnerability scan predicate (cosign's own
// attestation.CosignVulnPredicate): {invocation{parameters, uri, event_id, builder.id},
// scanner{uri, version, db{uri, version}, result}, metadata{scanStartedOn, scanFinishedOn}}.
func (v VulnScan) Predicate() (cosignatt.CosignVulnPredicate, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(v.Report, &probe); err != nil {
		return cosignatt.CosignVulnPredicate{}, fmt.Errorf("vulnerability predicate: the scan report is not a JSON object: %w", err)
	}
	if v.ScannerURI == "" {
		return cosignatt.CosignVulnPredicate{}, errors.New("vulnerability predicate: no scanner uri")
	}
	return cosignatt.CosignVulnPredicate{
		Invocation: cosignatt.Invocation{URI: v.InvocationURI, EventID: v.EventID, BuilderID: v.BuilderID},
		Scanner: cosignatt.Scanner{
			URI: v.ScannerURI, Version: v.ScannerVersion,
			DB:     cosignatt.DB{URI: v.DBURI, Version: v.DBVersion},
			Result: json.RawMessage(v.Report),
		},
		Metadata: cosignatt.Metadata{ScanStartedOn: v.StartedOn.UTC(), ScanFinishedOn: v.FinishedOn.UTC()},
	}, nil
}

// VulnStatement builds the in-toto statement of a vulnerability scan of digest.
func VulnStatement(subjectName string, digest v1.Hash, v VulnScan) ([]byte, error) {
	p, err := v.Predicate()
	if err != nil {
		return nil, err
	}
	return Statement(subjectName, digest, Vuln, p)
}

// PredicateOf returns the predicate type and the predicate of an in-toto statement (for
// example one VerifyAttestations returned).
func PredicateOf(statement []byte) (string, json.RawMessage, error) {
	st, err := parseStatement(statement)
	if err != nil {
		return "", nil, err
	}
	return st.PredicateType, st.Predicate, nil
}

// VulnOf decodes the vulnerability predicate of a statement of type Vuln and returns it with
// the scanner's report (scanner.result) as JSON.
func VulnOf(statement []byte) (*cosignatt.CosignVulnPredicate, []byte, error) {
	typ, raw, err := PredicateOf(statement)
	if err != nil {
		return nil, nil, err
	}
	if typ != Vuln {
		return nil, nil, fmt.Errorf("predicate type %q, want %q", typ, Vuln)
	}
	var p struct {
		cosignatt.CosignVulnPredicate
		Scanner struct {
			cosignatt.Scanner
			Result json.RawMessage `json:"result"`
		} `json:"scanner"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, nil, fmt.Errorf("vulnerability predicate: %w", err)
	}
	if len(p.Scanner.Result) == 0 || string(p.Scanner.Result) == "null" {
		return nil, nil, errors.New("vulnerability predicate without scanner.result (the scan report)")
	}
	out := p.CosignVulnPredicate
	out.Scanner = p.Scanner.Scanner
	out.Scanner.Result = p.Scanner.Result
	return &out, p.Scanner.Result, nil
}
