// Package dirsbom writes the SPDX 2.3 JSON software bill of materials of a
// directory — an extracted CLI release archive: the Go binary and what ships
// beside it — with syft (the version pinned in go.mod, as a library, the same
// cataloging configuration as attest/sbom: nothing looked up remotely), and
// reproducible byte for byte.
//
// Source: syft's directory source on the extracted archive, named by an alias
// (the archive's name and version) so that neither the temporary path nor the
// host appears in the document; file locations are relative to the archive's
// root. syft selects its directory catalogers, among them the Go binary
// cataloger, which reads the build info of ELF, Mach-O and PE executables, so
// one code path serves linux, darwin and windows.
//
// Determinism, as in attest/sbom: syft's own SPDX model (spdxhelpers) with the
// document name, namespace (https://bitvault.dev/spdx/cli/<name>/<version>/<os>/<arch>/<archive digest>)
// and creation time (Options.Created, the release's SOURCE_DATE_EPOCH)
// written over syft's wall clock and random UUID, encoded the way syft's
// spdxjson encoder does (compact, no HTML escaping, one trailing newline).
package dirsbom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/format/common/spdxhelpers"
	"github.com/anchore/syft/syft/source"
	"github.com/anchore/syft/syft/source/directorysource"
	"github.com/spdx/tools-golang/spdx"

	attestsbom "github.com/bitvault/bitvault/attest/sbom"
)

const namespaceBase = "https://bitvault.dev/spdx/cli/"

// Options say what the directory is.
type Options struct {
	Name     string    // the program, e.g. bitvault
	Version  string    // its release version, e.g. 1.2.3
	Platform string    // os/arch of the binary, e.g. darwin/arm64
	Archive  string    // the archive the directory was extracted from, e.g. bitvault_1.2.3_darwin_arm64.tar.gz
	Digest   string    // that archive's sha256:<hex>
	Created  time.Time // SOURCE_DATE_EPOCH: the only timestamp in the document
}

func (o Options) validate() error {
	for _, f := range []struct{ name, v string }{{"Name", o.Name}, {"Version", o.Version}, {"Platform", o.Platform}, {"Archive", o.Archive}} {
		if f.v == "" || strings.ContainsAny(f.v, " \t\n?#%") {
			return fmt.Errorf("sbom: %s %q: want a plain non-empty value", f.name, f.v)
		}
	}
	if len(o.Digest) != len("sha256:")+64 || !strings.HasPrefix(o.Digest, "sha256:") {
		return fmt.Errorf("sbom %s: digest %q: want sha256:<64 hex>", o.Archive, o.Digest)
	}
	if parts := strings.Split(o.Platform, "/"); len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return fmt.Errorf("sbom %s: platform %q: want os/arch", o.Archive, o.Platform)
	}
	if o.Created.IsZero() {
		return fmt.Errorf("sbom %s: no creation time: pass the release's SOURCE_DATE_EPOCH", o.Archive)
	}
	return nil
}

// Namespace is the SPDX document namespace of the SBOM for o.
func (o Options) Namespace() string {
	return namespaceBase + url.PathEscape(o.Name) + "/" + url.PathEscape(o.Version) + "/" + o.Platform + "/" + o.Digest
}

// SPDX catalogs dir and returns its SPDX 2.3 JSON document.
func SPDX(ctx context.Context, dir string, o Options) ([]byte, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("sbom %s: %s is not a directory (%v)", o.Archive, dir, err)
	}
	src, err := directorysource.New(directorysource.Config{
		Path: dir, Base: dir,
		Alias: source.Alias{Name: o.Name, Version: o.Version},
	})
	if err != nil {
		return nil, fmt.Errorf("sbom %s: %w", o.Archive, err)
	}
	defer src.Close() //nolint:errcheck // nothing to release for a directory

	s, err := syft.CreateSBOM(ctx, src, attestsbom.CreateConfig())
	if err != nil {
		return nil, fmt.Errorf("sbom %s: syft: %w", o.Archive, err)
	}
	doc := spdxhelpers.ToFormatModel(*s)
	if doc == nil {
		return nil, fmt.Errorf("sbom %s: syft gave no SPDX document", o.Archive)
	}
	doc.DocumentName = o.Archive
	doc.DocumentNamespace = o.Namespace()
	if doc.CreationInfo == nil {
		doc.CreationInfo = &spdx.CreationInfo{}
	}
	doc.CreationInfo.Created = o.Created.UTC().Format(time.RFC3339)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("sbom %s: encode SPDX: %w", o.Archive, err)
	}
	if strings.Contains(buf.String(), dir) {
		return nil, fmt.Errorf("sbom %s: the document names the scanned directory %s (not reproducible)", o.Archive, dir)
	}
	return buf.Bytes(), nil
}

// Packages counts the packages an SPDX document lists besides the described
// root, and checks that it parses.
func Packages(doc []byte) (int, error) {
	var s struct {
		SPDXVersion   string                    `json:"spdxVersion"`
		Packages      []struct{ SPDXID string } `json:"packages"`
		Relationships []struct {
			SPDXElementID      string `json:"spdxElementId"`
			RelatedSPDXElement string `json:"relatedSpdxElement"`
			RelationshipType   string `json:"relationshipType"`
		} `json:"relationships"`
	}
	if err := json.Unmarshal(doc, &s); err != nil {
		return 0, fmt.Errorf("SPDX: %w", err)
	}
	if s.SPDXVersion == "" {
		return 0, errors.New("SPDX: no spdxVersion")
	}
	described := map[string]bool{}
	for _, r := range s.Relationships {
		if r.RelationshipType == "DESCRIBES" && r.SPDXElementID == "SPDXRef-DOCUMENT" {
			described[r.RelatedSPDXElement] = true
		}
	}
	n := 0
	for _, p := range s.Packages {
		if !described[p.SPDXID] {
			n++
		}
	}
	return n, nil
}
