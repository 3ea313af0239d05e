package ghrelease_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitvault/bitvault/release/dist/ghrelease"
	"github.com/bitvault/bitvault/release/dist/ghrelease/ghreleasetest"
)

func newServer(t *testing.T, digests bool) *ghreleasetest.Server {
	return ghreleasetest.New(t, "bitvault", "bitvault", "ghs_test", digests)
}

// client is configured as in GitHub Actions on GitHub Enterprise: GITHUB_API_URL.
func client(t *testing.T, gh *ghreleasetest.Server) *ghrelease.Client {
	c, err := ghrelease.FromEnv(gh.Token, gh.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func files(t *testing.T, contents map[string]string) []ghrelease.Asset {
	t.Helper()
	dir := t.TempDir()
	var out []ghrelease.Asset
	for _, name := range []string{"bitvault_1.2.3_linux_amd64.tar.gz", "bitvault_1.2.3_linux_amd64.tar.gz.sigstore.json", "bitvault_1.2.3_windows_amd64.zip", "checksums.txt", "checksums.txt.sigstore.json"} {
		c, ok := contents[name]
		if !ok {
			c = "content of " + name
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, ghrelease.Asset{Path: p})
	}
	return out
}

func actions(res *ghrelease.Result) map[string]string {
	m := map[string]string{}
	for _, o := range res.Assets {
		m[o.Name] = o.Action
	}
	return m
}

var rel = ghrelease.Release{Owner: "bitvault", Repo: "bitvault", Tag: "v1.2.3", Commit: strings.Repeat("c", 40)}

func TestPublish(t *testing.T) {
	for _, digests := range []bool{true, false} {
		name := "GitHub reports digests"
		if !digests {
			name = "no digests: published assets are downloaded to compare"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			gh := newServer(t, digests)
			c := client(t, gh)
			assets := files(t, nil)

			res, err := c.Publish(ctx, rel, assets)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Created || gh.Release("v1.2.3") == nil || gh.Release("v1.2.3").Commit != rel.Commit {
				t.Fatalf("release not created at the commit: %+v", gh.Release("v1.2.3"))
			}
			for n, a := range actions(res) {
				if a != "uploaded" {
					t.Errorf("%s: %s, want uploaded", n, a)
				}
			}
			if len(res.Assets) != 5 || gh.Uploads() != 5 {
				t.Fatalf("%d outcomes, %d uploads, want 5", len(res.Assets), gh.Uploads())
			}
			for _, a := range gh.Release("v1.2.3").Assets {
				if want := "content of " + a.Name; string(a.Data) != want {
					t.Errorf("published %s = %q", a.Name, a.Data)
				}
			}

			// Again: everything is there already, nothing is uploaded.
			res, err = c.Publish(ctx, rel, assets)
			if err != nil {
				t.Fatal(err)
			}
			if res.Created || gh.Uploads() != 5 {
				t.Errorf("re-run created=%v uploads=%d, want an existing release and no upload", res.Created, gh.Uploads())
			}
			for n, a := range actions(res) {
				if a != "kept" {
					t.Errorf("re-run %s: %s, want kept", n, a)
				}
			}

			// A different archive under a published name fails, naming it.
			changed := files(t, map[string]string{"bitvault_1.2.3_windows_amd64.zip": "rebuilt differently"})
			_, err = c.Publish(ctx, rel, changed)
			if !errors.Is(err, ghrelease.ErrMismatch) || !strings.Contains(err.Error(), "bitvault_1.2.3_windows_amd64.zip") {
				t.Fatalf("err = %v, want a mismatch naming the zip", err)
			}
			t.Log(err)
			if string(gh.Release("v1.2.3").Assets[2].Data) != "content of bitvault_1.2.3_windows_amd64.zip" {
				t.Error("the published asset was replaced")
			}
			// Same size, other bytes: caught by the digest, not the size.
			same := files(t, map[string]string{"checksums.txt": "content of checksums.tx!"})
			if _, err := c.Publish(ctx, rel, same); !errors.Is(err, ghrelease.ErrMismatch) || !strings.Contains(err.Error(), "checksums.txt") {
				t.Fatalf("same size, other bytes: err = %v", err)
			}
		})
	}
}

// TestPublishEquivalent: a signature bundle that differs byte for byte but is
// equivalent (verifies the same file under the same policy) is kept, and the
// published bytes are handed back; one that is not equivalent fails.
func TestPublishEquivalent(t *testing.T) {
	ctx := context.Background()
	gh := newServer(t, true)
	c := client(t, gh)
	if _, err := c.Publish(ctx, rel, files(t, nil)); err != nil {
		t.Fatal(err)
	}
	const bundle = "bitvault_1.2.3_linux_amd64.tar.gz.sigstore.json"
	resigned := files(t, map[string]string{bundle: "another signature"})
	var seen []byte
	for i := range resigned {
		if resigned[i].Name() == bundle {
			resigned[i].Equivalent = func(published []byte) error { seen = published; return nil }
		}
	}
	res, err := c.Publish(ctx, rel, resigned)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(res)[bundle]; got != "kept-equivalent" || !bytes.Equal(seen, []byte("content of "+bundle)) {
		t.Fatalf("%s: %s, saw %q", bundle, got, seen)
	}
	for _, o := range res.Assets {
		if o.Name == bundle && string(o.Published) != "content of "+bundle {
			t.Errorf("published content not handed back: %q", o.Published)
		}
	}
	for i := range resigned {
		if resigned[i].Name() == bundle {
			resigned[i].Equivalent = func([]byte) error { return errors.New("signed by https://evil.example") }
		}
	}
	_, err = c.Publish(ctx, rel, resigned)
	if !errors.Is(err, ghrelease.ErrMismatch) || !strings.Contains(err.Error(), "evil.example") || !strings.Contains(err.Error(), bundle) {
		t.Fatalf("err = %v", err)
	}
}

// TestPublishExistingRelease: a release made by hand (or an earlier, interrupted
// run) gets only the missing assets.
func TestPublishExistingRelease(t *testing.T) {
	ctx := context.Background()
	gh := newServer(t, true)
	c := client(t, gh)
	assets := files(t, nil)
	if _, err := c.Publish(ctx, rel, assets[:2]); err != nil {
		t.Fatal(err)
	}
	// A mismatch on a published asset uploads none of the missing ones.
	changed := files(t, map[string]string{assets[1].Name(): "signed again, differently"})
	if _, err := c.Publish(ctx, rel, changed); !errors.Is(err, ghrelease.ErrMismatch) || !strings.Contains(err.Error(), "nothing was uploaded") {
		t.Fatalf("err = %v", err)
	}
	if gh.Uploads() != 2 {
		t.Fatalf("%d uploads after a mismatch, want the first 2 only", gh.Uploads())
	}
	res, err := c.Publish(ctx, rel, assets)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{assets[0].Name(): "kept", assets[1].Name(): "kept", assets[2].Name(): "uploaded", assets[3].Name(): "uploaded", assets[4].Name(): "uploaded"}
	for n, a := range actions(res) {
		if want[n] != a {
			t.Errorf("%s: %s, want %s", n, a, want[n])
		}
	}
	if res.Created || gh.Releases() != 1 {
		t.Errorf("a second release was created")
	}
}

func TestPublishBadToken(t *testing.T) {
	gh := newServer(t, true)
	c, err := ghrelease.FromEnv("wrong", gh.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Publish(context.Background(), rel, files(t, nil))
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v, want a 401", err)
	}
}
