package scan

import (
	"encoding/json"
	"strings"
)

// ParseReport reads a trivy JSON report — Report.Raw as Scan keeps it, or the scanner.result
// of a vulnerability attestation — into a Report of image name on platform, for Gate. Digest
// is the manifest digest the report's ArtifactName ("<name>@sha256:…") names, when it names
// one; SARIF and DBUpdatedAt stay empty.
func ParseReport(raw []byte, name, platform string) (*Report, error) {
	fs, err := parseReport(raw, name, platform)
	if err != nil {
		return nil, err
	}
	var meta struct{ ArtifactName string }
	_ = json.Unmarshal(raw, &meta)
	r := &Report{Name: name, Platform: platform, Findings: fs, Raw: raw}
	if i := strings.LastIndex(meta.ArtifactName, "@sha256:"); i >= 0 {
		r.Digest = meta.ArtifactName[i+1:]
	}
	return r, nil
}
