package bases

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bitvault/bitvault/internal/atomicfile"
)

// Annotations on each stand-in's image index and on its descriptor in the
// layout's index.json.
const (
	annotationRef     = "dev.bitvault.bases.ref"    // the FROM reference the index stands in for
	annotationKind    = "dev.bitvault.bases.kind"   // golang, distroless-static, ...
	annotationInputs  = "dev.bitvault.bases.inputs" // input-set hash: reruns with the same value are skipped
	annotationRefName = "org.opencontainers.image.ref.name"
)

// layoutDir is an OCI image layout written directly: blobs are written to a
// temporary file and renamed, index.json is replaced atomically under an
// flock, so the directory is valid at every instant and also usable as a
// containerd content store.
type layoutDir string

func (d layoutDir) path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

func (d layoutDir) blobPath(h v1.Hash) string { return d.path("blobs", h.Algorithm, h.Hex) }

func (d layoutDir) init() error {
	if err := os.MkdirAll(d.path("blobs", "sha256"), 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(d.path("oci-layout")); errors.Is(err, fs.ErrNotExist) {
		if err := atomicfile.Write(d.path("oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
			return err
		}
	}
	if _, err := os.Stat(d.path("index.json")); errors.Is(err, fs.ErrNotExist) {
		return d.writeIndexJSON(&v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}})
	}
	return nil
}

func (d layoutDir) readIndexJSON() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(d.path("index.json"))
	if err != nil {
		return nil, err
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	return &im, nil
}

func (d layoutDir) writeIndexJSON(im *v1.IndexManifest) error {
	b, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(d.path("index.json"), append(b, '\n'), 0o644)
}

func (d layoutDir) hasBlob(h v1.Hash, size int64) bool {
	st, err := os.Stat(d.blobPath(h))
	return err == nil && st.Mode().IsRegular() && st.Size() == size
}

func (d layoutDir) putBlob(h v1.Hash, data []byte) error {
	if d.hasBlob(h, int64(len(data))) {
		return nil
	}
	return atomicfile.Write(d.blobPath(h), data, 0o644)
}

// find returns the descriptor of the index for ref with the given
// input-set hash, if index.json lists it and every blob below it is present.
func (d layoutDir) find(ref, inputs string) (*v1.Descriptor, []string, error) {
	im, err := d.readIndexJSON()
	if err != nil {
		return nil, nil, err
	}
	for _, desc := range im.Manifests {
		if desc.Annotations[annotationRef] != ref || desc.Annotations[annotationInputs] != inputs {
			continue
		}
		plats, ok := d.complete(desc)
		if ok {
			return &desc, plats, nil
		}
	}
	return nil, nil, nil
}

// complete checks that the index and all its manifests, configs and layers
// are in the layout; it returns the index's platforms.
func (d layoutDir) complete(desc v1.Descriptor) ([]string, bool) {
	var idx v1.IndexManifest
	if !d.readJSON(desc, &idx) {
		return nil, false
	}
	var plats []string
	for _, md := range idx.Manifests {
		var m v1.Manifest
		if !d.readJSON(md, &m) || md.Platform == nil || !d.hasBlob(m.Config.Digest, m.Config.Size) {
			return nil, false
		}
		for _, l := range m.Layers {
			if !d.hasBlob(l.Digest, l.Size) {
				return nil, false
			}
		}
		plats = append(plats, md.Platform.OS+"/"+md.Platform.Architecture)
	}
	return plats, len(plats) > 0
}

func (d layoutDir) readJSON(desc v1.Descriptor, v any) bool {
	b, err := os.ReadFile(d.blobPath(desc.Digest))
	if err != nil || int64(len(b)) != desc.Size || sha256Hash(b) != desc.Digest {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

// writeStandin writes the platform images and their index, then points
// index.json at it (replacing any earlier index for the same ref).
func (d layoutDir) writeStandin(s Standin, inputs string, imgs []*image) (v1.Descriptor, error) {
	ann := map[string]string{annotationRef: s.Ref, annotationKind: s.Kind, annotationInputs: inputs}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Annotations: ann}
	for _, img := range imgs {
		for _, l := range img.layers {
			if err := d.putBlob(l.digest, l.gz); err != nil {
				return v1.Descriptor{}, err
			}
		}
		ch := sha256Hash(img.config)
		if err := d.putBlob(ch, img.config); err != nil {
			return v1.Descriptor{}, err
		}
		mh := sha256Hash(img.manifest)
		if err := d.putBlob(mh, img.manifest); err != nil {
			return v1.Descriptor{}, err
		}
		idx.Manifests = append(idx.Manifests, v1.Descriptor{
			MediaType: types.OCIManifestSchema1,
			Size:      int64(len(img.manifest)),
			Digest:    mh,
			Platform:  &v1.Platform{OS: "linux", Architecture: img.platform.arch},
		})
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	desc := v1.Descriptor{MediaType: types.OCIImageIndex, Size: int64(len(raw)), Digest: sha256Hash(raw)}
	if err := d.putBlob(desc.Digest, raw); err != nil {
		return v1.Descriptor{}, err
	}
	desc.Annotations = map[string]string{annotationRef: s.Ref, annotationKind: s.Kind, annotationInputs: inputs, annotationRefName: s.Ref}
	return desc, d.setRef(desc)
}

// setRef replaces index.json's entry for the descriptor's ref.
func (d layoutDir) setRef(desc v1.Descriptor) error {
	unlock, err := flock(d.path(".index.json.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	im, err := d.readIndexJSON()
	if err != nil {
		return err
	}
	ref := desc.Annotations[annotationRef]
	kept := []v1.Descriptor{}
	for _, m := range im.Manifests {
		if m.Annotations[annotationRef] != ref {
			kept = append(kept, m)
		}
	}
	kept = append(kept, desc)
	sort.SliceStable(kept, func(i, j int) bool {
		return kept[i].Annotations[annotationRefName] < kept[j].Annotations[annotationRefName]
	})
	im.Manifests = kept
	return d.writeIndexJSON(im)
}
