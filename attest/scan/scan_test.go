package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/mod/modfile"

	"github.com/bitvault/bitvault/internal/testsupport/imagetest"
)

// osvRecord is GO-2022-1059 as the Go vulnerability database publishes it, plus the CVSS v3
// vector NVD gives CVE-2022-32149 (without a severity trivy reports UNKNOWN).
const osvRecord = `{
  "schema_version": "1.3.1",
  "id": "GO-2022-1059",
  "modified": "2023-06-12T18:45:41Z",
  "published": "2022-10-11T17:17:42Z",
  "aliases": ["CVE-2022-32149", "GHSA-69ch-w2m2-3vjp"],
  "summary": "Denial of service via crafted Accept-Language header in golang.org/x/text/language",
  "details": "An attacker may cause a denial of service by crafting an Accept-Language header which ParseAcceptLanguage will take significant time to parse.",
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
  "affected": [{
    "package": {"name": "golang.org/x/text", "ecosystem": "Go"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.3.8"}]}],
    "ecosystem_specific": {"imports": [{"path": "golang.org/x/text/language", "symbols": ["ParseAcceptLanguage"]}]}
  }],
  "references": [{"type": "FIX", "url": "https://go.dev/cl/442235"}],
  "database_specific": {"url": "https://pkg.go.dev/vuln/GO-2022-1059"}
}`

// helloProgram really uses the vulnerable package, so the module is in the binary's build info.
const helloProgram = `package main

import (
	"fmt"
	"os"

	"golang.org/x/text/language"
)

func main() {
	tags, _, err := language.ParseAcceptLanguage(os.Getenv("LANG_HEADER") + ",en;q=0.5")
	fmt.Println(tags, err)
}
`

// requireTools returns the trivy and trivydb binaries, or skips (fails with
// BITVAULT_REQUIRE_TOOLS=1) when they are missing.
func requireTools(t *testing.T) (trivy string) {
	t.Helper()
	trivy, err1 := FindTrivy()
	_, err2 := FindTrivyDB()
	if err1 == nil && err2 == nil {
		return trivy
	}
	var missing []string
	for _, err := range []error{err1, err2} {
		if err != nil {
			missing = append(missing, err.Error())
		}
	}
	msg := "needs the pinned tools (scripts/tools.sh trivy trivydb): " + strings.Join(missing, "; ")
	if os.Getenv("BITVAULT_REQUIRE_TOOLS") == "1" {
		t.Fatal("BITVAULT_REQUIRE_TOOLS=1 but " + msg)
	}
	t.Skip("skipping: " + msg)
	return ""
}

// goBinary compiles helloProgram for linux/amd64 against golang.org/x/text at version.
func goBinary(t *testing.T, version string) []byte {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("skipping: no go command: %v", err)
	}
	dir := t.TempDir()
	gomod := "module example.com/hello\n\ngo 1.22\n\nrequire golang.org/x/text " + version + "\n"
	for name, data := range map[string]string{"go.mod": gomod, "main.go": helloProgram} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-mod=mod", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOWORK=off", "GOFLAGS=-mod=mod", "GOEXPERIMENT=", "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build with golang.org/x/text %s: %v\n%s", version, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// binaryImage is a linux/amd64 image with bin at app/hello (mode 0755: trivy only analyzes
// executables).
func binaryImage(t *testing.T, bin []byte) v1.Image {
	t.Helper()
	layer := imagetest.Layer(t, imagetest.Dir("app"), imagetest.Reg("app/hello", 0o755, bin))
	return imagetest.Image(t, "linux", "amd64", func(cf *v1.ConfigFile) {
		cf.Config.User = "65532"
		cf.Config.Entrypoint = []string{"/app/hello"}
	}, layer)
}

func TestScanAndGate(t *testing.T) {
	trivy := requireTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The offline DB, built by tools/trivydb from the record above.
	osvDir, dbRoot := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(osvDir, "GO-2022-1059.json"), []byte(osvRecord), 0o644); err != nil {
		t.Fatal(err)
	}
	dbDir := filepath.Join(dbRoot, "db")
	if err := BuildDB(ctx, osvDir, dbDir); err != nil {
		t.Fatal(err)
	}

	vulnImg := binaryImage(t, goBinary(t, "v0.3.7"))
	fixedImg := binaryImage(t, goBinary(t, "v0.3.8"))
	vulnDigest, _ := vulnImg.Digest()

	scan := func(t *testing.T, img v1.Image, o Options) *Report {
		t.Helper()
		o.Trivy, o.Name, o.Platform = trivy, "bitvaultd", "linux/amd64"
		start := time.Now()
		r, err := Scan(ctx, img, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("scan took %v", time.Since(start).Round(time.Millisecond))
		return r
	}
	// DBDir in both layouts: the directory with trivy.db, and a trivy cache dir with db/.
	vuln := scan(t, vulnImg, Options{DBDir: dbDir, Digest: vulnDigest})
	clean := scan(t, fixedImg, Options{DBDir: dbRoot, CacheDir: t.TempDir()})

	t.Run("report", func(t *testing.T) {
		want := Finding{
			Image: "bitvaultd", Platform: "linux/amd64", ID: "CVE-2022-32149", Aliases: []string{"GO-2022-1059"},
			Package: "golang.org/x/text", Installed: "0.3.7", Fixed: "0.3.8", Severity: "HIGH",
			Title: "Denial of service via crafted Accept-Language header in golang.org/x/text/language", Target: "app/hello",
		}
		if len(vuln.Findings) != 1 {
			t.Fatalf("v0.3.7 image: %d findings, want 1: %+v\n%s", len(vuln.Findings), vuln.Findings, vuln.Raw)
		}
		got := vuln.Findings[0]
		got.Aliases = slices.DeleteFunc(slices.Clone(got.Aliases), func(a string) bool { return a != "GO-2022-1059" })
		if !equalFinding(got, want) {
			t.Errorf("finding\n got %+v\nwant %+v", vuln.Findings[0], want)
		}
		if vuln.Digest != vulnDigest.String() || vuln.Name != "bitvaultd" || vuln.Platform != "linux/amd64" {
			t.Errorf("report identity %q %q %q", vuln.Name, vuln.Platform, vuln.Digest)
		}
		if vuln.DBUpdatedAt == "" {
			t.Error("DBUpdatedAt is empty")
		}
		if len(clean.Findings) != 0 {
			t.Errorf("v0.3.8 image: want no findings, got %+v", clean.Findings)
		}
		if !json.Valid(vuln.Raw) || !bytes.Contains(vuln.Raw, []byte(`"golang.org/x/text"`)) ||
			!bytes.Contains(vuln.Raw, []byte(`"ArtifactName": "bitvaultd@`+vulnDigest.String()+`"`)) {
			t.Errorf("Raw is not trivy's JSON report:\n%s", vuln.Raw)
		}
	})

	t.Run("sarif", func(t *testing.T) {
		for _, r := range []*Report{vuln, clean} {
			var s struct {
				Version string `json:"version"`
				Runs    []struct {
					Tool struct {
						Driver struct {
							Name  string `json:"name"`
							Rules []struct {
								ID string `json:"id"`
							} `json:"rules"`
						} `json:"driver"`
					} `json:"tool"`
					Results []struct {
						RuleID string `json:"ruleId"`
					} `json:"results"`
					Properties struct {
						ImageName string `json:"imageName"`
					} `json:"properties"`
				} `json:"runs"`
			}
			if err := json.Unmarshal(r.SARIF, &s); err != nil {
				t.Fatalf("SARIF is not JSON: %v\n%s", err, r.SARIF)
			}
			if s.Version != "2.1.0" || len(s.Runs) != 1 {
				t.Fatalf("SARIF version %q, %d runs; want 2.1.0, 1", s.Version, len(s.Runs))
			}
			if want := "bitvaultd@" + r.Digest; s.Runs[0].Properties.ImageName != want {
				t.Errorf("SARIF imageName %q, want %q", s.Runs[0].Properties.ImageName, want)
			}
			var rules, results []string
			for _, rule := range s.Runs[0].Tool.Driver.Rules {
				rules = append(rules, rule.ID)
			}
			for _, res := range s.Runs[0].Results {
				results = append(results, res.RuleID)
			}
			want := []string(nil)
			if r == vuln {
				want = []string{"CVE-2022-32149"}
			}
			if !slices.Equal(rules, want) || !slices.Equal(results, want) {
				t.Errorf("%s: SARIF rules %v results %v, want %v", r.Digest, rules, results, want)
			}
		}
	})

	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	const blockingLine = "bitvaultd linux/amd64: golang.org/x/text 0.3.7 → 0.3.8 CVE-2022-32149 (HIGH)"
	tests := []struct {
		name        string
		reports     []*Report
		allow       string // allow-list file contents; "" = no file
		wantBlock   int
		wantAllowed int
		wantExpired int
		wantErr     []string // substrings of Err(); nil = Err() is nil
	}{
		{name: "vulnerable image blocks", reports: []*Report{vuln}, wantBlock: 1,
			wantErr: []string{"vulnerability gate: 1 fixable CRITICAL/HIGH finding\n  " + blockingLine + "\n"}},
		{name: "fixed image passes", reports: []*Report{clean}},
		{name: "both images: only the vulnerable one blocks", reports: []*Report{clean, vuln}, wantBlock: 1, wantErr: []string{blockingLine}},
		{name: "allow-listed until a future date", reports: []*Report{vuln}, wantAllowed: 1,
			allow: "entries:\n  - id: CVE-2022-32149\n    reason: ParseAcceptLanguage is never called with untrusted input\n    expires: 2026-06-15\n"},
		{name: "allow-listed by the Go advisory ID, package and image", reports: []*Report{vuln}, wantAllowed: 1,
			allow: "entries:\n  - id: GO-2022-1059\n    reason: not reachable\n    expires: 2027-01-01\n    package: golang.org/x/text\n    image: bitvaultd\n"},
		{name: "entry for another image does not allow", reports: []*Report{vuln}, wantBlock: 1, wantErr: []string{blockingLine},
			allow: "entries:\n  - id: CVE-2022-32149\n    reason: not reachable in the worker\n    expires: 2027-01-01\n    image: bitvault-worker\n"},
		{name: "expired entry fails and no longer allows", reports: []*Report{vuln}, wantBlock: 1, wantExpired: 1,
			allow: "# accepted risks\nentries:\n  - id: CVE-2022-32149\n    reason: not reachable\n    expires: 2026-06-14\n",
			wantErr: []string{"1 fixable CRITICAL/HIGH finding and 1 expired allow-list entry", blockingLine,
				"vuln-allow.yaml:3: allow-list entry CVE-2022-32149 expired on 2026-06-14; fix the finding and delete the entry, or review the reason and set a later expires"}},
		{name: "expired entry fails even on a clean image", reports: []*Report{clean}, wantExpired: 1,
			allow:   "entries:\n  - id: CVE-2021-0001\n    reason: old\n    expires: 2020-01-01\n",
			wantErr: []string{"vuln-allow.yaml:2: allow-list entry CVE-2021-0001 expired on 2020-01-01"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vuln-allow.yaml")
			if tc.allow != "" {
				if err := os.WriteFile(path, []byte(tc.allow), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			allow, err := LoadAllowList(path)
			if err != nil {
				t.Fatal(err)
			}
			v := Gate(tc.reports, allow, now)
			if len(v.Blocking) != tc.wantBlock || len(v.Allowed) != tc.wantAllowed || len(v.Expired) != tc.wantExpired {
				t.Errorf("blocking %d allowed %d expired %d, want %d %d %d", len(v.Blocking), len(v.Allowed), len(v.Expired), tc.wantBlock, tc.wantAllowed, tc.wantExpired)
			}
			for _, f := range v.Allowed {
				if f.Line() != blockingLine {
					t.Errorf("allowed %q", f.Line())
				}
			}
			err = v.Err()
			if tc.wantErr == nil {
				if err != nil {
					t.Errorf("Err() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Err() = nil, want %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Err() =\n%s\nwant it to contain\n%s", err, w)
				}
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	ctx := context.Background()
	img := binaryImage(t, []byte("not a Go binary"))
	other, _ := v1.NewHash("sha256:" + strings.Repeat("0", 64))
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no DB in DBDir", Options{Trivy: "/bin/true", DBDir: t.TempDir()}, "no trivy.db + metadata.json"},
		{"digest mismatch", Options{Trivy: "/bin/true", Digest: other, Name: "bitvaultd", Platform: "linux/amd64"}, "is not the image's digest"},
		{"trivy missing", Options{Trivy: "/nonexistent/trivy"}, "/nonexistent/trivy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Scan(ctx, img, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestVersionsMatchToolsModules(t *testing.T) {
	tests := []struct{ gomod, module, want string }{
		{"../../tools/trivy/go.mod", "github.com/aquasecurity/trivy", TrivyVersion},
		{"../../tools/trivy/go.mod", "github.com/aquasecurity/trivy-db", TrivyDBVersion},
		{"../../tools/trivydb/go.mod", "github.com/aquasecurity/trivy-db", TrivyDBVersion},
		{"../../tools/cosign/go.mod", "github.com/sigstore/cosign/v2", CosignVersion},
		{"../../tools/kyverno/go.mod", "github.com/kyverno/kyverno", KyvernoVersion},
	}
	for _, tc := range tests {
		data, err := os.ReadFile(tc.gomod)
		if err != nil {
			t.Fatal(err)
		}
		f, err := modfile.Parse(tc.gomod, data, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, r := range f.Require {
			if r.Mod.Path == tc.module {
				got = r.Mod.Version
			}
		}
		if got != tc.want {
			t.Errorf("%s requires %s %q; the scan package expects %s: keep them equal", tc.gomod, tc.module, got, tc.want)
		}
	}
}

func equalFinding(a, b Finding) bool {
	return a.Image == b.Image && a.Platform == b.Platform && a.ID == b.ID && slices.Equal(a.Aliases, b.Aliases) &&
		a.Package == b.Package && a.Installed == b.Installed && a.Fixed == b.Fixed && a.Severity == b.Severity &&
		a.Title == b.Title && a.Target == b.Target
}
