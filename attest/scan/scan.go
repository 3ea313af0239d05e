// Package scan is the vulnerability stage: it scans each platform image with trivy and gates the
// release on the findings (DESIGN.md §3 "sbom / scan").
//
// Choices:
//
//   - trivy runs as the pinned binary TrivyVersion (built by scripts/tools.sh trivy: it needs
//     GOEXPERIMENT=jsonv2, which must not leak into our own build), found like buildkitd
//     (FindTrivy). Its JSON report is parsed here; Report.Raw keeps it verbatim.
//   - What is scanned: the platform image itself, written to a private OCI image layout and given
//     to `trivy image --input DIR`. Image mode walks the layers (whiteouts applied) with the
//     analyzers for installed software: Go binaries (module versions from the build info),
//     node_modules/**/package.json, and dpkg including distroless' /var/lib/dpkg/status.d/.
//     Lock files are not scanned (trivy disables them in image mode: they list what a build
//     could install, not what the image contains). `trivy rootfs` would need the image
//     extracted first and loses the layer attribution; scanning an SBOM would tie the result to
//     syft's package naming.
//   - Offline: with Options.DBDir set, trivy gets a private --cache-dir whose db/ is a symlink to
//     that database (opened read-only; nothing is written to DBDir) and runs with
//     --skip-db-update --skip-java-db-update --offline-scan. trivy then requires db/trivy.db and
//     db/metadata.json with schema Version 2; DownloadedAt/NextUpdate are not checked. DBDir may
//     be the directory holding trivy.db and metadata.json (what tools/trivydb -out writes) or a
//     trivy cache dir holding db/trivy.db (what `trivy --cache-dir D image --download-db-only`
//     leaves). A Java archive in the image would need trivy's Java DB as well, which is not
//     provided offline; our images contain none. Without DBDir, trivy uses --cache-dir CacheDir
//     (trivy's own default when empty) and downloads or refreshes its DB as usual (needs the
//     network).
//   - Hermetic runs: the scan cache is in memory (--cache-backend memory: no fanal.db lock
//     shared between parallel scans), version check and telemetry are off, the working
//     directory is a temp dir (no stray trivy.yaml or .trivyignore), TRIVY_* variables other
//     than the DB download settings are dropped and every severity is requested with
//     --ignore-unfixed=false: what is accepted is decided by Gate and the allow-list alone.
//   - SARIF: `trivy convert --format sarif` of the same JSON report: trivy's own SARIF (what
//     GitHub code scanning gets from trivy elsewhere), no second scan, and guaranteed to describe
//     exactly the findings the gate saw.
//   - Gate: a CRITICAL or HIGH finding for which a fixed version exists blocks the release (the
//     image is "unfixed": it still ships the vulnerable version although a fix is available).
//     A CRITICAL/HIGH finding with no fix anywhere does not block — nothing can be upgraded and a
//     Debian base would otherwise be unreleasable for every "will not fix" entry — but is listed
//     in Verdict.NoFix; it starts blocking as soon as the DB knows a fix. The allow-list
//     (.bvrelease/vuln-allow.yaml, LoadAllowList) accepts findings for a limited time; an
//     expired entry is itself a failure.
package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// Options configure one Scan.
type Options struct {
	// Trivy is the trivy binary; "" = FindTrivy (BITVAULT_TRIVY, the tools cache, PATH).
	Trivy string
	// DBDir is an offline trivy DB: a directory with trivy.db + metadata.json, or one with
	// db/trivy.db + db/metadata.json. "" = trivy's normal download into CacheDir (needs network).
	DBDir string
	// CacheDir is trivy's --cache-dir when DBDir is "" ("" = trivy's default, ~/.cache/trivy).
	// With DBDir set it only holds the scan's temporary files ("" = os.TempDir()).
	CacheDir string
	// Name and Platform identify the image in findings and messages ("bitvaultd",
	// "linux/arm64").
	Name, Platform string
	// Digest is the platform manifest digest; zero = img.Digest(). A Digest that is not the
	// image's is an error.
	Digest v1.Hash
}

// Finding is one vulnerability in one package of one scanned image.
type Finding struct {
	Image, Platform string // Options.Name, Options.Platform of the scan
	ID              string // trivy's VulnerabilityID (the CVE when there is one)
	Aliases         []string
	Package         string
	// Installed and Fixed as trivy reports them, except that Go module versions lose their "v"
	// so both sides use the notation of the advisory ("0.3.7", "0.3.8"). Fixed is "" when no
	// fix exists; it may list several versions ("0.3.8, 0.4.1").
	Installed, Fixed string
	Severity         string // CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN
	Title            string
	Target           string // the file or OS trivy found the package in ("app/server", "debian 12.11")
}

// Report is the scan of one platform image.
type Report struct {
	Name, Platform, Digest string
	Findings               []Finding // most severe first
	Raw                    []byte    // trivy's JSON report (ArtifactName: "<Name>@<Digest>")
	SARIF                  []byte    // SARIF 2.1.0, from trivy convert
	DBUpdatedAt            string    // the DB's metadata.json UpdatedAt (RFC 3339), when readable
}

// Scan scans one platform image with trivy. See the package documentation for what is scanned
// and how the DB is found.
func Scan(ctx context.Context, img v1.Image, o Options) (*Report, error) {
	if img == nil {
		return nil, errors.New("scan: no image")
	}
	trivy := o.Trivy
	if trivy == "" {
		var err error
		if trivy, err = FindTrivy(); err != nil {
			return nil, err
		}
	}
	// trivy runs in a temp dir: relative paths would resolve there.
	if strings.ContainsRune(trivy, filepath.Separator) {
		if abs, err := filepath.Abs(trivy); err == nil {
			trivy = abs
		}
	}
	if o.CacheDir != "" {
		abs, err := filepath.Abs(o.CacheDir)
		if err != nil {
			return nil, err
		}
		o.CacheDir = abs
	}
	what := strings.TrimSpace(o.Name + " " + o.Platform)
	if what == "" {
		what = "image"
	}
	dgst, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", what, err)
	}
	if o.Digest != (v1.Hash{}) && o.Digest != dgst {
		return nil, fmt.Errorf("scan %s: Options.Digest %s is not the image's digest %s", what, o.Digest, dgst)
	}

	var dbDir string
	if o.DBDir != "" {
		if dbDir, err = resolveDBDir(o.DBDir); err != nil {
			return nil, fmt.Errorf("scan %s: %w", what, err)
		}
	}
	tmpParent := os.TempDir()
	if o.DBDir != "" && o.CacheDir != "" {
		if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("scan %s: %w", what, err)
		}
		tmpParent = o.CacheDir
	}
	tmp, err := os.MkdirTemp(tmpParent, "bvscan-")
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", what, err)
	}
	defer os.RemoveAll(tmp)
	if strings.ContainsAny(tmp, ":@") {
		// trivy --input reads "DIR:tag" and "DIR@digest".
		return nil, fmt.Errorf("scan %s: temp dir %s contains ':' or '@', which trivy --input misreads; set TMPDIR", what, tmp)
	}

	input := filepath.Join(tmp, "oci")
	if _, err := layout.Write(input, mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img})); err != nil {
		return nil, fmt.Errorf("scan %s: write OCI layout: %w", what, err)
	}

	args := []string{"image", "--input", input}
	cacheDir := o.CacheDir
	if dbDir != "" {
		cacheDir = filepath.Join(tmp, "cache")
		if err := os.MkdirAll(cacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("scan %s: %w", what, err)
		}
		if err := os.Symlink(dbDir, filepath.Join(cacheDir, "db")); err != nil {
			return nil, fmt.Errorf("scan %s: %w", what, err)
		}
		args = append(args, "--skip-db-update", "--skip-java-db-update", "--offline-scan")
	}
	if cacheDir != "" {
		args = append(args, "--cache-dir", cacheDir)
	}
	jsonPath := filepath.Join(tmp, "report.json")
	args = append(args,
		"--cache-backend", "memory",
		"--scanners", "vuln",
		"--severity", "UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL",
		"--ignore-unfixed=false",
		"--skip-version-check", "--disable-telemetry", "--no-progress",
		"--exit-code", "0",
		"--format", "json", "--output", jsonPath)
	if err := run(ctx, trivy, tmp, args); err != nil {
		return nil, fmt.Errorf("scan %s: %w", what, err)
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, fmt.Errorf("scan %s: trivy wrote no report: %w", what, err)
	}
	// ArtifactName (and the OS result's Target, "DIR (debian 12.11)") is trivy's --input, a temp
	// dir: name the image instead, in the JSON and so in the SARIF.
	artifact := dgst.String()
	if o.Name != "" {
		artifact = o.Name + "@" + artifact
	}
	raw = renameArtifact(raw, input, artifact)
	if err := os.WriteFile(jsonPath, raw, 0o644); err != nil {
		return nil, fmt.Errorf("scan %s: %w", what, err)
	}
	findings, err := parseReport(raw, o.Name, o.Platform)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", what, err)
	}

	sarifPath := filepath.Join(tmp, "report.sarif")
	if err := run(ctx, trivy, tmp, []string{"convert", "--format", "sarif", "--output", sarifPath, jsonPath}); err != nil {
		return nil, fmt.Errorf("scan %s: SARIF: %w", what, err)
	}
	sarif, err := os.ReadFile(sarifPath)
	if err != nil {
		return nil, fmt.Errorf("scan %s: SARIF: %w", what, err)
	}

	r := &Report{Name: o.Name, Platform: o.Platform, Digest: dgst.String(), Findings: findings, Raw: raw, SARIF: sarif}
	metaDir := dbDir
	if metaDir == "" {
		metaDir = cacheDir
		if metaDir == "" {
			if d, err := os.UserCacheDir(); err == nil {
				metaDir = filepath.Join(d, "trivy")
			}
		}
		metaDir = filepath.Join(metaDir, "db")
	}
	r.DBUpdatedAt = dbUpdatedAt(metaDir)
	return r, nil
}

// renameArtifact replaces the path trivy scanned (a unique temp dir) by name in a JSON report.
func renameArtifact(raw []byte, path, name string) []byte {
	from, _ := json.Marshal(path)
	to, _ := json.Marshal(name)
	return bytes.ReplaceAll(raw, from[1:len(from)-1], to[1:len(to)-1])
}

// resolveDBDir returns the directory holding trivy.db and metadata.json inside dir.
func resolveDBDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for _, d := range []string{abs, filepath.Join(abs, "db")} {
		_, e1 := os.Stat(filepath.Join(d, "trivy.db"))
		_, e2 := os.Stat(filepath.Join(d, "metadata.json"))
		if e1 == nil && e2 == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("trivy DB dir %s: no trivy.db + metadata.json in it or in its db/; build one with trivydb -osv DIR -out %s (scripts/tools.sh trivydb) or let trivy download one (trivy --cache-dir D image --download-db-only, then DBDir D)", dir, dir)
}

func dbUpdatedAt(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "metadata.json"))
	if err != nil {
		return ""
	}
	var m struct{ UpdatedAt time.Time }
	if json.Unmarshal(b, &m) != nil || m.UpdatedAt.IsZero() {
		return ""
	}
	return m.UpdatedAt.UTC().Format(time.RFC3339)
}

// keptTrivyEnv are the TRIVY_* variables passed through: where and how to download the DB.
var keptTrivyEnv = []string{"TRIVY_DB_REPOSITORY", "TRIVY_JAVA_DB_REPOSITORY", "TRIVY_USERNAME",
	"TRIVY_PASSWORD", "TRIVY_REGISTRY_TOKEN", "TRIVY_INSECURE"}

func run(ctx context.Context, bin, dir string, args []string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "TRIVY_") && !slices.Contains(keptTrivyEnv, k) {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("trivy %s: %w", args[0], ctx.Err())
		}
		return fmt.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, tail(out.Bytes(), 20))
	}
	return nil
}

// trivyReport is the part of trivy's JSON report (SchemaVersion 2) the gate reads.
type trivyReport struct {
	SchemaVersion int
	Results       []struct {
		Target          string
		Class           string
		Type            string
		Vulnerabilities []struct {
			VulnerabilityID  string
			VendorIDs        []string
			PkgName          string
			InstalledVersion string
			FixedVersion     string
			Severity         string
			Title            string
		}
	}
}

func parseReport(raw []byte, name, platform string) ([]Finding, error) {
	var r trivyReport
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("trivy JSON report: %w", err)
	}
	if r.SchemaVersion != 2 {
		return nil, fmt.Errorf("trivy JSON report: SchemaVersion %d, want 2 (trivy %s)", r.SchemaVersion, TrivyVersion)
	}
	var fs []Finding
	for _, res := range r.Results {
		goMod := res.Type == "gobinary" || res.Type == "gomod"
		for _, v := range res.Vulnerabilities {
			f := Finding{
				Image: name, Platform: platform,
				ID: v.VulnerabilityID, Aliases: v.VendorIDs, Package: v.PkgName,
				Installed: v.InstalledVersion, Fixed: v.FixedVersion,
				Severity: strings.ToUpper(v.Severity), Title: v.Title, Target: res.Target,
			}
			if f.Severity == "" {
				f.Severity = "UNKNOWN"
			}
			if goMod {
				f.Installed = trimV(f.Installed)
				f.Fixed = trimV(f.Fixed)
			}
			fs = append(fs, f)
		}
	}
	sortFindings(fs)
	return fs, nil
}

// trimV drops the "v" of Go module versions ("v0.3.7, v0.4.1" → "0.3.7, 0.4.1").
func trimV(s string) string {
	parts := strings.Split(s, ", ")
	for i, p := range parts {
		if len(p) > 1 && p[0] == 'v' && p[1] >= '0' && p[1] <= '9' {
			parts[i] = p[1:]
		}
	}
	return strings.Join(parts, ", ")
}

var severityRank = map[string]int{"CRITICAL": 4, "HIGH": 3, "MEDIUM": 2, "LOW": 1}

func sortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if d := severityRank[b.Severity] - severityRank[a.Severity]; d != 0 {
			return d
		}
		for _, c := range [][2]string{{a.Image, b.Image}, {a.Platform, b.Platform}, {a.Package, b.Package}, {a.ID, b.ID}, {a.Target, b.Target}} {
			if d := strings.Compare(c[0], c[1]); d != 0 {
				return d
			}
		}
		return 0
	})
}
