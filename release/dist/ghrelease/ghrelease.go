// Package ghrelease publishes files as the assets of a GitHub Release, through
// go-github, idempotently:
//
//   - the release for the tag is looked up and created (at the release's
//     commit) when missing;
//   - an asset that is already there with the same name and the same content —
//     same size and SHA-256, from the digest GitHub reports for the asset, or by
//     downloading it when GitHub reports none — is kept, not uploaded again;
//   - an asset that is there with other content fails the publication, naming
//     the asset and both digests, before anything is uploaded; it is never replaced (a published file that
//     changes under the same name is exactly what verification must catch).
//     An Asset may say that other content is equivalent (a signature bundle that
//     verifies the same file under the same policy: signatures are not
//     deterministic); the published one is then kept and handed back.
//
// Only the few endpoints this needs are used: GET releases/tags/{tag}, POST
// releases, GET releases/{id}/assets, GET releases/assets/{id} (download) and
// POST uploads .../releases/{id}/assets.
package ghrelease

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-github/v84/github"
)

// Asset is one file to publish.
type Asset struct {
	Path   string // local file; its base name is the asset name
	SHA256 string // hex; computed when empty
	// Equivalent, when set, decides whether published content that differs
	// byte for byte from the local file is as good (e.g. another signature of
	// the same file by the same identity). It gets the published bytes.
	Equivalent func(published []byte) error
}

// Name is the asset's name on the release.
func (a Asset) Name() string { return filepath.Base(a.Path) }

// Release says which release to publish to.
type Release struct {
	Owner, Repo string
	Tag         string // e.g. v1.2.3
	Commit      string // target_commitish when the release (and so the tag) is created
	Name        string // release title (default: the tag)
	Body        string
	Prerelease  bool
}

// Outcome is what happened to one asset.
type Outcome struct {
	Name   string `json:"name"`
	Action string `json:"action"` // uploaded, kept, kept-equivalent
	URL    string `json:"url,omitempty"`
	// Published is the published content when Action is kept-equivalent.
	Published []byte `json:"-"`
}

// Result is the publication.
type Result struct {
	ReleaseURL string    `json:"release_url"`
	Created    bool      `json:"created"` // the release did not exist before
	Assets     []Outcome `json:"assets"`
}

// Client publishes through a go-github client.
type Client struct {
	GH *github.Client
	// Download fetches asset content (GitHub redirects to storage); default http.DefaultClient.
	Download *http.Client
}

// New returns a client for token. apiURL, when not empty (GITHUB_API_URL on
// GitHub Enterprise, or a test server), replaces https://api.github.com/ and
// uploadURL the upload endpoint.
func New(token, apiURL, uploadURL string) (*Client, error) {
	gh := github.NewClient(nil).WithAuthToken(token)
	if apiURL != "" {
		u, err := gh.BaseURL.Parse(strings.TrimSuffix(apiURL, "/") + "/")
		if err != nil {
			return nil, fmt.Errorf("GitHub API URL %q: %w", apiURL, err)
		}
		gh.BaseURL = u
		if uploadURL == "" {
			uploadURL = apiURL
		}
		up, err := gh.UploadURL.Parse(strings.TrimSuffix(uploadURL, "/") + "/")
		if err != nil {
			return nil, fmt.Errorf("GitHub upload URL %q: %w", uploadURL, err)
		}
		gh.UploadURL = up
	}
	return &Client{GH: gh}, nil
}

// FromEnv returns a client for token and the API URL GitHub Actions gives a
// job (GITHUB_API_URL): github.com's when it is empty or
// https://api.github.com, else GitHub Enterprise's (https://HOST/api/v3, with
// uploads at https://HOST/api/uploads).
func FromEnv(token, apiURL string) (*Client, error) {
	apiURL = strings.TrimSuffix(apiURL, "/")
	if apiURL == "" || apiURL == "https://api.github.com" {
		return New(token, "", "")
	}
	return New(token, apiURL, strings.TrimSuffix(apiURL, "/api/v3")+"/api/uploads")
}

// ErrMismatch is returned when an asset is already published with other content.
var ErrMismatch = errors.New("published with different content")

// Publish makes sure every asset is on the release, creating the release when
// missing. Published assets are compared first: any mismatch fails it with
// nothing uploaded.
func (c *Client) Publish(ctx context.Context, rel Release, assets []Asset) (*Result, error) {
	repos := c.GH.Repositories
	r, resp, err := repos.GetReleaseByTag(ctx, rel.Owner, rel.Repo, rel.Tag)
	res := &Result{}
	switch {
	case err == nil:
	case resp != nil && resp.StatusCode == http.StatusNotFound:
		name := rel.Name
		if name == "" {
			name = rel.Tag
		}
		r, _, err = repos.CreateRelease(ctx, rel.Owner, rel.Repo, &github.RepositoryRelease{
			TagName: github.Ptr(rel.Tag), TargetCommitish: nonEmpty(rel.Commit), Name: github.Ptr(name),
			Body: nonEmpty(rel.Body), Prerelease: github.Ptr(rel.Prerelease),
		})
		if err != nil {
			return nil, fmt.Errorf("creating GitHub release %s in %s/%s: %w", rel.Tag, rel.Owner, rel.Repo, err)
		}
		res.Created = true
	default:
		return nil, fmt.Errorf("looking up GitHub release %s in %s/%s: %w", rel.Tag, rel.Owner, rel.Repo, err)
	}
	res.ReleaseURL = r.GetHTMLURL()
	published, err := c.assets(ctx, rel, r.GetID())
	if err != nil {
		return nil, err
	}
	// First every published asset is compared, so that a mismatch fails the
	// publication before anything is uploaded; then the missing ones go up.
	outcomes := make([]*Outcome, len(assets))
	var mismatches []error
	for i, a := range assets {
		if existing := published[a.Name()]; existing != nil {
			o, err := c.compare(ctx, rel, a, existing)
			if err != nil {
				if !errors.Is(err, ErrMismatch) {
					return res, err
				}
				mismatches = append(mismatches, err)
			}
			outcomes[i] = o
		}
	}
	if len(mismatches) > 0 {
		return res, fmt.Errorf("%w\nnothing was uploaded", errors.Join(mismatches...))
	}
	for i, a := range assets {
		if outcomes[i] == nil {
			o, err := c.upload(ctx, rel, r.GetID(), a)
			if err != nil {
				return res, err
			}
			outcomes[i] = o
		}
		res.Assets = append(res.Assets, *outcomes[i])
	}
	return res, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (c *Client) assets(ctx context.Context, rel Release, id int64) (map[string]*github.ReleaseAsset, error) {
	out := map[string]*github.ReleaseAsset{}
	opts := &github.ListOptions{PerPage: 100}
	for {
		page, resp, err := c.GH.Repositories.ListReleaseAssets(ctx, rel.Owner, rel.Repo, id, opts)
		if err != nil {
			return nil, fmt.Errorf("listing the assets of GitHub release %s: %w", rel.Tag, err)
		}
		for _, a := range page {
			out[a.GetName()] = a
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// digest returns a local file's SHA-256 (hex) and size.
func digest(a Asset) (string, int64, error) {
	f, err := os.Open(a.Path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if a.SHA256 != "" {
		return a.SHA256, st.Size(), nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), st.Size(), nil
}

// compare decides what to do with an asset that is already published: keep
// it, or fail with ErrMismatch naming it.
func (c *Client) compare(ctx context.Context, rel Release, a Asset, existing *github.ReleaseAsset) (*Outcome, error) {
	name := a.Name()
	sum, size, err := digest(a)
	if err != nil {
		return nil, err
	}
	same, content, remoteSum, err := c.sameContent(ctx, rel, existing, size, sum)
	if err != nil {
		return nil, err
	}
	if same {
		return &Outcome{Name: name, Action: "kept", URL: existing.GetBrowserDownloadURL()}, nil
	}
	mismatch := fmt.Errorf("GitHub release %s: asset %s is %w (published %s, %d B; local sha256:%s, %d B)",
		rel.Tag, name, ErrMismatch, remoteSum, existing.GetSize(), sum, size)
	if a.Equivalent != nil {
		if content == nil {
			if content, err = c.download(ctx, rel, existing); err != nil {
				return nil, err
			}
		}
		eerr := a.Equivalent(content)
		if eerr == nil {
			return &Outcome{Name: name, Action: "kept-equivalent", URL: existing.GetBrowserDownloadURL(), Published: content}, nil
		}
		mismatch = fmt.Errorf("%w and is not equivalent: %v", mismatch, eerr)
	}
	return nil, fmt.Errorf("%w; refusing to replace a published file: delete the asset on GitHub if it is wrong, or release a new version", mismatch)
}

func (c *Client) upload(ctx context.Context, rel Release, id int64, a Asset) (*Outcome, error) {
	name := a.Name()
	f, err := os.Open(a.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	up, _, err := c.GH.Repositories.UploadReleaseAsset(ctx, rel.Owner, rel.Repo, id, &github.UploadOptions{Name: name}, f)
	if err != nil {
		return nil, fmt.Errorf("GitHub release %s: uploading %s: %w", rel.Tag, name, err)
	}
	if up.GetSize() != 0 && int64(up.GetSize()) != st.Size() {
		return nil, fmt.Errorf("GitHub release %s: uploaded %s has %d B, the file %d B", rel.Tag, name, up.GetSize(), st.Size())
	}
	return &Outcome{Name: name, Action: "uploaded", URL: up.GetBrowserDownloadURL()}, nil
}

// sameContent compares a published asset with the local size and digest: by
// the digest GitHub reports, else by downloading it. It returns the published
// content when it downloaded it, and the published digest as sha256:<hex> (or
// "size …" when the sizes alone differ).
func (c *Client) sameContent(ctx context.Context, rel Release, a *github.ReleaseAsset, size int64, sum string) (bool, []byte, string, error) {
	if d := a.GetDigest(); strings.HasPrefix(d, "sha256:") {
		return d == "sha256:"+sum && int64(a.GetSize()) == size, nil, d, nil
	}
	if int64(a.GetSize()) != size {
		return false, nil, "content of another size", nil
	}
	content, err := c.download(ctx, rel, a)
	if err != nil {
		return false, nil, "", err
	}
	h := sha256.Sum256(content)
	remote := hex.EncodeToString(h[:])
	return remote == sum, content, "sha256:" + remote, nil
}

func (c *Client) download(ctx context.Context, rel Release, a *github.ReleaseAsset) ([]byte, error) {
	hc := c.Download
	if hc == nil {
		hc = http.DefaultClient
	}
	rc, redirect, err := c.GH.Repositories.DownloadReleaseAsset(ctx, rel.Owner, rel.Repo, a.GetID(), hc)
	if err != nil {
		return nil, fmt.Errorf("GitHub release %s: downloading the published %s to compare: %w", rel.Tag, a.GetName(), err)
	}
	if rc == nil {
		return nil, fmt.Errorf("GitHub release %s: downloading the published %s: redirected to %s", rel.Tag, a.GetName(), redirect)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(rc, 2<<30)); err != nil {
		return nil, fmt.Errorf("GitHub release %s: downloading the published %s: %w", rel.Tag, a.GetName(), err)
	}
	return buf.Bytes(), nil
}
