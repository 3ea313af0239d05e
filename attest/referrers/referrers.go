// Package referrers pushes files about an image (SBOMs, scan reports) as OCI 1.1 artifacts that
// refer to it, and finds them again.
//
// An artifact is an OCI image manifest with artifactType set, the empty config
// (application/vnd.oci.empty.v1+json, "{}"), one layer holding the file (its media type is the
// artifact type; annotation org.opencontainers.image.title names the file) and subject = the
// descriptor of the manifest it is about. Same file, same subject: same manifest digest, so
// pushing again writes nothing new.
//
// Referrers API or fallback tag: go-containerregistry (v0.22.1, remote.Put/Write) decides by
// probing GET /v2/<repo>/referrers/<subject digest> before it writes a manifest with a
// subject: 200 means the registry keeps the list itself; 404 or 400 means it does not, and
// go-containerregistry adds the artifact to the image index tagged sha256-<hex> (the OCI
// distribution spec's referrers tag schema). It does not look at the OCI-Subject response
// header (and pkg/registry never sends one), so neither does this package: Probe makes the same
// request (remote.Referrers with the tag fallback turned off) and Push reports what it found,
// then lists the subject's referrers through that path to check that every artifact is there.
//
// Listing: remote.Referrers reads the API or, where the registry has none, the fallback tag.
// The artifactType filter is applied here, on the artifact manifest's own artifactType: some
// registries (pkg/registry among them) list an artifact under its config media type, which for
// these artifacts is the empty config's.
package referrers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Artifact types of the files bvrelease attaches.
const (
	SPDX        = "application/spdx+json"
	CycloneDX   = "application/vnd.cyclonedx+json"
	TrivyReport = "application/vnd.trivy.report+json"
	SARIF       = "application/sarif+json"
)

// TitleAnnotation names the file a layer holds (what ORAS uses to name it on pull).
const TitleAnnotation = "org.opencontainers.image.title"

// emptyConfig is the OCI empty descriptor's content.
var emptyConfig = []byte("{}")

// Via says how a registry lists the referrers of a manifest.
type Via string

const (
	// API: the registry serves GET /v2/<repo>/referrers/<digest> (OCI distribution 1.1).
	API Via = "referrers-api"
	// FallbackTag: it does not; the list is the index tagged sha256-<hex>, kept by the client.
	FallbackTag Via = "fallback-tag"
)

// String is how the release log says it.
func (v Via) String() string {
	switch v {
	case API:
		return "referrers API"
	case FallbackTag:
		return "fallback tag"
	}
	return string(v)
}

// Artifact is one file to attach.
type Artifact struct {
	ArtifactType string
	Data         []byte
	Title        string            // file name for the layer's title annotation; optional
	Annotations  map[string]string // manifest annotations; optional, keep them stable
}

// Pushed is one artifact manifest in the registry.
type Pushed struct {
	ArtifactType string  `json:"artifact_type"`
	Digest       v1.Hash `json:"digest"` // the artifact manifest
	Layer        v1.Hash `json:"layer"`  // the file
	Title        string  `json:"title,omitempty"`
}

// Result is what Push did.
type Result struct {
	Subject   v1.Descriptor
	Via       Via
	Artifacts []Pushed
}

// Manifest builds the artifact manifest of a for subject and returns it with its layer.
func Manifest(subject v1.Descriptor, a Artifact) ([]byte, v1.Layer, error) {
	if a.ArtifactType == "" {
		return nil, nil, errors.New("artifact without artifactType")
	}
	if len(a.Data) == 0 {
		return nil, nil, fmt.Errorf("%s artifact is empty", a.ArtifactType)
	}
	layer := static.NewLayer(a.Data, types.MediaType(a.ArtifactType))
	ld, err := layer.Digest()
	if err != nil {
		return nil, nil, err
	}
	cd, csz, err := v1.SHA256(strings.NewReader(string(emptyConfig)))
	if err != nil {
		return nil, nil, err
	}
	ldesc := v1.Descriptor{MediaType: types.MediaType(a.ArtifactType), Digest: ld, Size: int64(len(a.Data))}
	if a.Title != "" {
		ldesc.Annotations = map[string]string{TitleAnnotation: a.Title}
	}
	sub := v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  a.ArtifactType,
		Config:        v1.Descriptor{MediaType: types.OCIEmptyJSON, Digest: cd, Size: csz, Data: emptyConfig},
		Layers:        []v1.Descriptor{ldesc},
		Subject:       &sub,
		Annotations:   a.Annotations,
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, nil, err
	}
	return b, layer, nil
}

type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// Probe reports whether the registry serves the referrers API for subject's repository: the
// request go-containerregistry makes to decide between the API and the fallback tag.
func Probe(ctx context.Context, subject name.Digest, opts ...remote.Option) (Via, error) {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	_, err := remote.Referrers(subject, append(opts, remote.WithReferrersTagFallback(false))...)
	switch {
	case err == nil:
		return API, nil
	case strings.Contains(err.Error(), "does not support the Referrers API"):
		return FallbackTag, nil
	default:
		return "", fmt.Errorf("referrers of %s: %w", subject, err)
	}
}

// Push writes each artifact with subject (a manifest in the registry, by digest) as its
// subject, in subject's repository, and returns how the registry lists them. Pushing the same
// artifacts again is harmless: the manifests are the same and the fallback tag already lists
// them. Every artifact must be listed afterwards, or Push fails.
func Push(ctx context.Context, subject name.Digest, arts []Artifact, opts ...remote.Option) (*Result, error) {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	desc, err := remote.Head(subject, opts...)
	if err != nil {
		return nil, fmt.Errorf("referrers: subject %s: %w", subject, err)
	}
	via, err := Probe(ctx, subject, opts...)
	if err != nil {
		return nil, err
	}
	res := &Result{Subject: v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}, Via: via}
	repo := subject.Context()
	cfg := static.NewLayer(emptyConfig, types.OCIEmptyJSON)
	if err := remote.WriteLayer(repo, cfg, opts...); err != nil {
		return nil, fmt.Errorf("referrers: %s: empty config: %w", repo, err)
	}
	for _, a := range arts {
		raw, layer, err := Manifest(res.Subject, a)
		if err != nil {
			return nil, fmt.Errorf("referrers: %s: %w", subject, err)
		}
		if err := remote.WriteLayer(repo, layer, opts...); err != nil {
			return nil, fmt.Errorf("referrers: %s: %s layer: %w", subject, a.ArtifactType, err)
		}
		h, _, err := v1.SHA256(strings.NewReader(string(raw)))
		if err != nil {
			return nil, err
		}
		// Put (not Write): it always commits the manifest, so go-containerregistry also
		// (re)adds it to the fallback tag where the registry has no referrers API — a run
		// interrupted between the two is repaired.
		if err := remote.Put(repo.Digest(h.String()), rawManifest(raw), opts...); err != nil {
			return nil, fmt.Errorf("referrers: %s: %s artifact: %w", subject, a.ArtifactType, err)
		}
		ld, _ := layer.Digest()
		res.Artifacts = append(res.Artifacts, Pushed{ArtifactType: a.ArtifactType, Digest: h, Layer: ld, Title: a.Title})
	}
	if _, err := Verify(ctx, subject, res.Artifacts, opts...); err != nil {
		return res, err
	}
	return res, nil
}

// List returns the descriptors of subject's referrers — through the referrers API or the
// fallback tag, whichever the registry has (remote.Referrers) — whose artifactType is
// artifactType ("" = all), with the artifactType read from each artifact manifest where the
// registry's list does not give it or gives the config media type; and the path it took.
func List(ctx context.Context, subject name.Digest, artifactType string, opts ...remote.Option) ([]v1.Descriptor, Via, error) {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	via, err := Probe(ctx, subject, opts...)
	if err != nil {
		return nil, "", err
	}
	idx, err := remote.Referrers(subject, opts...)
	if err != nil {
		return nil, via, fmt.Errorf("referrers of %s (%s): %w", subject, via, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, via, fmt.Errorf("referrers of %s (%s): %w", subject, via, err)
	}
	var out []v1.Descriptor
	for _, d := range im.Manifests {
		if d.ArtifactType == "" || d.ArtifactType == string(types.OCIEmptyJSON) {
			m, err := manifest(subject.Context().Digest(d.Digest.String()), opts)
			if err != nil {
				return nil, via, fmt.Errorf("referrers of %s (%s): %w", subject, via, err)
			}
			if m.ArtifactType != "" {
				d.ArtifactType = m.ArtifactType
			} else {
				d.ArtifactType = string(m.Config.MediaType)
			}
		}
		if artifactType == "" || d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out, via, nil
}

func manifest(ref name.Digest, opts []remote.Option) (*v1.Manifest, error) {
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return &m, nil
}

// MissingError names the artifacts a manifest lacks.
type MissingError struct {
	Subject name.Digest
	Via     Via
	Missing []string // "application/spdx+json (layer sha256:…)"
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s: no referrer (via %s) for %s", e.Subject, e.Via, strings.Join(e.Missing, ", "))
}

// Verify checks that subject has, for each wanted artifact, a referrer of its artifact type
// whose subject is subject and whose one layer is the same file (Layer digest; a zero Layer
// accepts any file of that type). It returns the path it found them through; a *MissingError
// names what is absent.
func Verify(ctx context.Context, subject name.Digest, want []Pushed, opts ...remote.Option) (Via, error) {
	all, via, err := List(ctx, subject, "", opts...)
	if err != nil {
		return via, err
	}
	missing := &MissingError{Subject: subject, Via: via}
	for _, w := range want {
		found := false
		for _, d := range all {
			if d.ArtifactType != w.ArtifactType {
				continue
			}
			if w.Digest != (v1.Hash{}) && d.Digest != w.Digest {
				continue
			}
			m, err := manifest(subject.Context().Digest(d.Digest.String()), opts)
			if err != nil {
				return via, err
			}
			if m.Subject == nil || m.Subject.Digest.String() != subject.DigestStr() || len(m.Layers) != 1 {
				continue
			}
			if w.Layer != (v1.Hash{}) && m.Layers[0].Digest != w.Layer {
				continue
			}
			found = true
			break
		}
		if !found {
			s := w.ArtifactType
			if w.Layer != (v1.Hash{}) {
				s += " (file " + w.Layer.String() + ")"
			}
			missing.Missing = append(missing.Missing, s)
		}
	}
	if len(missing.Missing) > 0 {
		return via, missing
	}
	return via, nil
}
