// Package sbom generates the per-platform software bills of materials of a release: one SPDX 2.3 JSON
// and one CycloneDX 1.6 JSON document for each platform manifest, made with syft (a library, pinned in
// go.mod) and reproducible byte for byte.
//
// # Source: syft's image source, fed the v1.Image directly
//
// Generate hands the go-containerregistry v1.Image it is given straight to stereoscope
// (image.New + Read, exactly what stereoscope's own oci-dir provider does after it has picked a manifest
// out of a layout) and wraps the result in syft's image source (stereoscopesource.New). Nothing is
// pulled, no registry or docker daemon is asked, and nothing is written to a temporary OCI layout or
// archive first: stereoscope unpacks the layers into a temporary directory it removes again.
// The image source was chosen over a directory source on the extracted filesystem (mutate.Extract)
// because:
//   - it runs the catalogers syft selects for images — installed packages: the Go binary cataloger
//     (build info of every Go executable), the dpkg cataloger (including distroless'
//     /var/lib/dpkg/status.d/<pkg>), the javascript package cataloger (node_modules/**/package.json)
//     — and not the directory set (go.mod, lock files), which describes what was declared, not shipped;
//   - the documents describe the image itself: the root SPDX package and the CycloneDX
//     metadata.component carry the manifest digest, and each location names the layer it came from;
//   - no temporary path can leak into the output, and whiteouts/overwrites between layers are
//     resolved the way a container sees the filesystem (squashed scope).
//
// Files: syft's default selection, the files owned by a package (e.g. the Go binary, a package's
// package.json, the dpkg status file) with their SHA-256. Listing every file of the web image
// (node_modules) would multiply the document size for no reader of ours.
//
// Remote look-ups are off (syft's defaults, set explicitly here): no license download from the Go
// proxy or npm, no local module cache search, no go/packages. The output therefore depends on the
// image alone, and the run works offline.
//
// # Determinism
//
// syft stamps each document with the wall-clock time and a random UUID (SPDX documentNamespace,
// CycloneDX serialNumber), and offers no option to change either. Instead of running syft's encoders
// and patching their output, Generate takes syft's own format models (spdxhelpers.ToFormatModel,
// cyclonedxhelpers.ToFormatModel — the same functions syft's spdxjson/cyclonedxjson encoders call),
// overwrites those fields, and encodes them the way the encoders do (compact JSON, no HTML escaping):
//   - SPDX documentNamespace = https://bitvault.dev/spdx/<name>/<os>/<arch>[/<variant>]/<digest>;
//   - CycloneDX serialNumber = urn:uuid:<UUIDv5 (URL namespace) of that same namespace URL>;
//   - creation time (SPDX created, CycloneDX metadata.timestamp) = Options.Created in UTC, seconds;
//   - tool version = syft's module version from the binary's build info (fallback: the version pinned
//     in go.mod), never a "devel" or empty string;
//   - ordering: syft sorts packages, files and relationships by their content-derived IDs; the tests
//     check that a second run, two concurrent runs and a run in a fresh process (reading the image
//     from an OCI layout) give identical bytes.
//
// Generate refuses an image whose manifest digest is not Options.Digest or whose config is not for
// Options.Platform, so a document can never name an image it did not read.
//
// # Identity of the image
//
// SPDX: the document DESCRIBES a root package named Options.Name, version = the manifest digest, a
// SHA256 checksum of the manifest, purl pkg:oci/<name>@sha256%3A<hex>?arch=<arch> and the comment
// "platform: <os/arch>". CycloneDX: metadata.component (type container) with the same name, version,
// purl and SHA-256 hash, and the property bitvault:platform. The document name is
// "<name> <platform>".
//
// CycloneDX 1.6 rather than syft's default 1.7: 1.6 is the most widely read version (scanners, policy
// engines, cosign's cyclonedx predicate type), and nothing syft emits for an image needs 1.7; the
// test suite checks specVersion. Both documents are compact JSON with a trailing newline, like
// syft's own encoders.
//
// Generate is safe for concurrent use (one call per platform image).
package sbom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	cyclonedx "github.com/CycloneDX/cyclonedx-go"
	stfile "github.com/anchore/stereoscope/pkg/file"
	"github.com/anchore/stereoscope/pkg/image"
	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/format/common/cyclonedxhelpers"
	"github.com/anchore/syft/syft/format/common/spdxhelpers"
	"github.com/anchore/syft/syft/source"
	"github.com/anchore/syft/syft/source/stereoscopesource"
	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/uuid"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"

	// syft's RPM database cataloger opens SQLite databases through database/sql; without a driver
	// registered it fails at run time. modernc.org/sqlite is pure Go (no cgo).
	_ "modernc.org/sqlite"
)

// syftModule is the module whose version is recorded as the generating tool.
const syftModule = "github.com/anchore/syft"

// pinnedSyftVersion is the syft version in go.mod, used when the binary carries no build info (a test
// checks the two agree).
const pinnedSyftVersion = "v1.57.1"

// syft's SPDX model is tools-golang's "latest", encoded as is: this stops the build if that ever
// stops being SPDX 2.3.
var _ *v2_3.Document = (*spdx.Document)(nil)

// namespaceBase is the prefix of every SPDX document namespace (a URI that need not resolve).
const namespaceBase = "https://bitvault.dev/spdx/"

// Options says what the image is.
type Options struct {
	Name     string    // artifact name, e.g. "bitvaultd"
	Platform string    // "linux/arm64" (os/arch[/variant]); must match the image config
	Digest   v1.Hash   // the platform manifest digest the SBOM describes; must be the image's digest
	Created  time.Time // SOURCE_DATE_EPOCH of the release: the only timestamp in the output
}

// Documents are the encoded SBOMs of one platform image.
type Documents struct {
	SPDX      []byte // SPDX 2.3 JSON
	CycloneDX []byte // CycloneDX 1.6 JSON
}

// platform is a parsed os/arch[/variant].
type platform struct{ os, arch, variant string }

func (p platform) String() string {
	s := p.os + "/" + p.arch
	if p.variant != "" {
		s += "/" + p.variant
	}
	return s
}

func parsePlatform(s string) (platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	for _, part := range parts {
		if part == "" || strings.ContainsAny(part, " ?#&=@:%") {
			return platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
		}
	}
	p := platform{os: parts[0], arch: parts[1]}
	if len(parts) == 3 {
		p.variant = parts[2]
	}
	return p, nil
}

// Generate catalogs img and returns its SPDX and CycloneDX documents. img must be the single-platform
// image whose manifest digest is o.Digest and whose config says o.Platform.
func Generate(ctx context.Context, img v1.Image, o Options) (*Documents, error) {
	plat, err := o.validate()
	if err != nil {
		return nil, err
	}
	if err := checkImage(img, o, plat); err != nil {
		return nil, err
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("sbom %s %s: manifest: %w", o.Name, o.Platform, err)
	}

	tmp := stfile.NewTempDirGenerator("bvrelease-sbom")
	defer tmp.Cleanup() //nolint:errcheck // best effort: temporary layer contents
	contentDir, err := tmp.NewDirectory("image")
	if err != nil {
		return nil, fmt.Errorf("sbom %s %s: %w", o.Name, o.Platform, err)
	}
	stImg := image.New(img, tmp, contentDir,
		image.WithManifestDigest(o.Digest.String()),
		image.WithManifest(rawManifest),
	)
	if err := stImg.Read(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sbom %s %s: read image: %w", o.Name, o.Platform, err), stImg.Cleanup())
	}
	src := stereoscopesource.New(stImg, stereoscopesource.ImageConfig{
		Reference: o.Name + "@" + o.Digest.String(),
		Platform:  &image.Platform{OS: plat.os, Architecture: plat.arch, Variant: plat.variant},
		Alias:     source.Alias{Name: o.Name, Version: o.Digest.String()},
	})
	defer src.Close() //nolint:errcheck // removes the unpacked layers

	s, err := syft.CreateSBOM(ctx, src, CreateConfig())
	if err != nil {
		return nil, fmt.Errorf("sbom %s %s: syft: %w", o.Name, o.Platform, err)
	}

	id := identity{opts: o, plat: plat}
	spdxDoc := spdxhelpers.ToFormatModel(*s)
	if spdxDoc == nil {
		return nil, fmt.Errorf("sbom %s %s: syft gave no SPDX document", o.Name, o.Platform)
	}
	if err := id.applySPDX(spdxDoc); err != nil {
		return nil, fmt.Errorf("sbom %s %s: %w", o.Name, o.Platform, err)
	}
	bom := cyclonedxhelpers.ToFormatModel(*s)
	id.applyCycloneDX(bom)

	var docs Documents
	if docs.SPDX, err = encodeJSON(spdxDoc); err != nil {
		return nil, fmt.Errorf("sbom %s %s: encode SPDX: %w", o.Name, o.Platform, err)
	}
	if docs.CycloneDX, err = encodeCycloneDX(bom); err != nil {
		return nil, fmt.Errorf("sbom %s %s: encode CycloneDX: %w", o.Name, o.Platform, err)
	}
	return &docs, nil
}

func (o Options) validate() (platform, error) {
	if o.Name == "" || strings.ContainsAny(o.Name, "/@:?#% \t\n") {
		return platform{}, fmt.Errorf("sbom: artifact name %q: want a plain repository name such as bitvaultd", o.Name)
	}
	plat, err := parsePlatform(o.Platform)
	if err != nil {
		return platform{}, fmt.Errorf("sbom %s: %w", o.Name, err)
	}
	if o.Digest.Algorithm != "sha256" || len(o.Digest.Hex) != 64 {
		return platform{}, fmt.Errorf("sbom %s %s: digest %q: want sha256:<64 hex>", o.Name, o.Platform, o.Digest)
	}
	if o.Created.IsZero() {
		return platform{}, fmt.Errorf("sbom %s %s: no creation time: pass the release's SOURCE_DATE_EPOCH", o.Name, o.Platform)
	}
	return plat, nil
}

// checkImage refuses to describe an image under a digest or platform that is not its own.
func checkImage(img v1.Image, o Options, plat platform) error {
	if img == nil {
		return fmt.Errorf("sbom %s %s: no image", o.Name, o.Platform)
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("sbom %s %s: image digest: %w", o.Name, o.Platform, err)
	}
	if d != o.Digest {
		return fmt.Errorf("sbom %s %s: the image is %s, not %s", o.Name, o.Platform, d, o.Digest)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("sbom %s %s: image config: %w", o.Name, o.Platform, err)
	}
	got := platform{os: cfg.OS, arch: cfg.Architecture, variant: cfg.Variant}
	if got != plat {
		return fmt.Errorf("sbom %s %s: the image config says %s", o.Name, o.Platform, got)
	}
	return nil
}

// CreateConfig is syft's default cataloging with every remote or host-dependent look-up
// switched off and the tool version fixed: deterministic, offline. attest/dirsbom uses it too.
func CreateConfig() *syft.CreateSBOMConfig {
	cfg := syft.DefaultCreateSBOMConfig().WithTool("syft", SyftVersion())
	g := cfg.Packages.Golang
	g.SearchRemoteLicenses = false
	g.SearchLocalModCacheLicenses = false
	g.SearchLocalVendorLicenses = false
	g.LocalModCacheDir = ""
	g.LocalVendorDir = ""
	g.UsePackagesLib = false
	g.Proxies = nil
	g.NoProxy = nil
	cfg.Packages.Golang = g
	cfg.Packages.JavaScript.SearchRemoteLicenses = false
	cfg.Packages.JavaArchive.UseNetwork = false
	cfg.Packages.JavaArchive.UseMavenLocalRepository = false
	cfg.Packages.Python.SearchRemoteLicenses = false
	return cfg
}

// SyftVersion is the syft version recorded in the documents as the generating tool.
func SyftVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == syftModule {
				if d.Replace != nil && d.Replace.Version != "" {
					return d.Replace.Version
				}
				if d.Version != "" && d.Version != "(devel)" {
					return d.Version
				}
			}
		}
	}
	return pinnedSyftVersion
}

// identity is what Generate writes over syft's document-level fields.
type identity struct {
	opts Options
	plat platform
}

func (id identity) created() string { return id.opts.Created.UTC().Format(time.RFC3339) }

func (id identity) namespace() string {
	return namespaceBase + url.PathEscape(id.opts.Name) + "/" + id.plat.String() + "/" + id.opts.Digest.String()
}

func (id identity) serialNumber() string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(id.namespace())).URN()
}

// purl is pkg:oci/<name>@sha256%3A<hex>?arch=<arch>[&variant=<variant>] (purl-spec's oci type).
func (id identity) purl() string {
	q := "arch=" + url.QueryEscape(id.plat.arch)
	if id.plat.variant != "" {
		q += "&variant=" + url.QueryEscape(id.plat.variant)
	}
	return "pkg:oci/" + url.PathEscape(strings.ToLower(id.opts.Name)) + "@" +
		id.opts.Digest.Algorithm + "%3A" + id.opts.Digest.Hex + "?" + q
}

func (id identity) platformComment() string { return "platform: " + id.plat.String() }

func (id identity) applySPDX(doc *spdx.Document) error {
	doc.DocumentName = id.opts.Name + " " + id.plat.String()
	doc.DocumentNamespace = id.namespace()
	if doc.CreationInfo == nil {
		doc.CreationInfo = &spdx.CreationInfo{}
	}
	doc.CreationInfo.Created = id.created()

	root, err := describedPackage(doc)
	if err != nil {
		return err
	}
	root.PackageName = id.opts.Name
	root.PackageVersion = id.opts.Digest.String()
	root.PackageComment = id.platformComment()
	root.PackageChecksums = []spdx.Checksum{{Algorithm: spdx.SHA256, Value: id.opts.Digest.Hex}}
	var refs []*spdx.PackageExternalReference
	for _, r := range root.PackageExternalReferences {
		if r != nil && r.RefType != "purl" {
			refs = append(refs, r)
		}
	}
	root.PackageExternalReferences = append(refs, &spdx.PackageExternalReference{
		Category: "PACKAGE-MANAGER",
		RefType:  "purl",
		Locator:  id.purl(),
	})
	return nil
}

// describedPackage is the one package the SPDX document DESCRIBES: syft's root package for the image.
func describedPackage(doc *spdx.Document) (*spdx.Package, error) {
	var ids []spdx.ElementID
	for _, r := range doc.Relationships {
		if r != nil && r.Relationship == "DESCRIBES" && r.RefA.ElementRefID == "DOCUMENT" {
			ids = append(ids, r.RefB.ElementRefID)
		}
	}
	if len(ids) != 1 {
		return nil, fmt.Errorf("SPDX document describes %d elements, want the image alone", len(ids))
	}
	for _, p := range doc.Packages {
		if p != nil && p.PackageSPDXIdentifier == ids[0] {
			return p, nil
		}
	}
	return nil, fmt.Errorf("SPDX document describes %s, which is not a package", ids[0])
}

func (id identity) applyCycloneDX(bom *cyclonedx.BOM) {
	bom.SerialNumber = id.serialNumber()
	if bom.Metadata == nil {
		bom.Metadata = &cyclonedx.Metadata{}
	}
	bom.Metadata.Timestamp = id.created()
	c := bom.Metadata.Component
	if c == nil {
		c = &cyclonedx.Component{Type: cyclonedx.ComponentTypeContainer}
		bom.Metadata.Component = c
	}
	c.Name = id.opts.Name
	c.Version = id.opts.Digest.String()
	c.PackageURL = id.purl()
	c.Hashes = &[]cyclonedx.Hash{{Algorithm: cyclonedx.HashAlgoSHA256, Value: id.opts.Digest.Hex}}
	props := []cyclonedx.Property{{Name: "bitvault:platform", Value: id.plat.String()}}
	if c.Properties != nil {
		for _, p := range *c.Properties {
			if p.Name != "bitvault:platform" {
				props = append(props, p)
			}
		}
	}
	c.Properties = &props
}

// encodeJSON is what syft's spdxjson encoder does: compact JSON, no HTML escaping, one trailing newline.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// cycloneDXVersion is the spec version written (see the package comment).
const cycloneDXVersion = cyclonedx.SpecVersion1_6

// encodeCycloneDX is what syft's cyclonedxjson encoder does for version 1.6.
func encodeCycloneDX(bom *cyclonedx.BOM) ([]byte, error) {
	var buf bytes.Buffer
	enc := cyclonedx.NewBOMEncoder(&buf, cyclonedx.BOMFileFormatJSON)
	enc.SetPretty(false)
	enc.SetEscapeHTML(false)
	if err := enc.EncodeVersion(bom, cycloneDXVersion); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Summary counts the software packages in docs — the SPDX packages other than the image itself — for
// the release summary, and checks that both documents parse.
func Summary(docs *Documents) (packages int, err error) {
	if docs == nil {
		return 0, errors.New("sbom summary: no documents")
	}
	var s struct {
		SPDXVersion   string                    `json:"spdxVersion"`
		Packages      []struct{ SPDXID string } `json:"packages"`
		Relationships []struct {
			SPDXElementID      string `json:"spdxElementId"`
			RelatedSPDXElement string `json:"relatedSpdxElement"`
			RelationshipType   string `json:"relationshipType"`
		} `json:"relationships"`
	}
	if err := json.Unmarshal(docs.SPDX, &s); err != nil {
		return 0, fmt.Errorf("sbom summary: SPDX: %w", err)
	}
	if s.SPDXVersion == "" {
		return 0, errors.New("sbom summary: SPDX: no spdxVersion")
	}
	described := map[string]bool{}
	for _, r := range s.Relationships {
		if r.RelationshipType == "DESCRIBES" && r.SPDXElementID == "SPDXRef-DOCUMENT" {
			described[r.RelatedSPDXElement] = true
		}
	}
	for _, p := range s.Packages {
		if !described[p.SPDXID] {
			packages++
		}
	}
	var c struct {
		BOMFormat string `json:"bomFormat"`
	}
	if err := json.Unmarshal(docs.CycloneDX, &c); err != nil {
		return 0, fmt.Errorf("sbom summary: CycloneDX: %w", err)
	}
	if c.BOMFormat != "CycloneDX" {
		return 0, fmt.Errorf("sbom summary: CycloneDX: bomFormat %q", c.BOMFormat)
	}
	return packages, nil
}
