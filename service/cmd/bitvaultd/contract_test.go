package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bitvault/bitvault/service/api"
	"github.com/bitvault/bitvault/service/internal/client"
)

// TestAPIContract calls every operation of service/api/openapi.yaml on bitvaultd (through
// the typed client where it has the call, raw HTTP otherwise) and checks all the traffic,
// requests and answers, successes and errors, against the document's schemas; every
// documented operation must have answered a success at least once.
func TestAPIContract(t *testing.T) {
	s := newStack(t, "fs")
	newTenant(t, s)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	raw := func(method, path, bearer string, body any, header ...string) (int, []byte, http.Header) {
		t.Helper()
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, s.URL+path, r)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		must(err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}
	want := func(code, status int, what string, body []byte) {
		t.Helper()
		if code != status {
			t.Fatalf("%s = %d, want %d: %s", what, code, status, body)
		}
	}

	// Meta and identity.
	for _, p := range []string{"/healthz", "/readyz"} {
		code, b, _ := raw("GET", p, "", nil)
		want(code, 200, p, b)
	}
	c, _ := client.New(s.URL, client.Options{})
	_, err := c.Version(ctx)
	must(err)
	tok, err := c.Login(ctx, client.Credentials{Tenant: "acme", Email: "owner@acme.example", Password: ownerPassword})
	must(err)
	_, err = c.Refresh(ctx)
	must(err)
	access := c.Session().AccessToken
	days := 7
	at, err := c.CreateAPIToken(ctx, client.NewAPIToken{Name: "ci", Scopes: []string{"files:read", "files:write"}, ExpiresInDays: &days})
	must(err)
	_, err = c.ListAPITokens(ctx)
	must(err)
	must(c.RevokeAPIToken(ctx, at.APIToken.ID))
	if _, err := c.Login(ctx, client.Credentials{Tenant: "acme", Email: "owner@acme.example", Password: "wrong-password"}); !client.IsUnauthenticated(err) {
		t.Fatalf("wrong password: %v", err)
	}
	c.SetSession(&client.Session{AccessToken: access, RefreshToken: c.Session().RefreshToken})
	_ = tok

	// Files, with the filesystem backend's blobs.
	content := []byte("contract content")
	res, err := c.Upload(ctx, "/c/a.txt", func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil }, client.UploadOptions{})
	must(err)
	var buf bytes.Buffer
	_, err = c.Download(ctx, res.Node.ID, &buf, client.DownloadOptions{Expect: &res.Version})
	must(err)
	folder, err := c.CreateFolder(ctx, "/c/sub")
	must(err)
	_, err = c.List(ctx, "", "", 10)
	must(err)
	_, err = c.Node(ctx, res.Node.ID)
	must(err)
	_, err = c.Move(ctx, res.Node.ID, client.Placement{ParentID: &folder.ID})
	must(err)
	cp, err := c.Copy(ctx, res.Node.ID, client.Placement{Name: new("b.txt")})
	must(err)
	_, err = c.Versions(ctx, res.Node.ID)
	must(err)
	_, err = c.Trash(ctx, cp.Node.ID)
	must(err)
	_, err = c.ListTrash(ctx, "", 10)
	must(err)
	_, err = c.Restore(ctx, cp.Node.ID, new("restored.txt"))
	must(err)
	_, err = c.Trash(ctx, cp.Node.ID)
	must(err)
	must(c.Purge(ctx, cp.Node.ID))
	// A stale base: 409 version_conflict with the conflicted copy.
	_, err = c.Upload(ctx, "/c/sub/a.txt", func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("v2")), nil }, client.UploadOptions{BaseVersion: new("00000000-0000-4000-8000-000000000000")})
	if !client.IsCode(err, client.CodeVersionConflict) {
		t.Fatalf("stale base: %v", err)
	}
	if _, err := c.Node(ctx, "00000000-0000-4000-8000-000000000000"); !client.IsNotFound(err) {
		t.Fatalf("missing node: %v", err)
	}

	// Multipart uploads, on an S3 stack (the filesystem backend has none): its traffic is
	// checked and counted with this stack's.
	s.adopt(contractMultipart(t))

	// Sync.
	dev, err := c.RegisterDevice(ctx, client.NewDevice{Name: "laptop"})
	must(err)
	_, err = c.ListDevices(ctx)
	must(err)
	_, err = c.Device(ctx, dev.ID)
	must(err)
	pos, err := c.SyncCursor(ctx)
	must(err)
	_, err = c.Changes(ctx, 0, 5)
	must(err)
	_, err = c.SetDeviceCursor(ctx, dev.ID, pos.Cursor)
	must(err)
	if _, err := c.Changes(ctx, pos.Cursor+100, 0); !client.IsCode(err, client.CodeCursorStale) {
		t.Fatalf("cursor ahead: %v", err)
	}
	must(c.DeleteDevice(ctx, dev.ID))

	// Sharing and search.
	sh, err := c.Share(ctx, folder.ID, client.NewShare{Email: "member@acme.example", Role: client.ShareViewer})
	must(err)
	_, err = c.Shares(ctx, folder.ID)
	must(err)
	member, _ := client.New(s.URL, client.Options{})
	_, err = member.Login(ctx, client.Credentials{Tenant: "acme", Email: "member@acme.example", Password: ownerPassword})
	must(err)
	_, err = member.SharedWithMe(ctx)
	must(err)
	must(c.RevokeShare(ctx, folder.ID, sh.ID))
	link, err := c.CreateLink(ctx, res.Node.ID, client.NewLink{Password: new("link-password-1")})
	must(err)
	_, err = c.Links(ctx, res.Node.ID)
	must(err)
	_, err = c.ResolveLink(ctx, link.Token, "link-password-1")
	must(err)
	code, b, _ := raw("POST", "/v1/links/"+link.Token, "", map[string]string{"password": "link-password-1"})
	want(code, http.StatusFound, "POST /v1/links/{token}", b)
	if _, err := c.ResolveLink(ctx, link.Token, ""); !client.IsUnauthenticated(err) {
		t.Fatalf("link without its password: %v", err)
	}
	must(c.RevokeLink(ctx, res.Node.ID, link.Link.ID))
	_, err = c.Search(ctx, "contract", "", 0)
	must(err)

	// Admin.
	code, b, _ = raw("GET", "/v1/admin/quota", access, nil)
	want(code, 200, "GET quota", b)
	code, b, _ = raw("PUT", "/v1/admin/quota", access, map[string]any{"bytes_limit": 1 << 30, "files_limit": nil})
	want(code, 200, "PUT quota", b)
	code, b, _ = raw("GET", "/v1/admin/usage", access, nil)
	want(code, 200, "GET usage", b)
	code, b, _ = raw("PUT", "/v1/admin/flags", access, map[string]any{"flags": map[string]any{"beta.ui": true}})
	want(code, 200, "PUT flags", b)
	code, b, _ = raw("GET", "/v1/admin/flags", access, nil)
	want(code, 200, "GET flags", b)
	code, b, _ = raw("POST", "/v1/admin/users", access, map[string]any{"email": "new@acme.example", "password": "new-user-password", "role": "viewer"})
	want(code, 201, "POST users", b)
	var u struct {
		ID string `json:"id"`
	}
	must(json.Unmarshal(b, &u))
	code, b, _ = raw("PATCH", "/v1/admin/users/"+u.ID, access, map[string]any{"role": "member"})
	want(code, 200, "PATCH user", b)
	code, b, _ = raw("GET", "/v1/admin/users", access, nil)
	want(code, 200, "GET users", b)
	code, b, _ = raw("GET", "/v1/admin/audit?limit=5", access, nil)
	want(code, 200, "GET audit", b)
	code, b, _ = raw("GET", "/v1/admin/audit", "", nil)
	want(code, 401, "GET audit without a token", b)
	code, b, _ = raw("DELETE", "/v1/admin/usage", access, nil)
	want(code, 405, "DELETE usage", b)

	// Webhooks.
	code, b, _ = raw("POST", "/v1/webhooks", access, map[string]any{"url": "https://hooks.example/bitvault", "events": []string{"files.version.created"}})
	want(code, 201, "POST webhooks", b)
	var hook struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	must(json.Unmarshal(b, &hook))
	if hook.Secret == "" {
		t.Fatalf("POST webhooks without a secret: %s", b)
	}
	code, b, _ = raw("GET", "/v1/webhooks", access, nil)
	want(code, 200, "GET webhooks", b)
	code, b, _ = raw("GET", "/v1/webhooks/"+hook.ID+"/deliveries?limit=10", access, nil)
	want(code, 200, "GET webhook deliveries", b)
	code, b, _ = raw("POST", "/v1/webhooks", access, map[string]any{"url": "not a url"})
	want(code, 400, "POST webhooks with a bad url", b)
	code, b, _ = raw("DELETE", "/v1/webhooks/"+hook.ID, access, nil)
	want(code, 204, "DELETE webhook", b)
	code, b, _ = raw("DELETE", "/v1/webhooks/"+hook.ID, access, nil)
	want(code, 404, "DELETE webhook again", b)

	// A tenant over HTTP; logging out with the refresh token, then with the access token.
	_, err = c.CreateTenant(ctx, bootstrap, client.NewTenant{Slug: "other", Name: "Other", Owner: client.NewOwner{Email: "o@other.example", Password: ownerPassword}})
	must(err)
	code, b, _ = raw("POST", "/v1/auth/logout", "", map[string]string{"refresh_token": member.Session().RefreshToken})
	want(code, 204, "logout with the refresh token", b)
	must(c.Logout(ctx))

	s.checkTraffic(t)

	// Coverage: every documented operation answered a success.
	doc, err := api.Parse(api.OpenAPI)
	must(err)
	succeeded := map[string]bool{}
	s.mu.Lock()
	for _, ex := range s.exchanges {
		if ex.status < 400 {
			succeeded[ex.method+" "+muxPath(ex.pattern)] = true
		}
	}
	s.mu.Unlock()
	for _, r := range doc.Routes() {
		if !succeeded[r.Method+" "+muxPath(r.Pattern)] {
			t.Errorf("%s %s was not exercised (no success answer): add it to TestAPIContract", r.Method, r.Path)
		}
	}
}
