package sbom

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bitvault/bitvault/internal/testsupport/imagetest"
)

// created is the release's SOURCE_DATE_EPOCH in these tests.
var created = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	testName     = "bitvault-test"
	testOS       = "linux"
	testArch     = "arm64"
	testPlatform = testOS + "/" + testArch
)

// fixture is one small image with a Go binary, an npm package and a Debian package, generated once
// per test binary (compiling the Go binary and reading the image take seconds).
type fixture struct {
	img      v1.Image
	digest   v1.Hash
	docs     *Documents
	cold     time.Duration // first Generate in this process
	warm     time.Duration // second Generate, same image
	second   *Documents
	buildErr error
}

var (
	fixtureOnce sync.Once
	theFixture  fixture
)

func getFixture(t *testing.T) *fixture {
	t.Helper()
	fixtureOnce.Do(func() { theFixture = buildFixture(t) })
	if theFixture.buildErr != nil {
		t.Fatal(theFixture.buildErr)
	}
	return &theFixture
}

func buildFixture(t *testing.T) (f fixture) {
	bin, err := buildGoBinary(testArch)
	if err != nil {
		f.buildErr = err
		return f
	}
	f.img, err = testImage(bin)
	if err != nil {
		f.buildErr = err
		return f
	}
	if f.digest, err = f.img.Digest(); err != nil {
		f.buildErr = err
		return f
	}
	opts := Options{Name: testName, Platform: testPlatform, Digest: f.digest, Created: created}
	start := time.Now()
	if f.docs, err = Generate(context.Background(), f.img, opts); err != nil {
		f.buildErr = err
		return f
	}
	f.cold = time.Since(start)
	start = time.Now()
	if f.second, err = Generate(context.Background(), f.img, opts); err != nil {
		f.buildErr = err
		return f
	}
	f.warm = time.Since(start)
	t.Logf("Generate: cold %v, warm %v; SPDX %d bytes, CycloneDX %d bytes", f.cold, f.warm, len(f.docs.SPDX), len(f.docs.CycloneDX))
	return f
}

// buildGoBinary compiles a tiny program that uses golang.org/x/text v0.3.8 for linux/arch.
func buildGoBinary(arch string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "bvrelease-sbom-gobin-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	files := map[string]string{
		"go.mod": "module example.com/hello\n\ngo 1.22\n\nrequire golang.org/x/text v0.3.8\n",
		"main.go": `package main

import (
	"fmt"

	"golang.org/x/text/language"
)

func main() { fmt.Println(language.English.String()) }
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	out := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-buildid=", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off", "GOTOOLCHAIN=local",
		"CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, &buildError{out: string(b), err: err}
	}
	return os.ReadFile(out)
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

type tarEntry struct {
	name string
	mode int64
	body string // a directory when name ends in "/"
}

func tarLayer(entries []tarEntry) (v1.Layer, error) {
	files := make([]imagetest.File, 0, len(entries))
	for _, e := range entries {
		f := imagetest.Reg(e.name, e.mode, []byte(e.body))
		if strings.HasSuffix(e.name, "/") {
			f = imagetest.File{Name: e.name, Type: tar.TypeDir, Mode: e.mode}
		}
		f.ModTime = created
		files = append(files, f)
	}
	return imagetest.NewLayer(files...)
}

const tzdataStatus = `Package: tzdata
Version: 2024a-0+deb12u1
Architecture: all
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Installed-Size: 3000
Depends: debconf (>= 0.5) | debconf-2.0
Section: localization
Priority: required
Multi-Arch: foreign
Homepage: https://www.iana.org/time-zones
Description: time zone and daylight-saving time data
 This package contains data required for the implementation of
 standard local time for many representative locations around the globe.
`

const osRelease = `PRETTY_NAME="Distroless"
NAME="Debian GNU/Linux"
ID="debian"
VERSION_ID="12"
VERSION="Debian GNU/Linux 12 (bookworm)"
HOME_URL="https://github.com/GoogleContainerTools/distroless"
`

// testImage is a three-layer OCI image: a distroless-like base with a dpkg status.d entry, a web
// layer with node_modules, and an application layer with the Go binary.
func testImage(goBinary []byte) (v1.Image, error) {
	layers := [][]tarEntry{
		{
			{name: "etc/", mode: 0o755},
			{name: "etc/os-release", mode: 0o644, body: osRelease},
			{name: "var/", mode: 0o755},
			{name: "var/lib/", mode: 0o755},
			{name: "var/lib/dpkg/", mode: 0o755},
			{name: "var/lib/dpkg/status.d/", mode: 0o755},
			{name: "var/lib/dpkg/status.d/tzdata", mode: 0o644, body: tzdataStatus},
		},
		{
			{name: "app/", mode: 0o755},
			{name: "app/node_modules/", mode: 0o755},
			{name: "app/node_modules/left-pad/", mode: 0o755},
			{name: "app/node_modules/left-pad/package.json", mode: 0o644,
				body: `{"name":"left-pad","version":"1.3.0","license":"WTFPL","main":"index.js"}` + "\n"},
			{name: "app/node_modules/left-pad/index.js", mode: 0o644, body: "module.exports = leftPad;\n"},
		},
		{
			{name: "app/", mode: 0o755},
			{name: "app/hello", mode: 0o755, body: string(goBinary)},
		},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = testOS, testArch
	cfg.Created = v1.Time{Time: created}
	cfg.Config.User = "65532:65532"
	cfg.Config.Entrypoint = []string{"/app/hello"}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": testName}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, err
	}
	for _, entries := range layers {
		l, err := tarLayer(entries)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: created}}}); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// Parsed documents: only the fields the tests look at.

type spdxDoc struct {
	SPDXVersion       string `json:"spdxVersion"`
	DataLicense       string `json:"dataLicense"`
	Name              string `json:"name"`
	DocumentNamespace string `json:"documentNamespace"`
	CreationInfo      struct {
		Created  string   `json:"created"`
		Creators []string `json:"creators"`
	} `json:"creationInfo"`
	Packages []struct {
		SPDXID       string `json:"SPDXID"`
		Name         string `json:"name"`
		VersionInfo  string `json:"versionInfo"`
		Comment      string `json:"comment"`
		Purpose      string `json:"primaryPackagePurpose"`
		ExternalRefs []struct {
			Type    string `json:"referenceType"`
			Locator string `json:"referenceLocator"`
		} `json:"externalRefs"`
		Checksums []struct {
			Algorithm string `json:"algorithm"`
			Value     string `json:"checksumValue"`
		} `json:"checksums"`
	} `json:"packages"`
	Relationships []struct {
		A    string `json:"spdxElementId"`
		Type string `json:"relationshipType"`
		B    string `json:"relatedSpdxElement"`
	} `json:"relationships"`
}

type cdxComponent struct {
	BOMRef     string `json:"bom-ref"`
	Type       string `json:"type"`
	Name       string `json:"name"`
	Version    string `json:"version"`
	PURL       string `json:"purl"`
	Hashes     []struct{ Alg, Content string }
	Properties []struct{ Name, Value string }
}

type cdxDoc struct {
	BOMFormat    string `json:"bomFormat"`
	SpecVersion  string `json:"specVersion"`
	SerialNumber string `json:"serialNumber"`
	Metadata     struct {
		Timestamp string `json:"timestamp"`
		Tools     struct {
			Components []cdxComponent `json:"components"`
		} `json:"tools"`
		Component cdxComponent `json:"component"`
	} `json:"metadata"`
	Components []cdxComponent `json:"components"`
}

func parse(t *testing.T, docs *Documents) (spdxDoc, cdxDoc) {
	t.Helper()
	var s spdxDoc
	if err := json.Unmarshal(docs.SPDX, &s); err != nil {
		t.Fatalf("SPDX is not JSON: %v", err)
	}
	var c cdxDoc
	if err := json.Unmarshal(docs.CycloneDX, &c); err != nil {
		t.Fatalf("CycloneDX is not JSON: %v", err)
	}
	return s, c
}

func spdxPURLs(s spdxDoc) map[string]string {
	out := map[string]string{} // purl -> name@version
	for _, p := range s.Packages {
		for _, r := range p.ExternalRefs {
			if r.Type == "purl" {
				out[r.Locator] = p.Name + "@" + p.VersionInfo
			}
		}
	}
	return out
}

func TestGenerateFindsPackages(t *testing.T) {
	f := getFixture(t)
	s, c := parse(t, f.docs)
	spdx := spdxPURLs(s)
	cdx := map[string]string{}
	for _, comp := range c.Components {
		if comp.PURL != "" {
			cdx[comp.PURL] = comp.Name + "@" + comp.Version
		}
	}
	tests := []struct {
		what       string
		purlPrefix string // purl type, namespace and name
		nameAtVer  string
	}{
		{"Go module from the binary's build info", "pkg:golang/golang.org/x/text@v0.3.8", "golang.org/x/text@v0.3.8"},
		{"npm package from node_modules", "pkg:npm/left-pad@1.3.0", "left-pad@1.3.0"},
		{"Debian package from dpkg status.d", "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1", "tzdata@2024a-0+deb12u1"},
	}
	for _, tc := range tests {
		t.Run(tc.what, func(t *testing.T) {
			for format, purls := range map[string]map[string]string{"SPDX": spdx, "CycloneDX": cdx} {
				found := false
				for purl, nv := range purls {
					if strings.HasPrefix(purl, tc.purlPrefix) {
						found = true
						if nv != tc.nameAtVer {
							t.Errorf("%s: %s is %s, want %s", format, purl, nv, tc.nameAtVer)
						}
					}
				}
				if !found {
					t.Errorf("%s: no package with purl %s*; have %v", format, tc.purlPrefix, keys(purls))
				}
			}
		})
	}

	n, err := Summary(f.docs)
	if err != nil {
		t.Fatal(err)
	}
	libs := 0
	for _, comp := range c.Components {
		if comp.Type == "library" || comp.Type == "application" {
			libs++
		}
	}
	if n < len(tests) || n != libs {
		t.Errorf("Summary = %d packages; CycloneDX has %d library/application components; want equal and ≥ %d", n, libs, len(tests))
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestGenerateDocumentFields(t *testing.T) {
	f := getFixture(t)
	s, c := parse(t, f.docs)
	digest := f.digest.String()
	wantPURL := "pkg:oci/" + testName + "@sha256%3A" + f.digest.Hex + "?arch=" + testArch
	wantNS := "https://bitvault.dev/spdx/" + testName + "/" + testPlatform + "/" + digest
	wantTime := "2024-01-02T03:04:05Z"

	var root *struct {
		SPDXID       string `json:"SPDXID"`
		Name         string `json:"name"`
		VersionInfo  string `json:"versionInfo"`
		Comment      string `json:"comment"`
		Purpose      string `json:"primaryPackagePurpose"`
		ExternalRefs []struct {
			Type    string `json:"referenceType"`
			Locator string `json:"referenceLocator"`
		} `json:"externalRefs"`
		Checksums []struct {
			Algorithm string `json:"algorithm"`
			Value     string `json:"checksumValue"`
		} `json:"checksums"`
	}
	for _, r := range s.Relationships {
		if r.A == "SPDXRef-DOCUMENT" && r.Type == "DESCRIBES" {
			for i := range s.Packages {
				if s.Packages[i].SPDXID == r.B {
					root = &s.Packages[i]
				}
			}
		}
	}
	if root == nil {
		t.Fatal("SPDX: the document describes no package")
	}
	rootPURL := ""
	for _, r := range root.ExternalRefs {
		if r.Type == "purl" {
			rootPURL = r.Locator
		}
	}
	rootSHA := ""
	for _, cs := range root.Checksums {
		if cs.Algorithm == "SHA256" {
			rootSHA = cs.Value
		}
	}
	var cdxSHA, cdxPlatform string
	for _, h := range c.Metadata.Component.Hashes {
		if h.Alg == "SHA-256" {
			cdxSHA = h.Content
		}
	}
	for _, p := range c.Metadata.Component.Properties {
		if p.Name == "bitvault:platform" {
			cdxPlatform = p.Value
		}
	}
	toolVersion := ""
	for _, tool := range c.Metadata.Tools.Components {
		if tool.Name == "syft" {
			toolVersion = tool.Version
		}
	}

	tests := []struct {
		field     string
		got, want string
	}{
		{"SPDX spdxVersion", s.SPDXVersion, "SPDX-2.3"},
		{"SPDX dataLicense", s.DataLicense, "CC0-1.0"},
		{"SPDX name", s.Name, testName + " " + testPlatform},
		{"SPDX documentNamespace", s.DocumentNamespace, wantNS},
		{"SPDX created", s.CreationInfo.Created, wantTime},
		{"SPDX tool creator", strings.Join(s.CreationInfo.Creators, ","), "Organization: Anchore, Inc,Tool: syft-" + pinnedSyftVersion},
		{"SPDX root name", root.Name, testName},
		{"SPDX root version", root.VersionInfo, digest},
		{"SPDX root purl", rootPURL, wantPURL},
		{"SPDX root SHA256", rootSHA, f.digest.Hex},
		{"SPDX root comment", root.Comment, "platform: " + testPlatform},
		{"SPDX root purpose", root.Purpose, "CONTAINER"},
		{"CycloneDX bomFormat", c.BOMFormat, "CycloneDX"},
		{"CycloneDX specVersion", c.SpecVersion, "1.6"},
		{"CycloneDX serialNumber", c.SerialNumber, "urn:uuid:" + uuidV5URL(wantNS)},
		{"CycloneDX timestamp", c.Metadata.Timestamp, wantTime},
		{"CycloneDX tool version", toolVersion, pinnedSyftVersion},
		{"CycloneDX component type", c.Metadata.Component.Type, "container"},
		{"CycloneDX component name", c.Metadata.Component.Name, testName},
		{"CycloneDX component version", c.Metadata.Component.Version, digest},
		{"CycloneDX component purl", c.Metadata.Component.PURL, wantPURL},
		{"CycloneDX component SHA-256", cdxSHA, f.digest.Hex},
		{"CycloneDX component platform", cdxPlatform, testPlatform},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("%s = %q, want %q", tc.field, tc.got, tc.want)
			}
		})
	}
	if !regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(c.SerialNumber) {
		t.Errorf("CycloneDX serialNumber %q is not a UUIDv5 URN", c.SerialNumber)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	f := getFixture(t)
	t.Logf("timings: cold %v, warm %v", f.cold, f.warm)

	// a fresh process reads the same image from an OCI layout, as the release pipeline does
	layoutDir, outDir := t.TempDir(), t.TempDir()
	p, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(f.img); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGenerateSubprocess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "BVRELEASE_SBOM_LAYOUT="+layoutDir, "BVRELEASE_SBOM_OUT="+outDir)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("subprocess: %v\n%s", err, out)
	}
	t.Logf("fresh process (read layout + Generate + exit): %v", time.Since(start))
	fresh := &Documents{}
	if fresh.SPDX, err = os.ReadFile(filepath.Join(outDir, "spdx.json")); err != nil {
		t.Fatal(err)
	}
	if fresh.CycloneDX, err = os.ReadFile(filepath.Join(outDir, "cyclonedx.json")); err != nil {
		t.Fatal(err)
	}

	// two concurrent calls, as the release pipeline may make for two platforms
	var concurrent [2]*Documents
	var errs [2]error
	var wg sync.WaitGroup
	for i := range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			concurrent[i], errs[i] = Generate(context.Background(), f.img,
				Options{Name: testName, Platform: testPlatform, Digest: f.digest, Created: created})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	today := time.Now().UTC().Format("2006-01-02")
	tests := []struct {
		name  string
		other *Documents
	}{
		{"second run, same process", f.second},
		{"fresh process, image from an OCI layout", fresh},
		{"concurrent run 1", concurrent[0]},
		{"concurrent run 2", concurrent[1]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Equal(f.docs.SPDX, tc.other.SPDX) {
				t.Errorf("SPDX differs:\n%s", firstDiff(f.docs.SPDX, tc.other.SPDX))
			}
			if !bytes.Equal(f.docs.CycloneDX, tc.other.CycloneDX) {
				t.Errorf("CycloneDX differs:\n%s", firstDiff(f.docs.CycloneDX, tc.other.CycloneDX))
			}
		})
	}
	t.Run("no wall-clock time", func(t *testing.T) {
		if today == created.Format("2006-01-02") {
			t.Skip("today is the release date")
		}
		for name, b := range map[string][]byte{"SPDX": f.docs.SPDX, "CycloneDX": f.docs.CycloneDX} {
			if i := bytes.Index(b, []byte(today)); i >= 0 {
				t.Errorf("%s contains today's date %s: …%s…", name, today, b[max(0, i-80):min(len(b), i+40)])
			}
		}
	})
	t.Run("no temporary path", func(t *testing.T) {
		for name, b := range map[string][]byte{"SPDX": f.docs.SPDX, "CycloneDX": f.docs.CycloneDX} {
			for _, p := range []string{os.TempDir(), "bvrelease-sbom"} {
				if bytes.Contains(b, []byte(p)) {
					t.Errorf("%s mentions %s", name, p)
				}
			}
		}
	})
}

// TestGenerateSubprocess is the fresh process of TestGenerateIsDeterministic.
func TestGenerateSubprocess(t *testing.T) {
	dir, out := os.Getenv("BVRELEASE_SBOM_LAYOUT"), os.Getenv("BVRELEASE_SBOM_OUT")
	if dir == "" || out == "" {
		t.Skip("run by TestGenerateIsDeterministic")
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 {
		t.Fatalf("layout has %d manifests", len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Generate(context.Background(), img, Options{Name: testName, Platform: testPlatform, Digest: m.Manifests[0].Digest, Created: created})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "spdx.json"), docs.SPDX, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "cyclonedx.json"), docs.CycloneDX, 0o644); err != nil {
		t.Fatal(err)
	}
}

func firstDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-120)
	return "first:  …" + string(a[lo:min(len(a), i+120)]) + "…\nsecond: …" + string(b[lo:min(len(b), i+120)]) + "…"
}

func TestGenerateRefuses(t *testing.T) {
	f := getFixture(t)
	other := f.digest
	other.Hex = strings.Repeat("0", 64)
	good := Options{Name: testName, Platform: testPlatform, Digest: f.digest, Created: created}
	tests := []struct {
		name    string
		edit    func(*Options)
		wantErr string
	}{
		{"another digest", func(o *Options) { o.Digest = other }, "not sha256:0000"},
		{"another platform", func(o *Options) { o.Platform = "linux/amd64" }, "config says linux/arm64"},
		{"malformed platform", func(o *Options) { o.Platform = "arm64" }, "want os/arch"},
		{"no creation time", func(o *Options) { o.Created = time.Time{} }, "SOURCE_DATE_EPOCH"},
		{"no name", func(o *Options) { o.Name = "" }, "artifact name"},
		{"name with a slash", func(o *Options) { o.Name = "a/b" }, "artifact name"},
		{"empty digest", func(o *Options) { o.Digest = v1.Hash{} }, "want sha256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.edit(&o)
			_, err := Generate(context.Background(), f.img, o)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestSyftVersionIsPinned(t *testing.T) {
	if got := SyftVersion(); got != pinnedSyftVersion {
		t.Errorf("SyftVersion() = %q (build info), pinnedSyftVersion = %q: update the constant", got, pinnedSyftVersion)
	}
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s*github\.com/anchore/syft ` + regexp.QuoteMeta(pinnedSyftVersion) + `\b`).Match(b) {
		t.Errorf("go.mod does not require github.com/anchore/syft %s: update pinnedSyftVersion", pinnedSyftVersion)
	}
}

func TestSummaryRejects(t *testing.T) {
	tests := []struct {
		name string
		docs *Documents
	}{
		{"nil", nil},
		{"SPDX not JSON", &Documents{SPDX: []byte("{"), CycloneDX: []byte(`{"bomFormat":"CycloneDX"}`)}},
		{"no spdxVersion", &Documents{SPDX: []byte(`{}`), CycloneDX: []byte(`{"bomFormat":"CycloneDX"}`)}},
		{"not CycloneDX", &Documents{SPDX: []byte(`{"spdxVersion":"SPDX-2.3"}`), CycloneDX: []byte(`{}`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Summary(tc.docs); err == nil {
				t.Error("Summary accepted it")
			}
		})
	}
}

// uuidV5URL is RFC 4122 §4.3 (SHA-1, URL namespace), written out here independently of the package.
func uuidV5URL(name string) string {
	ns := []byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	h := sha1.Sum(append(ns, name...))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	x := hex.EncodeToString(u)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}
