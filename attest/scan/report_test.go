package scan

import (
	"strings"
	"testing"
	"time"
)

// TestParseReport: a report read back (as from a vulnerability attestation) gates like the
// scan did: a HIGH with a fix blocks unless allow-listed, one without a fix does not.
func TestParseReport(t *testing.T) {
	digest := "sha256:" + strings.Repeat("c", 64)
	report := func(fixed string) []byte {
		return []byte(`{"SchemaVersion":2,"ArtifactName":"bitvaultd@` + digest + `","Results":[{"Target":"app/server","Type":"gobinary","Vulnerabilities":[` +
			`{"VulnerabilityID":"CVE-2022-32149","VendorIDs":["GO-2022-1059"],"PkgName":"golang.org/x/text","InstalledVersion":"v0.3.7","FixedVersion":"` + fixed + `","Severity":"HIGH"}]}]}`)
	}
	allow := &AllowList{Entries: []AllowEntry{{ID: "GO-2022-1059", Reason: "r", Expires: date(2099, 1, 1)}}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name                     string
		raw                      []byte
		allow                    *AllowList
		blocking, allowed, nofix int
		err                      bool
	}{
		{"fixable HIGH blocks", report("v0.3.8"), nil, 1, 0, 0, false},
		{"allow-listed", report("v0.3.8"), allow, 0, 1, 0, false},
		{"no fix yet", report(""), nil, 0, 0, 1, false},
		{"not a trivy report", []byte(`{"SchemaVersion":1}`), nil, 0, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseReport(tc.raw, "bitvaultd", "linux/amd64")
			if tc.err {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Digest != digest || r.Name != "bitvaultd" || r.Platform != "linux/amd64" || len(r.Findings) != 1 || r.Findings[0].Fixed != strings.TrimPrefix(r.Findings[0].Fixed, "v") {
				t.Errorf("report %+v", r)
			}
			v := Gate([]*Report{r}, tc.allow, now)
			if len(v.Blocking) != tc.blocking || len(v.Allowed) != tc.allowed || len(v.NoFix) != tc.nofix {
				t.Errorf("verdict %+v", v)
			}
			if tc.blocking > 0 && !strings.Contains(v.Blocking[0].Line(), "bitvaultd linux/amd64: golang.org/x/text 0.3.7 → 0.3.8 CVE-2022-32149 (HIGH)") {
				t.Errorf("line %s", v.Blocking[0].Line())
			}
		})
	}
}
