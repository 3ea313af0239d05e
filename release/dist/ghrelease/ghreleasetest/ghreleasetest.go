// Package ghreleasetest serves, on 127.0.0.1, the GitHub REST endpoints that
// release/dist/ghrelease calls through go-github — get a release by tag,
// create a release, list its assets (paged), download an asset (redirected to
// "storage", which must not receive the token) and upload an asset — for one
// repository, keeping releases in memory and checking the token. Paths are
// GitHub Enterprise's (/api/v3/…, /api/uploads/…), so a client configured from
// GITHUB_API_URL=<URL> reaches it as it would a GHES instance.
package ghreleasetest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeGitHub serves the GitHub REST endpoints Publish uses, for one repository.
type Server struct {
	// URL is the API base (GITHUB_API_URL): <server>/api/v3; UploadURL the
	// upload base <server>/api/uploads.
	URL, UploadURL string
	Owner, Repo    string
	Token          string
	// Digests: report each asset's sha256 digest, as github.com does since 2025
	// (without it, clients download assets to compare them).
	Digests bool

	srv *httptest.Server

	mu       sync.Mutex
	releases map[string]*Release // by tag
	nextID   int64
	calls    []string // "METHOD path" of each API call
}

// Release is a release the server holds.
type Release struct {
	ID     int64
	Tag    string
	Commit string
	Name   string
	Pre    bool
	Assets []*Asset
}

// Asset is a release asset the server holds.
type Asset struct {
	ID   int64
	Name string
	Data []byte
}

// New serves owner/repo for the test's lifetime; requests must carry token.
func New(t testing.TB, owner, repo, token string, digests bool) *Server {
	f := &Server{Owner: owner, Repo: repo, Token: token, Digests: digests, releases: map[string]*Release{}, nextID: 100}
	mux := http.NewServeMux()
	base := "/api/v3/repos/" + owner + "/" + repo
	mux.HandleFunc("POST "+base+"/releases", f.auth(f.create))
	// releases/tags/{tag}, releases/{id}/assets and releases/assets/{id} overlap as patterns.
	mux.HandleFunc("GET "+base+"/releases/{x}/{y}", f.auth(func(w http.ResponseWriter, r *http.Request) {
		x, y := r.PathValue("x"), r.PathValue("y")
		switch {
		case x == "tags":
			r.SetPathValue("tag", y)
			f.getByTag(w, r)
		case x == "assets":
			r.SetPathValue("id", y)
			f.asset(w, r)
		case y == "assets":
			r.SetPathValue("id", x)
			f.list(w, r)
		default:
			apiError(w, http.StatusNotFound, "Not Found")
		}
	}))
	mux.HandleFunc("POST /api/uploads/repos/"+owner+"/"+repo+"/releases/{id}/assets", f.auth(f.upload))
	mux.HandleFunc("GET /storage/{id}", f.storage) // where asset downloads redirect to
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	f.URL, f.UploadURL = f.srv.URL+"/api/v3", f.srv.URL+"/api/uploads"
	return f
}

func (f *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls = append(f.calls, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+f.Token {
			apiError(w, http.StatusUnauthorized, "Bad credentials")
			return
		}
		h(w, r)
	}
}

func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func (f *Server) releaseJSON(r *Release) map[string]any {
	return map[string]any{
		"id": r.ID, "tag_name": r.Tag, "target_commitish": r.Commit, "name": r.Name, "prerelease": r.Pre,
		"html_url":   "https://github.com/" + f.Owner + "/" + f.Repo + "/releases/tag/" + r.Tag,
		"upload_url": f.srv.URL + "/api/uploads/repos/" + f.Owner + "/" + f.Repo + "/releases/" + strconv.FormatInt(r.ID, 10) + "/assets{?name,label}",
	}
}

func (f *Server) assetJSON(a *Asset) map[string]any {
	m := map[string]any{
		"id": a.ID, "name": a.Name, "size": len(a.Data), "state": "uploaded",
		"browser_download_url": "https://github.com/" + f.Owner + "/" + f.Repo + "/releases/download/tag/" + a.Name,
	}
	if f.Digests {
		h := sha256.Sum256(a.Data)
		m["digest"] = "sha256:" + hex.EncodeToString(h[:])
	}
	return m
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (f *Server) getByTag(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rel, ok := f.releases[r.PathValue("tag")]
	if !ok {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, f.releaseJSON(rel))
}

func (f *Server) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TagName         string `json:"tag_name"`
		TargetCommitish string `json:"target_commitish"`
		Name            string `json:"name"`
		Prerelease      bool   `json:"prerelease"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.TagName == "" {
		apiError(w, http.StatusUnprocessableEntity, "Validation Failed")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.releases[req.TagName]; ok {
		apiError(w, http.StatusUnprocessableEntity, "Validation Failed: tag_name already_exists")
		return
	}
	f.nextID++
	rel := &Release{ID: f.nextID, Tag: req.TagName, Commit: req.TargetCommitish, Name: req.Name, Pre: req.Prerelease}
	f.releases[req.TagName] = rel
	writeJSON(w, http.StatusCreated, f.releaseJSON(rel))
}

func (f *Server) byID(id string) *Release {
	for _, r := range f.releases {
		if strconv.FormatInt(r.ID, 10) == id {
			return r
		}
	}
	return nil
}

// list pages the assets as GitHub does (per_page, page, Link rel="next").
func (f *Server) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rel := f.byID(r.PathValue("id"))
	if rel == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per <= 0 {
		per = 30
	}
	per = min(per, 2) // small pages, so paging is exercised
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	var out []map[string]any
	for i := (page - 1) * per; i < len(rel.Assets) && i < page*per; i++ {
		out = append(out, f.assetJSON(rel.Assets[i]))
	}
	if page*per < len(rel.Assets) {
		next := fmt.Sprintf("%s%s?per_page=%d&page=%d", f.srv.URL, r.URL.Path, per, page+1)
		w.Header().Set("Link", `<`+next+`>; rel="next"`)
	}
	if out == nil {
		out = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *Server) findAsset(id string) *Asset {
	for _, r := range f.releases {
		for _, a := range r.Assets {
			if strconv.FormatInt(a.ID, 10) == id {
				return a
			}
		}
	}
	return nil
}

// asset redirects an octet-stream download to storage, as GitHub does.
func (f *Server) asset(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	a := f.findAsset(r.PathValue("id"))
	f.mu.Unlock()
	if a == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	if r.Header.Get("Accept") != "application/octet-stream" {
		writeJSON(w, http.StatusOK, f.assetJSON(a))
		return
	}
	http.Redirect(w, r, f.srv.URL+"/storage/"+r.PathValue("id"), http.StatusFound)
}

func (f *Server) storage(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	a := f.findAsset(r.PathValue("id"))
	f.mu.Unlock()
	if a == nil || r.Header.Get("Authorization") != "" {
		// Storage URLs are pre-signed: a token must not be forwarded there.
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Write(a.Data)
}

func (f *Server) upload(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	data, err := io.ReadAll(r.Body)
	if err != nil || name == "" || r.ContentLength != int64(len(data)) {
		apiError(w, http.StatusBadRequest, "bad upload")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rel := f.byID(r.PathValue("id"))
	if rel == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	for _, a := range rel.Assets {
		if a.Name == name {
			apiError(w, http.StatusUnprocessableEntity, "Validation Failed: already_exists")
			return
		}
	}
	f.nextID++
	a := &Asset{ID: f.nextID, Name: name, Data: data}
	rel.Assets = append(rel.Assets, a)
	writeJSON(w, http.StatusCreated, f.assetJSON(a))
}

// Uploads counts the upload calls so far.
func (f *Server) Uploads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, "POST /api/uploads") {
			n++
		}
	}
	return n
}

// Release returns the release for tag, or nil.
func (f *Server) Release(tag string) *Release {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.releases[tag]
}

// Releases counts the releases.
func (f *Server) Releases() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.releases)
}

// Put adds (or replaces) an asset on the release for tag, creating the release.
func (f *Server) Put(tag, name string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rel := f.releases[tag]
	if rel == nil {
		f.nextID++
		rel = &Release{ID: f.nextID, Tag: tag, Name: tag}
		f.releases[tag] = rel
	}
	for _, a := range rel.Assets {
		if a.Name == name {
			a.Data = data
			return
		}
	}
	f.nextID++
	rel.Assets = append(rel.Assets, &Asset{ID: f.nextID, Name: name, Data: data})
}
