package scan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadAllowList(t *testing.T) {
	tests := []struct {
		name    string
		file    string // "" with missing = true: no file
		missing bool
		want    []AllowEntry // ID, Reason, Expires, Package, Image, Line compared
		wantErr []string     // every line must appear; nil = no error
	}{
		{name: "missing file is an empty list", missing: true},
		{name: "empty file", file: ""},
		{name: "only comments", file: "# nothing accepted\n"},
		{name: "empty entries", file: "entries:\n"},
		{name: "valid", file: `# accepted risks, reviewed quarterly
entries:
  - id: CVE-2022-32149
    reason: ParseAcceptLanguage never sees untrusted input
    expires: 2026-12-31
  - id: GO-2023-0001
    reason: "no fix upstream yet"
    expires: "2027-01-15"
    package: golang.org/x/net
    image: bitvault-worker
`, want: []AllowEntry{
			{ID: "CVE-2022-32149", Reason: "ParseAcceptLanguage never sees untrusted input", Expires: date(2026, 12, 31), Line: 3},
			{ID: "GO-2023-0001", Reason: "no fix upstream yet", Expires: date(2027, 1, 15), Package: "golang.org/x/net", Image: "bitvault-worker", Line: 6},
		}},
		{name: "missing reason", file: "entries:\n  - id: CVE-2022-32149\n    expires: 2026-12-31\n",
			wantErr: []string{"vuln-allow.yaml:2: reason: missing for CVE-2022-32149; say why shipping it is acceptable until it expires"}},
		{name: "empty reason", file: "entries:\n  - id: CVE-2022-32149\n    reason: \"  \"\n    expires: 2026-12-31\n",
			wantErr: []string{"vuln-allow.yaml:2: reason: missing for CVE-2022-32149"}},
		{name: "bad date", file: "entries:\n  - id: CVE-2022-32149\n    reason: r\n    expires: 31/12/2026\n",
			wantErr: []string{`vuln-allow.yaml:4: expires: "31/12/2026" is not a date; write YYYY-MM-DD`}},
		{name: "impossible date", file: "entries:\n  - id: CVE-2022-32149\n    reason: r\n    expires: 2026-02-30\n",
			wantErr: []string{`vuln-allow.yaml:4: expires: "2026-02-30" is not a date`}},
		{name: "missing expires and id", file: "entries:\n  - reason: r\n",
			wantErr: []string{"vuln-allow.yaml:2: id: missing; name the finding's ID", "vuln-allow.yaml:2: expires: missing for entry; add expires: YYYY-MM-DD"}},
		{name: "every bad entry reported", file: "entries:\n  - id: A\n    reason: r\n    expires: 2026-12-31\n  - id: B\n    expires: 2026-13-01\n  - id: C\n    reason: r\n    expire: 2026-12-31\n",
			wantErr: []string{"vuln-allow.yaml:5: reason: missing for B", `vuln-allow.yaml:6: expires: "2026-13-01" is not a date`,
				"vuln-allow.yaml:9: expire: unknown field; known fields here: expires, id, image, package, reason", "vuln-allow.yaml:7: expires: missing for C"}},
		{name: "unknown top-level field", file: "allow:\n  - id: A\n", wantErr: []string{"vuln-allow.yaml:1: allow: unknown field; the only top-level field is entries"}},
		{name: "entries not a list", file: "entries: CVE-2022-32149\n", wantErr: []string{"vuln-allow.yaml:1: entries: want a list"}},
		{name: "top level a list", file: "- id: A\n", wantErr: []string{"vuln-allow.yaml:1: want a mapping with 'entries:'"}},
		{name: "not YAML", file: "entries: [\n", wantErr: []string{"vuln-allow.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vuln-allow.yaml")
			if !tc.missing {
				if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			al, err := LoadAllowList(path)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), filepath.Dir(path)+"/"+w) && !strings.Contains(err.Error(), w) {
						t.Errorf("error\n%v\nwant it to contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(al.Entries) != len(tc.want) {
				t.Fatalf("%d entries, want %d: %+v", len(al.Entries), len(tc.want), al.Entries)
			}
			for i, w := range tc.want {
				g := al.Entries[i]
				if g.ID != w.ID || g.Reason != w.Reason || !g.Expires.Equal(w.Expires) || g.Package != w.Package || g.Image != w.Image || g.Line != w.Line || g.File != path {
					t.Errorf("entry %d\n got %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestGate(t *testing.T) {
	now := time.Date(2026, 6, 15, 23, 59, 0, 0, time.UTC)
	f := func(pkg, inst, fixed, id, sev, target string) Finding {
		return Finding{ID: id, Package: pkg, Installed: inst, Fixed: fixed, Severity: sev, Target: target}
	}
	arm := &Report{Name: "bitvaultd", Platform: "linux/arm64", Findings: []Finding{
		f("golang.org/x/text", "0.3.7", "0.3.8", "CVE-2022-32149", "HIGH", "app/bitvaultd"),
		f("golang.org/x/text", "0.3.7", "0.3.8", "CVE-2022-32149", "HIGH", "app/healthcheck"), // same module, second binary
		f("golang.org/x/net", "0.1.0", "0.7.0", "CVE-2022-41723", "MEDIUM", "app/bitvaultd"),
		f("libc6", "2.36-9", "", "CVE-2019-1010022", "CRITICAL", "debian 12.11"),
	}}
	web := &Report{Name: "bitvault-web", Platform: "linux/amd64", Findings: []Finding{
		f("cross-spawn", "7.0.3", "7.0.5, 6.0.6", "CVE-2024-21538", "CRITICAL", "app/node_modules/cross-spawn/package.json"),
	}}
	entry := func(id, pkg, image string, expires time.Time) AllowEntry {
		return AllowEntry{ID: id, Reason: "r", Expires: expires, Package: pkg, Image: image, File: ".bvrelease/vuln-allow.yaml", Line: 2}
	}
	tests := []struct {
		name                                 string
		reports                              []*Report
		allow                                *AllowList
		wantBlock, wantAllow, wantExp, noFix int
		wantErr                              string // exact Err() text; "" = nil
	}{
		{name: "fixable HIGH and CRITICAL block; MEDIUM and no-fix do not", reports: []*Report{arm, web}, wantBlock: 3, noFix: 1,
			wantErr: "vulnerability gate: 3 fixable CRITICAL/HIGH findings\n" +
				"  bitvault-web linux/amd64: cross-spawn 7.0.3 → 7.0.5, 6.0.6 CVE-2024-21538 (CRITICAL)\n" +
				"  bitvaultd linux/arm64: golang.org/x/text 0.3.7 → 0.3.8 CVE-2022-32149 (HIGH)\n" +
				"  fix: upgrade each package to the fixed version and rebuild; to ship it anyway for a while, add an entry (id, reason, expires: YYYY-MM-DD) to .bvrelease/vuln-allow.yaml"},
		{name: "nil allow list and nil report", reports: []*Report{nil, web}, wantBlock: 1,
			wantErr: "vulnerability gate: 1 fixable CRITICAL/HIGH finding\n" +
				"  bitvault-web linux/amd64: cross-spawn 7.0.3 → 7.0.5, 6.0.6 CVE-2024-21538 (CRITICAL)\n" +
				"  fix: upgrade each package to the fixed version and rebuild; to ship it anyway for a while, add an entry (id, reason, expires: YYYY-MM-DD) to .bvrelease/vuln-allow.yaml"},
		{name: "entry valid through its expiry day", reports: []*Report{web},
			allow: &AllowList{Entries: []AllowEntry{entry("CVE-2024-21538", "cross-spawn", "bitvault-web", date(2026, 6, 15))}}, wantAllow: 1},
		{name: "entry expired the day after", reports: []*Report{web},
			allow: &AllowList{Entries: []AllowEntry{entry("CVE-2024-21538", "", "", date(2026, 6, 14))}}, wantBlock: 1, wantExp: 1,
			wantErr: "vulnerability gate: 1 fixable CRITICAL/HIGH finding and 1 expired allow-list entry\n" +
				"  bitvault-web linux/amd64: cross-spawn 7.0.3 → 7.0.5, 6.0.6 CVE-2024-21538 (CRITICAL)\n" +
				"  fix: upgrade each package to the fixed version and rebuild; to ship it anyway for a while, add an entry (id, reason, expires: YYYY-MM-DD) to .bvrelease/vuln-allow.yaml\n" +
				"  .bvrelease/vuln-allow.yaml:2: allow-list entry CVE-2024-21538 expired on 2026-06-14; fix the finding and delete the entry, or review the reason and set a later expires"},
		{name: "expired unused entry alone fails", reports: nil,
			allow: &AllowList{Entries: []AllowEntry{entry("CVE-2020-0001", "zlib1g", "", date(2025, 1, 1))}}, wantExp: 1,
			wantErr: "vulnerability gate: 1 expired allow-list entry\n" +
				"  .bvrelease/vuln-allow.yaml:2: allow-list entry CVE-2020-0001 (package zlib1g) expired on 2025-01-01; fix the finding and delete the entry, or review the reason and set a later expires"},
		{name: "package scope must match", reports: []*Report{web},
			allow: &AllowList{Entries: []AllowEntry{entry("CVE-2024-21538", "other", "", date(2027, 1, 1))}}, wantBlock: 1,
			wantErr: "vulnerability gate: 1 fixable CRITICAL/HIGH finding\n" +
				"  bitvault-web linux/amd64: cross-spawn 7.0.3 → 7.0.5, 6.0.6 CVE-2024-21538 (CRITICAL)\n" +
				"  fix: upgrade each package to the fixed version and rebuild; to ship it anyway for a while, add an entry (id, reason, expires: YYYY-MM-DD) to .bvrelease/vuln-allow.yaml"},
		{name: "no-fix finding can be acknowledged", reports: []*Report{arm},
			allow:     &AllowList{Entries: []AllowEntry{entry("cve-2019-1010022", "", "bitvaultd", date(2027, 1, 1)), entry("CVE-2022-32149", "", "", date(2027, 1, 1))}},
			wantAllow: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Gate(tc.reports, tc.allow, now)
			if len(v.Blocking) != tc.wantBlock || len(v.Allowed) != tc.wantAllow || len(v.Expired) != tc.wantExp || len(v.NoFix) != tc.noFix {
				t.Errorf("blocking %d allowed %d expired %d nofix %d, want %d %d %d %d",
					len(v.Blocking), len(v.Allowed), len(v.Expired), len(v.NoFix), tc.wantBlock, tc.wantAllow, tc.wantExp, tc.noFix)
			}
			err := v.Err()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Err() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Errorf("Err() =\n%v\nwant\n%s", err, tc.wantErr)
			}
		})
	}
}

func TestTrimV(t *testing.T) {
	for in, want := range map[string]string{"v0.3.7": "0.3.7", "0.3.8": "0.3.8", "v0.3.8, v0.4.1": "0.3.8, 0.4.1", "": "", "vendor": "vendor"} {
		if got := trimV(in); got != want {
			t.Errorf("trimV(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRenameArtifact(t *testing.T) {
	raw := []byte(`{"ArtifactName": "/tmp/bvscan-1/oci", "Results": [{"Target": "/tmp/bvscan-1/oci (debian 12.11)"}, {"Target": "app/hello"}]}`)
	want := `{"ArtifactName": "bitvaultd@sha256:ab", "Results": [{"Target": "bitvaultd@sha256:ab (debian 12.11)"}, {"Target": "app/hello"}]}`
	if got := string(renameArtifact(raw, "/tmp/bvscan-1/oci", "bitvaultd@sha256:ab")); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
