package referrers_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bitvault/bitvault/attest/referrers"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
)

// newRegistry serves pkg/registry with or without the referrers API and pushes a random
// two-manifest index to it.
func newRegistry(t *testing.T, referrersAPI bool) registrytest.Fixture {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(referrersAPI)))
	t.Cleanup(srv.Close)
	repo, err := name.NewRepository(strings.TrimPrefix(srv.URL, "http://") + "/bitvault/bitvaultd")
	if err != nil {
		t.Fatal(err)
	}
	return registrytest.Push(t, repo, 2)
}

func artifacts() []referrers.Artifact {
	return []referrers.Artifact{
		{ArtifactType: referrers.SPDX, Data: []byte(`{"spdxVersion":"SPDX-2.3"}`), Title: "linux-amd64.spdx.json"},
		{ArtifactType: referrers.CycloneDX, Data: []byte(`{"bomFormat":"CycloneDX"}`), Title: "linux-amd64.cdx.json"},
		{ArtifactType: referrers.TrivyReport, Data: []byte(`{"SchemaVersion":2}`), Title: "linux-amd64.trivy.json"},
		{ArtifactType: referrers.SARIF, Data: []byte(`{"version":"2.1.0","runs":[]}`), Title: "linux-amd64.sarif"},
	}
}

var modes = []struct {
	name string
	api  bool
	via  referrers.Via
}{
	{"referrers API", true, referrers.API},
	{"no referrers API", false, referrers.FallbackTag},
}

// TestPush: in both registry modes Push reports the path the registry takes, every artifact
// is an OCI 1.1 artifact manifest about the platform manifest, the fallback tag exists exactly
// when the registry has no referrers API, and pushing again changes nothing.
func TestPush(t *testing.T) {
	ctx := context.Background()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			f := newRegistry(t, m.api)
			subject := f.Children[0]
			if via, err := referrers.Probe(ctx, subject); err != nil || via != m.via {
				t.Fatalf("Probe = %s, %v; want %s", via, err, m.via)
			}
			res, err := referrers.Push(ctx, subject, artifacts())
			if err != nil {
				t.Fatal(err)
			}
			if res.Via != m.via || len(res.Artifacts) != 4 || res.Subject.Digest.String() != subject.DigestStr() {
				t.Fatalf("Push = %+v, want %s and 4 artifacts about %s", res, m.via, subject.DigestStr())
			}
			for i, p := range res.Artifacts {
				desc, err := remote.Get(f.Repo.Digest(p.Digest.String()))
				if err != nil {
					t.Fatal(err)
				}
				var man v1.Manifest
				if err := json.Unmarshal(desc.Manifest, &man); err != nil {
					t.Fatal(err)
				}
				want := artifacts()[i]
				if desc.MediaType != types.OCIManifestSchema1 || man.ArtifactType != want.ArtifactType ||
					man.Config.MediaType != types.OCIEmptyJSON || man.Config.Size != 2 ||
					len(man.Layers) != 1 || man.Layers[0].MediaType != types.MediaType(want.ArtifactType) || man.Layers[0].Annotations[referrers.TitleAnnotation] != want.Title ||
					man.Subject == nil || man.Subject.Digest.String() != subject.DigestStr() || man.Subject.MediaType != res.Subject.MediaType || man.Subject.Size != res.Subject.Size {
					t.Errorf("artifact %s: %s", want.ArtifactType, desc.Manifest)
				}
			}
			fallback := f.Repo.Tag(strings.Replace(subject.DigestStr(), ":", "-", 1))
			_, err = remote.Head(fallback)
			if m.api && err == nil {
				t.Errorf("the registry has the referrers API, yet %s was written", fallback)
			}
			if !m.api && err != nil {
				t.Errorf("no referrers API and no fallback tag %s: %v", fallback, err)
			}
			again, err := referrers.Push(ctx, subject, artifacts())
			if err != nil {
				t.Fatal(err)
			}
			for i := range again.Artifacts {
				if again.Artifacts[i].Digest != res.Artifacts[i].Digest {
					t.Errorf("%s: pushed again as %s, was %s", again.Artifacts[i].ArtifactType, again.Artifacts[i].Digest, res.Artifacts[i].Digest)
				}
			}
			all, via, err := referrers.List(ctx, subject, "")
			if err != nil || via != m.via || len(all) != 4 {
				t.Fatalf("List after pushing twice: %d referrers via %s (%v), want 4 via %s", len(all), via, err, m.via)
			}
		})
	}
}

// TestListAndVerify: List filters by artifactType through either path; Verify names what a
// manifest lacks.
func TestListAndVerify(t *testing.T) {
	ctx := context.Background()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			f := newRegistry(t, m.api)
			res, err := referrers.Push(ctx, f.Children[0], artifacts()[:3]) // no SARIF
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				subject      name.Digest
				artifactType string
				want         int
			}{
				{f.Children[0], referrers.SPDX, 1},
				{f.Children[0], referrers.CycloneDX, 1},
				{f.Children[0], referrers.TrivyReport, 1},
				{f.Children[0], referrers.SARIF, 0},
				{f.Children[0], "", 3},
				{f.Children[1], "", 0},
				{f.Index, referrers.SPDX, 0},
			} {
				got, via, err := referrers.List(ctx, tc.subject, tc.artifactType)
				if err != nil || via != m.via || len(got) != tc.want {
					t.Errorf("List(%s, %q) = %d via %s (%v), want %d via %s", tc.subject.DigestStr()[:15], tc.artifactType, len(got), via, err, tc.want, m.via)
				}
				for _, d := range got {
					if tc.artifactType != "" && d.ArtifactType != tc.artifactType {
						t.Errorf("List(%q) returned a %s", tc.artifactType, d.ArtifactType)
					}
				}
			}
			spdx := res.Artifacts[0]
			otherFile := spdx
			otherFile.Digest, otherFile.Layer = v1.Hash{}, v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
			for _, tc := range []struct {
				name    string
				subject name.Digest
				want    []referrers.Pushed
				missing []string
			}{
				{"all there", f.Children[0], res.Artifacts, nil},
				{"by type only", f.Children[0], []referrers.Pushed{{ArtifactType: referrers.SPDX}, {ArtifactType: referrers.TrivyReport}}, nil},
				{"SARIF missing", f.Children[0], []referrers.Pushed{{ArtifactType: referrers.SPDX}, {ArtifactType: referrers.SARIF}}, []string{referrers.SARIF}},
				{"another file", f.Children[0], []referrers.Pushed{otherFile}, []string{referrers.SPDX + " (file sha256:000"}},
				{"other manifest", f.Children[1], res.Artifacts, []string{referrers.SPDX, referrers.CycloneDX, referrers.TrivyReport}},
			} {
				via, err := referrers.Verify(ctx, tc.subject, tc.want)
				if via != m.via {
					t.Errorf("%s: via %s, want %s", tc.name, via, m.via)
				}
				if tc.missing == nil {
					if err != nil {
						t.Errorf("%s: %v", tc.name, err)
					}
					continue
				}
				var me *referrers.MissingError
				if !errors.As(err, &me) || len(me.Missing) != len(tc.missing) {
					t.Errorf("%s: err = %v, want %v missing", tc.name, err, tc.missing)
					continue
				}
				for _, w := range tc.missing {
					if !strings.Contains(err.Error(), w) || !strings.Contains(err.Error(), tc.subject.DigestStr()) {
						t.Errorf("%s: %q does not name %s and the manifest", tc.name, err, w)
					}
				}
			}
		})
	}
}

func TestManifestRefusesEmpty(t *testing.T) {
	sub := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}, Size: 1}
	for _, a := range []referrers.Artifact{{Data: []byte("{}")}, {ArtifactType: referrers.SPDX}} {
		if _, _, err := referrers.Manifest(sub, a); err == nil {
			t.Errorf("Manifest(%+v) accepted", a)
		}
	}
}
