// Package builder builds OCI images with BuildKit: one solve per image for all
// platforms, through the Dockerfile frontend built into buildkitd (no
// `# syntax=` image is pulled), with SOURCE_DATE_EPOCH and the exporter's
// rewrite-timestamp so the same inputs give byte-identical digests.
//
// Every build lands in one local OCI image layout (dist/oci), the hub later
// stages read: its index.json has one entry per artifact, annotated with the
// artifact name (org.opencontainers.image.ref.name) — never with a tag.
package builder

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/util/progress/progressui"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"
)

// AnnotationArtifact marks a layout entry with the artifact it holds.
const AnnotationArtifact = ocispecs.AnnotationRefName

// NamedContext replaces a FROM reference with an image from a local OCI layout.
type NamedContext struct {
	Ref    string  // the FROM reference exactly as written, tag and digest included
	Layout string  // OCI layout directory holding the replacement index
	Digest v1.Hash // the replacement index
}

// Request is one image to build.
type Request struct {
	Name            string // artifact name; the layout entry's name
	ContextDir      string
	Dockerfile      string // path to the Dockerfile
	Target          string
	Platforms       []string
	BuildArgs       map[string]string
	SourceDateEpoch int64
	Bases           []NamedContext
	Secrets         map[string][]byte
	NoCache         bool
}

// Manifest is one platform's image in a built index.
type Manifest struct {
	Platform string  `json:"platform"`
	Digest   v1.Hash `json:"digest"`
	Size     int64   `json:"size"`
	// ImageSize is the compressed size of the image: config plus layers.
	ImageSize int64 `json:"image_size"`
}

// Result is a built image index.
type Result struct {
	Name      string        `json:"name"`
	Digest    v1.Hash       `json:"digest"`
	Manifests []Manifest    `json:"manifests"`
	Duration  time.Duration `json:"duration"`
}

// Builder solves Requests on a BuildKit client into an OCI layout.
type Builder struct {
	Client *client.Client
	Layout string    // OCI layout directory (created if missing)
	Out    io.Writer // progress display; nil discards
	// Progress is BuildKit's display mode: auto, tty, plain, rawjson or quiet.
	Progress string
}

// Build runs one solve for r and records the index in the layout.
func (b *Builder) Build(ctx context.Context, r Request) (*Result, error) {
	start := time.Now()
	res, err := b.build(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", r.Name, err)
	}
	res.Duration = time.Since(start)
	return res, nil
}

func (b *Builder) build(ctx context.Context, r Request) (*Result, error) {
	if len(r.Platforms) == 0 {
		return nil, fmt.Errorf("no platforms")
	}
	lp, err := OpenLayout(b.Layout)
	if err != nil {
		return nil, err
	}
	store, err := contentlocal.NewStore(b.Layout)
	if err != nil {
		return nil, fmt.Errorf("open %s as a content store: %w", b.Layout, err)
	}
	ctxFS, err := fsutil.NewFS(r.ContextDir)
	if err != nil {
		return nil, fmt.Errorf("context %s: %w", r.ContextDir, err)
	}
	dfFS, err := fsutil.NewFS(filepath.Dir(r.Dockerfile))
	if err != nil {
		return nil, fmt.Errorf("dockerfile %s: %w", r.Dockerfile, err)
	}

	attrs := map[string]string{
		"filename":                    filepath.Base(r.Dockerfile),
		"platform":                    strings.Join(r.Platforms, ","),
		"build-arg:SOURCE_DATE_EPOCH": strconv.FormatInt(r.SourceDateEpoch, 10),
	}
	if r.Target != "" {
		attrs["target"] = r.Target
	}
	for k, v := range r.BuildArgs {
		attrs["build-arg:"+k] = v
	}
	if r.NoCache {
		attrs["no-cache"] = ""
	}
	ociStores := map[string]content.Store{}
	for i, nc := range r.Bases {
		key := fmt.Sprintf("base%d", i)
		s, err := contentlocal.NewStore(nc.Layout)
		if err != nil {
			return nil, fmt.Errorf("base layout %s: %w", nc.Layout, err)
		}
		ociStores[key] = s
		attrs["context:"+nc.Ref] = "oci-layout://" + key + "@" + nc.Digest.String()
	}

	var attachables []session.Attachable
	if len(r.Secrets) > 0 {
		attachables = append(attachables, secretsprovider.FromMap(maps.Clone(r.Secrets)))
	}
	opt := client.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		OCIStores:     ociStores,
		Session:       attachables,
		Exports: []client.ExportEntry{{
			Type: client.ExporterOCI,
			Attrs: map[string]string{
				"rewrite-timestamp": "true",
				"oci-mediatypes":    "true",
				"compression":       "gzip",
				"tar":               "false",
			},
			OutputStore: store,
		}},
	}

	ch := make(chan *client.SolveStatus)
	displayErr := make(chan error, 1)
	go func() { displayErr <- b.display(ctx, r.Name, ch) }()
	resp, err := b.Client.Solve(ctx, nil, opt, ch)
	if derr := <-displayErr; err == nil && derr != nil {
		err = derr
	}
	if err != nil {
		return nil, err
	}

	encoded, ok := resp.ExporterResponse[exptypes.ExporterImageDescriptorKey]
	if !ok {
		return nil, fmt.Errorf("BuildKit returned no image descriptor")
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fmt.Errorf("decode image descriptor: %w", err)
	}
	var desc v1.Descriptor
	if err := json.Unmarshal(raw, &desc); err != nil {
		return nil, fmt.Errorf("decode image descriptor: %w", err)
	}
	if !desc.MediaType.IsIndex() {
		return nil, fmt.Errorf("BuildKit returned a %s, want an image index for %v", desc.MediaType, r.Platforms)
	}
	desc.Annotations = map[string]string{AnnotationArtifact: r.Name}
	desc.Platform = nil
	if err := lp.RemoveDescriptors(match.Annotation(AnnotationArtifact, r.Name)); err != nil {
		return nil, fmt.Errorf("record %s in %s: %w", r.Name, b.Layout, err)
	}
	if err := lp.AppendDescriptor(desc); err != nil {
		return nil, fmt.Errorf("record %s in %s: %w", r.Name, b.Layout, err)
	}
	return Describe(lp, r.Name)
}

func (b *Builder) display(ctx context.Context, name string, ch chan *client.SolveStatus) error {
	out := b.Out
	mode := progressui.DisplayMode(b.Progress)
	if out == nil || b.Progress == "quiet" {
		out, mode = io.Discard, progressui.QuietMode
	}
	if mode == "" {
		mode = progressui.AutoMode
	}
	d, err := progressui.NewDisplay(out, mode, progressui.WithPhase("build "+name))
	if err != nil {
		// tty requested without a terminal: fall back to plain rather than fail the build.
		if d, err = progressui.NewDisplay(out, progressui.PlainMode, progressui.WithPhase("build "+name)); err != nil {
			for range ch {
			}
			return err
		}
	}
	_, err = d.UpdateFrom(context.WithoutCancel(ctx), ch)
	return err
}

// OpenLayout opens (or creates) the OCI layout at dir.
func OpenLayout(dir string) (layout.Path, error) {
	if lp, err := layout.FromPath(dir); err == nil {
		return lp, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return "", fmt.Errorf("create OCI layout %s: %w", dir, err)
	}
	return lp, nil
}

// Index returns the artifact's image index from the layout.
func Index(lp layout.Path, name string) (v1.ImageIndex, v1.Descriptor, error) {
	root, err := lp.ImageIndex()
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	im, err := root.IndexManifest()
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	for _, d := range im.Manifests {
		if d.Annotations[AnnotationArtifact] == name {
			idx, err := root.ImageIndex(d.Digest)
			if err != nil {
				return nil, d, fmt.Errorf("%s in %s: %w", name, lp, err)
			}
			return idx, d, nil
		}
	}
	return nil, v1.Descriptor{}, fmt.Errorf("%s is not in %s; build it first ('bvrelease build')", name, lp)
}

// Describe lists the artifact's index digest and platform manifests.
func Describe(lp layout.Path, name string) (*Result, error) {
	idx, desc, err := Index(lp, name)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	res := &Result{Name: name, Digest: desc.Digest}
	for _, m := range im.Manifests {
		if m.Platform == nil || m.Platform.OS == "unknown" {
			continue // attestation manifests, if a daemon adds them
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", name, m.Platform, err)
		}
		mf, err := img.Manifest()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", name, m.Platform, err)
		}
		size := mf.Config.Size
		for _, l := range mf.Layers {
			size += l.Size
		}
		res.Manifests = append(res.Manifests, Manifest{Platform: m.Platform.String(), Digest: m.Digest, Size: m.Size, ImageSize: size})
	}
	slices.SortFunc(res.Manifests, func(a, b Manifest) int { return strings.Compare(a.Platform, b.Platform) })
	return res, nil
}
