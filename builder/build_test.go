package builder_test

import (
	"context"
	"testing"

	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/internal/testsupport/buildkittest"
)

func TestMain(m *testing.M) { buildkittest.Main(m, "builder") }

func TestBuildMultiPlatformReproducible(t *testing.T) {
	d := buildkittest.Daemon(t)
	ctx := context.Background()
	req := builder.Request{
		Name:            "hello",
		ContextDir:      "testdata/scratch",
		Dockerfile:      "testdata/scratch/Dockerfile",
		Platforms:       []string{"linux/amd64", "linux/arm64"},
		SourceDateEpoch: 1700000000,
	}
	first := &builder.Builder{Client: d.Client, Layout: t.TempDir(), Progress: "quiet"}
	a, err := first.Build(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Manifests) != 2 || a.Manifests[0].Platform != "linux/amd64" || a.Manifests[1].Platform != "linux/arm64" {
		t.Fatalf("manifests = %+v, want linux/amd64 and linux/arm64", a.Manifests)
	}
	req.NoCache = true
	second := &builder.Builder{Client: d.Client, Layout: t.TempDir(), Progress: "quiet"}
	b, err := second.Build(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != b.Digest {
		t.Fatalf("index digest differs between a cached and a --no-cache build: %s vs %s", a.Digest, b.Digest)
	}
	// Rebuilding into the same layout replaces the entry rather than adding one.
	if _, err := first.Build(ctx, req); err != nil {
		t.Fatal(err)
	}
	lp, _ := builder.OpenLayout(first.Layout)
	root, _ := lp.ImageIndex()
	im, _ := root.IndexManifest()
	if len(im.Manifests) != 1 {
		t.Fatalf("layout has %d entries after a rebuild, want 1", len(im.Manifests))
	}
}
