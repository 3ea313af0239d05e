package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lukechampine.com/blake3"
)

func TestParseServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://localhost:8080":      "http://localhost:8080",
		"https://vault.example/":     "https://vault.example",
		" https://x.example/api/ ":   "https://x.example/api",
		"ftp://x.example":            "",
		"localhost:8080":             "",
		"https://x.example/?a=b":     "",
		"https://user@x.example":     "",
		"https://x.example/#section": "",
	} {
		u, err := ParseServerURL(in)
		switch {
		case want == "" && err == nil:
			t.Errorf("ParseServerURL(%q) = %v, want an error", in, u)
		case want != "" && (err != nil || u.String() != want):
			t.Errorf("ParseServerURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
}

func TestSplitPath(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "/",
		"/":                "/",
		"docs":             "/docs",
		"/docs//a.txt/":    "/docs/a.txt",
		"./docs/./a":       "/docs/a",
		"/docs/../x":       "/x",
		"/../..":           "/",
		"/caf\u0065\u0301": "/caf\u00e9", // NFC, like the server
	} {
		if got := CleanPath(in); got != want {
			t.Errorf("CleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/nodes":
			w.Header().Set("X-Request-Id", "req-1")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"code":"not_found","message":"folder not found","request_id":"req-1"}`)
		case "/v1/files/commit":
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"code":"version_conflict","message":"stale base","request_id":"r","conflict":{"node":{"id":"n","path":"/a (conflicted copy).txt"},"version":{"number":1}}}`)
		default:
			w.Header().Set("X-Request-Id", "req-2")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "upstream down")
		}
	}))
	defer srv.Close()
	c, _ := New(srv.URL, Options{})
	ctx := context.Background()

	_, err := c.List(ctx, "", "", 0)
	e, ok := errors.AsType[*Error](err)
	if !ok || e.StatusCode != 404 || e.Code != CodeNotFound || e.Message != "folder not found" || e.RequestID != "req-1" || !IsNotFound(err) || !IsCode(err, CodeNotFound) {
		t.Errorf("404: %#v", err)
	}
	if got := err.Error(); got != "folder not found (not_found, request id req-1)" {
		t.Errorf("Error() = %q", got)
	}
	_, err = c.Commit(ctx, CommitRequest{UploadID: "u"})
	if e, ok := errors.AsType[*Error](err); !ok || e.Code != CodeVersionConflict || e.Conflict == nil || e.Conflict.Node.Path != "/a (conflicted copy).txt" {
		t.Errorf("409: %#v", err)
	}
	_, err = c.Version(ctx)
	if e, ok := errors.AsType[*Error](err); !ok || e.StatusCode != 502 || e.Code != "" || e.RequestID != "req-2" || !strings.Contains(err.Error(), "upstream down") {
		t.Errorf("502 without an error body: %#v (%v)", err, err)
	}
	if IsUnauthenticated(err) || IsNotFound(err) {
		t.Error("a 502 is neither 401 nor 404")
	}
}

// authServer accepts one access token at a time; refreshing rotates it (and the refresh
// token, refusing a spent one).
type authServer struct {
	mu        sync.Mutex
	access    string
	refresh   string
	refreshes int
	requests  []string // "path token"
}

func (s *authServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.requests = append(s.requests, r.URL.Path+" "+tok)
	if r.URL.Path == "/v1/auth/refresh" {
		var in struct {
			RefreshToken string `json:"refresh_token"`
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		if in.RefreshToken != s.refresh {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"code":"unauthenticated","message":"refresh token was already used","request_id":"x"}`)
			return
		}
		s.refreshes++
		s.access, s.refresh = fmt.Sprintf("access-%d", s.refreshes), fmt.Sprintf("refresh-%d", s.refreshes)
		_ = json.NewEncoder(w).Encode(Tokens{AccessToken: s.access, RefreshToken: s.refresh, ExpiresAt: time.Now().Add(time.Hour)})
		return
	}
	if tok != s.access {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"code":"token_expired","message":"token expired","request_id":"x"}`)
		return
	}
	fmt.Fprint(w, `{"nodes":[],"next_cursor":""}`)
}

// memStore is a SessionStore in memory.
type memStore struct {
	mu    sync.Mutex
	s     *Session
	saves int
}

func (m *memStore) Lock(context.Context) (*Session, func(), error) {
	m.mu.Lock()
	var cp *Session
	if m.s != nil {
		s := *m.s
		cp = &s
	}
	return cp, m.mu.Unlock, nil
}

func (m *memStore) Save(s Session) error { m.s = &s; m.saves++; return nil }

func TestRefreshOn401(t *testing.T) {
	as := &authServer{access: "access-0", refresh: "refresh-0"}
	srv := httptest.NewServer(as)
	defer srv.Close()
	store := &memStore{}
	// The access token is stale (the server has another one), its expiry unknown.
	c, _ := New(srv.URL, Options{Session: &Session{AccessToken: "stale", RefreshToken: "refresh-0"}, Store: store})
	if _, err := c.List(context.Background(), "", "", 0); err != nil {
		t.Fatal(err)
	}
	if as.refreshes != 1 || store.saves != 1 || store.s.RefreshToken != "refresh-1" || c.Session().AccessToken != "access-1" {
		t.Fatalf("refreshes %d, saves %d, stored %+v, session %+v", as.refreshes, store.saves, store.s, c.Session())
	}
	want := []string{"/v1/nodes stale", "/v1/auth/refresh ", "/v1/nodes access-1"}
	if strings.Join(as.requests, "|") != strings.Join(want, "|") {
		t.Errorf("requests %q, want %q", as.requests, want)
	}
}

func TestRefreshBeforeExpiry(t *testing.T) {
	as := &authServer{access: "access-0", refresh: "refresh-0"}
	srv := httptest.NewServer(as)
	defer srv.Close()
	c, _ := New(srv.URL, Options{Session: &Session{AccessToken: "access-0", ExpiresAt: time.Now().Add(-time.Minute), RefreshToken: "refresh-0"}})
	if _, err := c.List(context.Background(), "", "", 0); err != nil {
		t.Fatal(err)
	}
	want := []string{"/v1/auth/refresh ", "/v1/nodes access-1"}
	if strings.Join(as.requests, "|") != strings.Join(want, "|") {
		t.Errorf("requests %q, want %q: an expired token is refreshed first", as.requests, want)
	}
}

// TestRefreshAdoptsStoredRotation: another process rotated the session meanwhile; the client
// takes its tokens instead of spending its own (spent) refresh token.
func TestRefreshAdoptsStoredRotation(t *testing.T) {
	as := &authServer{access: "access-7", refresh: "refresh-7"}
	srv := httptest.NewServer(as)
	defer srv.Close()
	store := &memStore{s: &Session{AccessToken: "access-7", RefreshToken: "refresh-7", ExpiresAt: time.Now().Add(time.Hour)}}
	c, _ := New(srv.URL, Options{Session: &Session{AccessToken: "access-6", RefreshToken: "refresh-6"}, Store: store})
	if _, err := c.List(context.Background(), "", "", 0); err != nil {
		t.Fatal(err)
	}
	if as.refreshes != 0 || store.saves != 0 || c.Session().AccessToken != "access-7" {
		t.Errorf("refreshes %d, saves %d, session %+v: want the stored rotation adopted", as.refreshes, store.saves, c.Session())
	}
}

func TestRefreshRefused(t *testing.T) {
	as := &authServer{access: "access-0", refresh: "refresh-0"}
	srv := httptest.NewServer(as)
	defer srv.Close()
	c, _ := New(srv.URL, Options{Session: &Session{AccessToken: "stale", RefreshToken: "spent"}})
	_, err := c.List(context.Background(), "", "", 0)
	if !IsUnauthenticated(err) || !strings.Contains(err.Error(), "already used") {
		t.Errorf("err = %v, want the refresh's 401", err)
	}
	// Without a session: one request, its 401.
	c, _ = New(srv.URL, Options{})
	if _, err := c.List(context.Background(), "", "", 0); !IsCode(err, CodeTokenExpired) {
		t.Errorf("err = %v", err)
	}
}

func TestAPIToken(t *testing.T) {
	as := &authServer{access: "bvt_token"}
	srv := httptest.NewServer(as)
	defer srv.Close()
	c, _ := New(srv.URL, Options{APIToken: "bvt_token", Session: &Session{AccessToken: "ignored"}})
	if _, err := c.List(context.Background(), "", "", 0); err != nil {
		t.Fatal(err)
	}
	c, _ = New(srv.URL, Options{APIToken: "bvt_other"})
	if _, err := c.List(context.Background(), "", "", 0); !IsUnauthenticated(err) || as.refreshes != 0 {
		t.Errorf("a refused API token: %v, %d refreshes (want none)", err, as.refreshes)
	}
}

// storeServer is the upload and download protocol: the API on one server, the object store
// on another, which must never see the bearer token.
type storeServer struct {
	api, store *httptest.Server
	mu         sync.Mutex
	objects    map[string][]byte
	declared   NewUpload
	storeAuth  atomic.Bool
	cancels    atomic.Int32 // DELETE /v1/uploads/up-1
}

func newStoreServer(t *testing.T) *storeServer {
	s := &storeServer{objects: map[string][]byte{}}
	s.store = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			s.storeAuth.Store(true)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		switch r.Method {
		case http.MethodPut:
			if r.Header.Get("X-Signed") != "yes" {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			b, _ := io.ReadAll(r.Body)
			s.objects[r.URL.Path] = b
		case http.MethodGet:
			b, ok := s.objects[r.URL.Path]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			_, _ = w.Write(b)
		}
	}))
	s.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v1/files":
			_ = json.NewDecoder(r.Body).Decode(&s.declared)
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(Upload{ID: "up-1", Path: s.declared.Path, Put: Presigned{Method: "PUT", URL: s.store.URL + "/staging/up-1", Header: http.Header{"X-Signed": {"yes"}}}})
		case "/v1/files/commit":
			s.mu.Lock()
			b := s.objects["/staging/up-1"]
			s.mu.Unlock()
			sum := blake3.Sum256(b)
			if int64(len(b)) != s.declared.Size || hex.EncodeToString(sum[:]) != s.declared.BLAKE3 {
				w.WriteHeader(http.StatusUnprocessableEntity)
				fmt.Fprint(w, `{"code":"hash_mismatch","message":"bad","request_id":"r"}`)
				return
			}
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(CommitResult{Node: Node{ID: "n1", Path: s.declared.Path}, Version: Version{ID: "v1", Number: 1, Size: s.declared.Size, BLAKE3: s.declared.BLAKE3}})
		case "/v1/uploads/up-1":
			if r.Method != http.MethodDelete {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return
			}
			s.cancels.Add(1)
			w.WriteHeader(http.StatusNoContent)
		case "/v1/files/n1/content":
			w.Header().Set("Location", s.store.URL+"/staging/up-1")
			w.WriteHeader(http.StatusFound)
			fmt.Fprintf(w, `{"url":%q,"expires_at":"2030-01-01T00:00:00Z"}`, s.store.URL+"/staging/up-1")
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(s.api.Close)
	t.Cleanup(s.store.Close)
	return s
}

func opener(b []byte) Opener {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

func TestUploadDownload(t *testing.T) {
	s := newStoreServer(t)
	c, _ := New(s.api.URL, Options{APIToken: "tok"})
	ctx := context.Background()
	content := bytes.Repeat([]byte("0123456789"), 100_000)
	var phases []string
	res, err := c.Upload(ctx, "/a.bin", opener(content), UploadOptions{Progress: func(phase string, done, total int64) {
		if len(phases) == 0 || phases[len(phases)-1] != phase {
			phases = append(phases, phase)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	sum := blake3.Sum256(content)
	if s.declared.Size != int64(len(content)) || s.declared.BLAKE3 != hex.EncodeToString(sum[:]) || len(s.declared.SHA256) != 64 || res.Node.Path != "/a.bin" {
		t.Errorf("declared %+v, result %+v", s.declared, res)
	}
	if strings.Join(phases, ",") != "hash,upload" {
		t.Errorf("progress phases %v", phases)
	}
	var buf bytes.Buffer
	n, err := c.Download(ctx, "n1", &buf, DownloadOptions{Expect: &res.Version})
	if err != nil || n != int64(len(content)) || !bytes.Equal(buf.Bytes(), content) {
		t.Fatalf("download: %d, %v", n, err)
	}
	if s.storeAuth.Load() {
		t.Error("the object store got the bearer token")
	}
	// A version that is not what arrives: refused.
	bad := res.Version
	bad.Size++
	if _, err := c.Download(ctx, "n1", io.Discard, DownloadOptions{Expect: &bad}); !errors.Is(err, ErrContentMismatch) {
		t.Errorf("size mismatch: %v", err)
	}
	bad = res.Version
	bad.BLAKE3 = strings.Repeat("0", 64)
	if _, err := c.Download(ctx, "n1", io.Discard, DownloadOptions{Expect: &bad}); !errors.Is(err, ErrContentMismatch) {
		t.Errorf("hash mismatch: %v", err)
	}
}

// TestUploadChanged: content that changes between the hash pass and the upload is not
// committed, and the upload is cancelled.
func TestUploadChanged(t *testing.T) {
	s := newStoreServer(t)
	c, _ := New(s.api.URL, Options{APIToken: "tok"})
	calls := 0
	open := func() (io.ReadCloser, error) {
		calls++
		b := []byte("first content")
		if calls > 1 {
			b = []byte("other content") // same size
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	if _, err := c.Upload(context.Background(), "/a.txt", open, UploadOptions{}); !errors.Is(err, ErrChanged) {
		t.Errorf("err = %v, want ErrChanged", err)
	}
	if n := s.cancels.Load(); n != 1 {
		t.Errorf("%d cancellations of the upload, want 1", n)
	}
}

func TestEmptyUpload(t *testing.T) {
	s := newStoreServer(t)
	c, _ := New(s.api.URL, Options{APIToken: "tok"})
	res, err := c.Upload(context.Background(), "/empty", opener(nil), UploadOptions{})
	if err != nil || res.Version.Size != 0 {
		t.Fatalf("empty upload: %+v, %v", res, err)
	}
}
