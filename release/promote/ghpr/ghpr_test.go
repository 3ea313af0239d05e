package ghpr_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/bitvault/bitvault/internal/testsupport/githubtest"
	"github.com/bitvault/bitvault/release/promote/ghpr"
)

// TestEnsure: open, then update (no duplicate), reviewers requested once;
// GitHub's refusals explained.
func TestEnsure(t *testing.T) {
	ctx := context.Background()
	gh := githubtest.New(t, "bitvault", "gitops", "tok")
	c, err := ghpr.New(gh.URL, "tok", "bitvault/gitops", nil)
	if err != nil {
		t.Fatal(err)
	}
	pr := ghpr.PR{Base: "main", Head: "bvrelease/promote-dev-v1.2.3", Title: "t", Body: "one", Reviewers: []string{"@alice", "bitvault/release-managers", "bvrelease-bot"}}
	res, err := c.Ensure(ctx, pr)
	if err != nil || !res.Created || res.Number != 1 || !slices.Equal(res.Requested, []string{"alice", "release-managers"}) {
		t.Fatalf("first: %+v, %v", res, err)
	}
	pr.Body = "two"
	res, err = c.Ensure(ctx, pr)
	if err != nil || res.Created || res.Number != 1 || len(res.Requested) != 0 {
		t.Fatalf("second: %+v, %v", res, err)
	}
	if prs := gh.PRs(); len(prs) != 1 || prs[0].Body != "two" {
		t.Fatalf("pull requests %+v", prs)
	}
	// Another base is another pull request.
	pr.Base = "release"
	if res, err := c.Ensure(ctx, pr); err != nil || !res.Created || res.Number != 2 {
		t.Fatalf("other base: %+v, %v", res, err)
	}

	for _, tc := range []struct {
		name        string
		token, repo string
		readOnly    bool
		want        []string
	}{
		{"read-only token", "tok", "bitvault/gitops", true, []string{"GitHub refused to open the pull request", "403 Resource not accessible by integration", "needs `pull-requests: write`"}},
		{"bad token", "nope", "bitvault/gitops", false, []string{"GitHub refused the token (401 Bad credentials)", "GITOPS_TOKEN"}},
		{"unknown repository", "tok", "bitvault/other", false, []string{"bitvault/other not found (404", "check gitops.repo"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gh.ReadOnly(tc.readOnly)
			defer gh.ReadOnly(false)
			c, err := ghpr.New(gh.URL, tc.token, tc.repo, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Ensure(ctx, ghpr.PR{Base: "main", Head: "x", Title: "t", Body: "b"})
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v lacks %q", err, w)
				}
			}
		})
	}
	if _, err := ghpr.New("", "tok", "not-a-repo", nil); err == nil {
		t.Error("accepted a repository without owner")
	}
}
