// Package githubtest serves the parts of GitHub's REST API that promotion
// calls through go-github — list pull requests by head, create, edit, request
// reviewers — on 127.0.0.1, keeping the pull requests in memory, checking the
// token, and able to answer like a token without `pull-requests: write`.
package githubtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// PR is a pull request the server holds.
type PR struct {
	Number             int
	Head, Base         string
	Title, Body, State string
	Reviewers, Teams   []string
	Author             string
}

// Server is a fake GitHub API for one repository.
type Server struct {
	URL          string // the API base URL, for go-github's BaseURL
	Owner, Repo  string
	Token        string // the token every request must carry
	mu           sync.Mutex
	prs          []*PR
	calls        []string
	readOnly     bool
	rejectReview bool
}

// New serves the API for owner/repo for the test's lifetime; requests must
// carry token.
func New(t testing.TB, owner, repo, token string) *Server {
	s := &Server{Owner: owner, Repo: repo, Token: token}
	mux := http.NewServeMux()
	base := "/repos/" + owner + "/" + repo + "/pulls"
	mux.HandleFunc("GET "+base, s.list)
	mux.HandleFunc("POST "+base, s.create)
	mux.HandleFunc("PATCH "+base+"/{n}", s.edit)
	mux.HandleFunc("POST "+base+"/{n}/requested_reviewers", s.review)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls = append(s.calls, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+s.Token {
			reply(w, http.StatusUnauthorized, map[string]any{"message": "Bad credentials"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/"
	return s
}

// ReadOnly makes every write answer like a token without pull-requests: write.
func (s *Server) ReadOnly(v bool) { s.mu.Lock(); s.readOnly = v; s.mu.Unlock() }

// RejectReviewers makes review requests fail like reviewers who are not collaborators.
func (s *Server) RejectReviewers(v bool) { s.mu.Lock(); s.rejectReview = v; s.mu.Unlock() }

// PRs returns a copy of the pull requests.
func (s *Server) PRs() []PR {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PR, 0, len(s.prs))
	for _, p := range s.prs {
		out = append(out, *p)
	}
	return out
}

// Calls returns "METHOD /path" of every request so far.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) forbidden(w http.ResponseWriter) bool {
	if s.readOnly {
		reply(w, http.StatusForbidden, map[string]any{
			"message":           "Resource not accessible by integration",
			"documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
			"status":            "403",
		})
		return true
	}
	return false
}

func (s *Server) json(p *PR) map[string]any {
	var users, teams []map[string]any
	for _, r := range p.Reviewers {
		users = append(users, map[string]any{"login": r})
	}
	for _, t := range p.Teams {
		teams = append(teams, map[string]any{"slug": t})
	}
	return map[string]any{
		"number": p.Number, "state": p.State, "title": p.Title, "body": p.Body,
		"html_url":            fmt.Sprintf("https://github.com/%s/%s/pull/%d", s.Owner, s.Repo, p.Number),
		"head":                map[string]any{"ref": p.Head, "label": s.Owner + ":" + p.Head},
		"base":                map[string]any{"ref": p.Base},
		"user":                map[string]any{"login": p.Author},
		"requested_reviewers": users, "requested_teams": teams,
	}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	out := []map[string]any{}
	for _, p := range s.prs {
		if (state != "all" && p.State != state) || (q.Get("base") != "" && p.Base != q.Get("base")) {
			continue
		}
		if h := q.Get("head"); h != "" && h != s.Owner+":"+p.Head {
			continue
		}
		out = append(out, s.json(p))
	}
	reply(w, http.StatusOK, out)
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forbidden(w) {
		return
	}
	var in struct{ Title, Body, Head, Base string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Head == "" || in.Base == "" {
		reply(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed"})
		return
	}
	head := strings.TrimPrefix(in.Head, s.Owner+":")
	for _, p := range s.prs {
		if p.State == "open" && p.Head == head && p.Base == in.Base {
			reply(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed",
				"errors": []map[string]any{{"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for " + s.Owner + ":" + head + "."}}})
			return
		}
	}
	p := &PR{Number: len(s.prs) + 1, Head: head, Base: in.Base, Title: in.Title, Body: in.Body, State: "open", Author: "bvrelease-bot"}
	s.prs = append(s.prs, p)
	reply(w, http.StatusCreated, s.json(p))
}

func (s *Server) find(w http.ResponseWriter, r *http.Request) *PR {
	n, _ := strconv.Atoi(r.PathValue("n"))
	for _, p := range s.prs {
		if p.Number == n {
			return p
		}
	}
	reply(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
	return nil
}

func (s *Server) edit(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forbidden(w) {
		return
	}
	p := s.find(w, r)
	if p == nil {
		return
	}
	var in struct {
		Title, Body, State *string
	}
	json.NewDecoder(r.Body).Decode(&in)
	if in.Title != nil {
		p.Title = *in.Title
	}
	if in.Body != nil {
		p.Body = *in.Body
	}
	if in.State != nil {
		p.State = *in.State
	}
	reply(w, http.StatusOK, s.json(p))
}

func (s *Server) review(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forbidden(w) {
		return
	}
	p := s.find(w, r)
	if p == nil {
		return
	}
	if s.rejectReview {
		reply(w, http.StatusUnprocessableEntity, map[string]any{"message": "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the " + s.Owner + "/" + s.Repo + " repository."})
		return
	}
	var in struct {
		Reviewers     []string `json:"reviewers"`
		TeamReviewers []string `json:"team_reviewers"`
	}
	json.NewDecoder(r.Body).Decode(&in)
	for _, u := range in.Reviewers {
		if !slices.Contains(p.Reviewers, u) {
			p.Reviewers = append(p.Reviewers, u)
		}
	}
	for _, t := range in.TeamReviewers {
		if !slices.Contains(p.Teams, t) {
			p.Teams = append(p.Teams, t)
		}
	}
	reply(w, http.StatusCreated, s.json(p))
}

// Close marks pull request n closed (merged, say).
func (s *Server) Close(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.prs {
		if p.Number == n {
			p.State = "closed"
		}
	}
}
