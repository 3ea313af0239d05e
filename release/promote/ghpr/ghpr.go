// Package ghpr opens or updates the promotion pull request on GitHub
// (go-github): one open pull request per head branch — a second promotion of
// the same branch finds it and updates its title and body, never opening a
// duplicate — and the configured reviewers requested on it.
package ghpr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/go-github/v84/github"
)

// DefaultAPI is GitHub's REST API.
const DefaultAPI = "https://api.github.com/"

// Client talks to one repository.
type Client struct {
	gh          *github.Client
	owner, name string
}

// New returns a client for repo (owner/name) at api (default DefaultAPI;
// GitHub Enterprise: https://HOST/api/v3/) authenticating with token.
func New(api, token, repo string, hc *http.Client) (*Client, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("%q is not a GitHub repository (owner/name)", repo)
	}
	if api == "" {
		api = DefaultAPI
	}
	u, err := url.Parse(strings.TrimSuffix(api, "/") + "/")
	if err != nil {
		return nil, fmt.Errorf("GitHub API URL %q: %w", api, err)
	}
	gh := github.NewClient(hc).WithAuthToken(token)
	gh.BaseURL = u
	return &Client{gh: gh, owner: owner, name: name}, nil
}

// PR is the pull request wanted.
type PR struct {
	Base, Head  string // branch names in the repository
	Title, Body string
	// Reviewers are GitHub logins, or org/team for a team (bitvault/release-managers).
	Reviewers []string
}

// Result says what Ensure did.
type Result struct {
	Number    int
	URL       string
	Created   bool     // false: an open pull request for the head was updated
	Requested []string // reviewers requested by this call
	Warnings  []string // reviewers GitHub would not request (not collaborators, ...)
}

// Ensure opens the pull request, or updates the open one for the same head
// and base, and requests the reviewers not already requested.
func (c *Client) Ensure(ctx context.Context, want PR) (Result, error) {
	var res Result
	open, _, err := c.gh.PullRequests.List(ctx, c.owner, c.name, &github.PullRequestListOptions{
		State: "open", Head: c.owner + ":" + want.Head, Base: want.Base, ListOptions: github.ListOptions{PerPage: 10},
	})
	if err != nil {
		return res, c.explain(err, "list the open pull requests for "+want.Head)
	}
	var pr *github.PullRequest
	for _, p := range open {
		if p.GetHead().GetRef() == want.Head && p.GetBase().GetRef() == want.Base {
			pr = p
			break
		}
	}
	if pr == nil {
		pr, _, err = c.gh.PullRequests.Create(ctx, c.owner, c.name, &github.NewPullRequest{
			Title: github.Ptr(want.Title), Body: github.Ptr(want.Body), Head: github.Ptr(want.Head), Base: github.Ptr(want.Base),
			MaintainerCanModify: github.Ptr(true),
		})
		if err != nil {
			return res, c.explain(err, "open the pull request "+want.Head+" → "+want.Base)
		}
		res.Created = true
	} else {
		pr, _, err = c.gh.PullRequests.Edit(ctx, c.owner, c.name, pr.GetNumber(), &github.PullRequest{Title: github.Ptr(want.Title), Body: github.Ptr(want.Body)})
		if err != nil {
			return res, c.explain(err, fmt.Sprintf("update pull request #%d", pr.GetNumber()))
		}
	}
	res.Number, res.URL = pr.GetNumber(), pr.GetHTMLURL()

	users, teams := c.missingReviewers(pr, want.Reviewers)
	if len(users)+len(teams) == 0 {
		return res, nil
	}
	_, _, err = c.gh.PullRequests.RequestReviewers(ctx, c.owner, c.name, pr.GetNumber(), github.ReviewersRequest{Reviewers: users, TeamReviewers: teams})
	var er *github.ErrorResponse
	switch {
	case err == nil:
		res.Requested = append(users, teams...)
	case errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusUnprocessableEntity:
		// Not collaborators, a team the token cannot see: the pull request stands.
		res.Warnings = append(res.Warnings, fmt.Sprintf("GitHub would not request reviewers %s on #%d: %s", strings.Join(append(users, teams...), ", "), res.Number, message(er)))
	default:
		return res, c.explain(err, fmt.Sprintf("request reviewers on pull request #%d", res.Number))
	}
	return res, nil
}

// missingReviewers splits the wanted reviewers into users and team slugs,
// leaving out the author and those already requested.
func (c *Client) missingReviewers(pr *github.PullRequest, want []string) (users, teams []string) {
	var haveUsers, haveTeams []string
	for _, u := range pr.RequestedReviewers {
		haveUsers = append(haveUsers, strings.ToLower(u.GetLogin()))
	}
	for _, t := range pr.RequestedTeams {
		haveTeams = append(haveTeams, strings.ToLower(t.GetSlug()))
	}
	author := strings.ToLower(pr.GetUser().GetLogin())
	for _, r := range want {
		r = strings.TrimPrefix(strings.TrimSpace(r), "@")
		if _, team, ok := strings.Cut(r, "/"); ok {
			if !slices.Contains(haveTeams, strings.ToLower(team)) && !slices.Contains(teams, team) {
				teams = append(teams, team)
			}
			continue
		}
		if r != "" && strings.ToLower(r) != author && !slices.Contains(haveUsers, strings.ToLower(r)) && !slices.Contains(users, r) {
			users = append(users, r)
		}
	}
	return users, teams
}

func message(er *github.ErrorResponse) string {
	m := er.Message
	for _, e := range er.Errors {
		if e.Message != "" {
			m += "; " + e.Message
		}
	}
	return m
}

// explain turns GitHub's refusals into what to do about them.
func (c *Client) explain(err error, what string) error {
	repo := c.owner + "/" + c.name
	var er *github.ErrorResponse
	if !errors.As(err, &er) || er.Response == nil {
		return fmt.Errorf("GitHub: %s on %s: %w", what, repo, err)
	}
	code := er.Response.StatusCode
	msg := message(er)
	switch code {
	case http.StatusForbidden:
		hint := "the token is not allowed to do this"
		if strings.Contains(er.Message, "Resource not accessible") {
			hint = "the token cannot write pull requests"
		}
		return fmt.Errorf("GitHub refused to %s on %s (%d %s): %s: the workflow/token needs `pull-requests: write` (workflow: `permissions: pull-requests: write`; fine-grained token: Pull requests: Read and write) on %s",
			what, repo, code, msg, hint, repo)
	case http.StatusUnauthorized:
		return fmt.Errorf("GitHub refused the token (%d %s) trying to %s on %s: check the token (gitops.token_env, default GITOPS_TOKEN)", code, msg, what, repo)
	case http.StatusNotFound:
		return fmt.Errorf("GitHub: %s: %s not found (%d %s): check gitops.repo, and that the token can see the repository", what, repo, code, msg)
	}
	return fmt.Errorf("GitHub: %s on %s: %d %s", what, repo, code, msg)
}
