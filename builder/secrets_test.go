package builder_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/internal/testsupport/buildkittest"
	"github.com/bitvault/bitvault/internal/testsupport/imagetest"
)

// busyboxIndex writes a two-platform index of the host's static busybox (amd64
// content; only amd64 is run here) to a layout and returns its digest.
func busyboxIndex(t *testing.T, dir string) v1.Hash {
	t.Helper()
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("needs /bin/busybox (apt-get install busybox-static)")
	}
	layer := imagetest.Layer(t, imagetest.Dir("bin"), imagetest.Reg("bin/busybox", 0o755, bin), imagetest.Symlink("bin/sh", "busybox"))
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img := imagetest.Image(t, "linux", arch, func(cf *v1.ConfigFile) { cf.Config.Env = []string{"PATH=/bin"} }, layer)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	lp, err := builder.OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSecretNeverLands builds with a BuildKit secret that a RUN step reads,
// then searches every blob of the exported layout (layers decompressed,
// configs with their history) for the secret: it must be nowhere.
func TestSecretNeverLands(t *testing.T) {
	d := buildkittest.Daemon(t)
	const secret = "ghp_bitvaultTESTsecretVALUE0123456789abcd"
	bases := t.TempDir()
	digest := busyboxIndex(t, bases)
	ref := "bvtest/busybox:1@" + digest.String()
	ctxDir := t.TempDir()
	df := `FROM --platform=$BUILDPLATFORM ` + ref + ` AS build
RUN --mount=type=secret,id=token,required=true busybox wc -c /run/secrets/token > /token-length && busybox sha256sum /run/secrets/token | busybox cut -c1-8 > /token-hash-prefix
FROM scratch
COPY --from=build /token-length /token-hash-prefix /
`
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	b := &builder.Builder{Client: d.Client, Layout: out, Progress: "quiet"}
	for _, target := range []string{"build", ""} { // the build stage too: nothing there either
		_, err := b.Build(context.Background(), builder.Request{
			Name:            "secret-test" + target,
			ContextDir:      ctxDir,
			Dockerfile:      filepath.Join(ctxDir, "Dockerfile"),
			Target:          target,
			Platforms:       []string{"linux/amd64", "linux/arm64"},
			SourceDateEpoch: 1700000000,
			Bases:           []builder.NamedContext{{Ref: ref, Layout: bases, Digest: digest}},
			Secrets:         map[string][]byte{"token": []byte(secret)},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The secret was really used: its length landed in the image.
	var sawLength bool
	blobs, err := filepath.Glob(filepath.Join(out, "blobs", "sha256", "*"))
	if err != nil || len(blobs) == 0 {
		t.Fatalf("no blobs in %s (%v)", out, err)
	}
	for _, p := range blobs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
			if plain, err := io.ReadAll(zr); err == nil {
				data = plain
			}
		}
		if bytes.Contains(data, []byte(secret)) || bytes.Contains(data, []byte(secret[4:20])) {
			t.Errorf("the secret appears in blob %s", filepath.Base(p))
		}
		if strings.Contains(string(data), fmt.Sprintf("%d /run/secrets/token", len(secret))) {
			sawLength = true
		}
	}
	if !sawLength {
		t.Error("no layer records the secret's length: the RUN step did not see the secret, so this test proves nothing")
	}
}
