package identity

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/httpx"
	"github.com/bitvault/bitvault/service/internal/platform/server"
	"github.com/bitvault/bitvault/service/internal/platform/uuid"
)

// api serves the fixture's Service through the production middleware.
type api struct {
	t   *testing.T
	url string
}

func newAPI(t *testing.T, f *fixture) *api {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", apierror.NotFound)
	logger := slog.New(slog.DiscardHandler)
	f.s.Routes(mux, logger)
	srv := httptest.NewServer(server.Handler(logger, mux))
	t.Cleanup(srv.Close)
	return &api{t: t, url: srv.URL}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into v.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

// errorCode returns the code of an error body, checking its shape.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var e apierror.Error
	r.decode(t, &e)
	if e.Message == "" || e.RequestID == "" || e.RequestID != r.header.Get("X-Request-Id") {
		t.Errorf("error body %s: want code, message and the request id %q", r.body, r.header.Get("X-Request-Id"))
	}
	return e.Code
}

func (a *api) do(method, path, bearer string, body any) response {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

type jsonObj = map[string]any

func TestHTTPCreateTenant(t *testing.T) {
	f := newFixture(t)
	a := newAPI(t, f)
	boot := f.s.cfg.BootstrapToken
	body := jsonObj{"slug": "acme", "name": "Acme", "owner": jsonObj{"email": "owner@acme.example", "password": ownerPassword, "display_name": "Wile"}}
	tests := []struct {
		name       string
		method     string
		bearer     string
		body       any
		wantStatus int
		wantCode   string
	}{
		{"no token", "POST", "", body, 401, apierror.CodeUnauthenticated},
		{"wrong token", "POST", boot + "x", body, 401, apierror.CodeUnauthenticated},
		{"not JSON", "POST", boot, "{", 400, apierror.CodeInvalidArgument},
		{"empty body", "POST", boot, "", 400, apierror.CodeInvalidArgument},
		{"two objects", "POST", boot, "{} {}", 400, apierror.CodeInvalidArgument},
		{"too large", "POST", boot, `{"name":"` + strings.Repeat("x", httpx.MaxBody) + `"}`, 413, apierror.CodeRequestTooLarge},
		{"invalid slug", "POST", boot, jsonObj{"slug": "ACME", "name": "Acme", "owner": body["owner"]}, 400, apierror.CodeInvalidArgument},
		{"created", "POST", boot, body, 201, ""},
		{"slug taken", "POST", boot, body, 409, apierror.CodeAlreadyExists},
		{"GET not allowed", "GET", boot, nil, 405, apierror.CodeMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(tt.method, "/v1/tenants", tt.bearer, tt.body)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, tt.wantStatus)
			}
			if tt.wantCode != "" {
				if code := r.errorCode(t); code != tt.wantCode {
					t.Errorf("code = %q, want %q", code, tt.wantCode)
				}
				return
			}
			var got createTenantResponse
			r.decode(t, &got)
			if got.Tenant.Slug != "acme" || got.Tenant.ID == "" || got.Owner.Role != RoleOwner || got.Owner.DisplayName != "Wile" {
				t.Errorf("response = %+v", got)
			}
			if strings.Contains(string(r.body), "password") {
				t.Errorf("response mentions the password: %s", r.body)
			}
		})
	}

	t.Run("disabled without a bootstrap token", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.BootstrapToken = "" })
		r := newAPI(t, f).do("POST", "/v1/tenants", "", body)
		if r.status != 404 || r.errorCode(t) != apierror.CodeNotFound {
			t.Errorf("status = %d %s, want 404 not_found", r.status, r.body)
		}
	})
}

func TestHTTPAuth(t *testing.T) {
	f := newFixture(t)
	f.tenant(t, "acme")
	a := newAPI(t, f)
	login := jsonObj{"tenant": "acme", "email": "owner@acme.example", "password": ownerPassword}

	r := a.do("POST", "/v1/auth/login", "", login)
	if r.status != 200 {
		t.Fatalf("login = %d %s", r.status, r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("token response Cache-Control = %q, want no-store", r.header.Get("Cache-Control"))
	}
	var tok tokenResponse
	r.decode(t, &tok)
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 900 || tok.AccessToken == "" || !strings.HasPrefix(tok.RefreshToken, "bvr_") || tok.Role != RoleOwner || tok.SessionID == "" {
		t.Errorf("login response = %+v", tok)
	}

	for _, tt := range []struct {
		name       string
		path       string
		body       any
		wantStatus int
		wantCode   string
	}{
		{"wrong password", "/v1/auth/login", jsonObj{"tenant": "acme", "email": "owner@acme.example", "password": "nope-nope-nope"}, 401, apierror.CodeUnauthenticated},
		{"unknown tenant", "/v1/auth/login", jsonObj{"tenant": "nope", "email": "owner@acme.example", "password": ownerPassword}, 401, apierror.CodeUnauthenticated},
		{"malformed login", "/v1/auth/login", "[1]", 400, apierror.CodeInvalidArgument},
		{"garbage refresh token", "/v1/auth/refresh", jsonObj{"refresh_token": "bvr_garbage"}, 401, apierror.CodeUnauthenticated},
		{"no refresh token", "/v1/auth/refresh", jsonObj{}, 401, apierror.CodeUnauthenticated},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("POST", tt.path, "", tt.body)
			if r.status != tt.wantStatus || r.errorCode(t) != tt.wantCode {
				t.Errorf("= %d %s, want %d %s", r.status, r.body, tt.wantStatus, tt.wantCode)
			}
		})
	}

	// Rotation, then reuse of the first refresh token revokes the session.
	r = a.do("POST", "/v1/auth/refresh", "", jsonObj{"refresh_token": tok.RefreshToken})
	if r.status != 200 {
		t.Fatalf("refresh = %d %s", r.status, r.body)
	}
	var rotated tokenResponse
	r.decode(t, &rotated)
	if rotated.RefreshToken == tok.RefreshToken || rotated.SessionID != tok.SessionID {
		t.Errorf("refresh response = %+v", rotated)
	}
	if r := a.do("GET", "/v1/api-tokens", rotated.AccessToken, nil); r.status != 200 {
		t.Errorf("GET /v1/api-tokens with the new access token = %d %s", r.status, r.body)
	}
	r = a.do("POST", "/v1/auth/refresh", "", jsonObj{"refresh_token": tok.RefreshToken})
	if r.status != 401 || !strings.Contains(string(r.body), "revoked") {
		t.Errorf("reused refresh = %d %s, want 401 session revoked", r.status, r.body)
	}
	for _, access := range []string{tok.AccessToken, rotated.AccessToken} {
		r := a.do("GET", "/v1/api-tokens", access, nil)
		if r.status != 401 || r.errorCode(t) != apierror.CodeUnauthenticated || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("access token after reuse = %d %s (WWW-Authenticate %q), want 401", r.status, r.body, r.header.Get("WWW-Authenticate"))
		}
	}

	// Logout with the access token, and with a refresh token.
	r = a.do("POST", "/v1/auth/login", "", login)
	r.decode(t, &tok)
	if r := a.do("POST", "/v1/auth/logout", tok.AccessToken, nil); r.status != 204 {
		t.Fatalf("logout = %d %s", r.status, r.body)
	}
	if r := a.do("GET", "/v1/api-tokens", tok.AccessToken, nil); r.status != 401 {
		t.Errorf("access token after logout = %d, want 401", r.status)
	}
	r = a.do("POST", "/v1/auth/login", "", login)
	r.decode(t, &tok)
	if r := a.do("POST", "/v1/auth/logout", "", jsonObj{"refresh_token": tok.RefreshToken}); r.status != 204 {
		t.Fatalf("logout by refresh token = %d %s", r.status, r.body)
	}
	if r := a.do("POST", "/v1/auth/refresh", "", jsonObj{"refresh_token": tok.RefreshToken}); r.status != 401 {
		t.Errorf("refresh after logout = %d, want 401", r.status)
	}

	// An expired access token says so.
	r = a.do("POST", "/v1/auth/login", "", login)
	r.decode(t, &tok)
	f.clock.Advance(DefaultAccessTTL)
	if r := a.do("GET", "/v1/api-tokens", tok.AccessToken, nil); r.status != 401 || r.errorCode(t) != apierror.CodeTokenExpired {
		t.Errorf("expired access token = %d %s, want 401 token_expired", r.status, r.body)
	}
	if r := a.do("GET", "/v1/auth/login", "", nil); r.status != 405 || r.header.Get("Allow") != "POST" {
		t.Errorf("GET /v1/auth/login = %d (Allow %q), want 405", r.status, r.header.Get("Allow"))
	}
}

func TestHTTPAPITokens(t *testing.T) {
	f := newFixture(t)
	f.tenant(t, "acme")
	a := newAPI(t, f)
	var tok tokenResponse
	a.do("POST", "/v1/auth/login", "", jsonObj{"tenant": "acme", "email": "owner@acme.example", "password": ownerPassword}).decode(t, &tok)
	access := tok.AccessToken

	if r := a.do("GET", "/v1/api-tokens", "", nil); r.status != 401 || r.errorCode(t) != apierror.CodeUnauthenticated || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no credentials = %d %s", r.status, r.body)
	}
	if r := a.do("GET", "/v1/api-tokens", "not-a-token", nil); r.status != 401 {
		t.Errorf("garbage credentials = %d %s", r.status, r.body)
	}

	create := func(body any) (createAPITokenResponse, response) {
		r := a.do("POST", "/v1/api-tokens", access, body)
		var out createAPITokenResponse
		if r.status == 201 {
			r.decode(t, &out)
		}
		return out, r
	}
	read, r := create(jsonObj{"name": "ci", "scopes": []string{"files:read"}, "expires_in_days": 30})
	if r.status != 201 || !strings.HasPrefix(read.Token, "bvt_") || read.APIToken.ID == "" {
		t.Fatalf("create = %d %s", r.status, r.body)
	}
	if want := f.clock.Now().Add(30 * 24 * time.Hour); !read.APIToken.ExpiresAt.Equal(want) {
		t.Errorf("expires_at = %s, want %s", read.APIToken.ExpiresAt, want)
	}
	admin, r := create(jsonObj{"name": "ops", "scopes": []string{"admin"}, "expires_at": f.clock.Now().Add(time.Hour).Format(time.RFC3339)})
	if r.status != 201 {
		t.Fatalf("create = %d %s", r.status, r.body)
	}
	for _, tt := range []struct {
		name     string
		body     any
		wantCode string
	}{
		{"both expiries", jsonObj{"name": "x", "scopes": []string{"files:read"}, "expires_in_days": 1, "expires_at": f.clock.Now().Add(time.Hour)}, apierror.CodeInvalidArgument},
		{"no expiry", jsonObj{"name": "x", "scopes": []string{"files:read"}}, apierror.CodeInvalidArgument},
		{"days out of range", jsonObj{"name": "x", "scopes": []string{"files:read"}, "expires_in_days": 100000000}, apierror.CodeInvalidArgument},
		{"unknown scope", jsonObj{"name": "x", "scopes": []string{"sudo"}, "expires_in_days": 1}, apierror.CodeInvalidArgument},
		{"scopes not a list", jsonObj{"name": "x", "scopes": "files:read", "expires_in_days": 1}, apierror.CodeInvalidArgument},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, r := create(tt.body)
			if r.status != 400 || r.errorCode(t) != tt.wantCode {
				t.Errorf("= %d %s, want 400 %s", r.status, r.body, tt.wantCode)
			}
		})
	}

	// The list never shows the token or its hash.
	r = a.do("GET", "/v1/api-tokens", access, nil)
	var list listAPITokensResponse
	r.decode(t, &list)
	if r.status != 200 || len(list.APITokens) != 2 {
		t.Fatalf("list = %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), read.Token) || strings.Contains(string(r.body), "hash") {
		t.Errorf("list leaks the token: %s", r.body)
	}

	// Scopes: a files:read token cannot manage tokens; an admin token can.
	if r := a.do("GET", "/v1/api-tokens", read.Token, nil); r.status != 403 || r.errorCode(t) != apierror.CodeInsufficientScope {
		t.Errorf("files:read token on /v1/api-tokens = %d %s, want 403 insufficient_scope", r.status, r.body)
	}
	if r := a.do("GET", "/v1/api-tokens", admin.Token, nil); r.status != 200 {
		t.Errorf("admin token on /v1/api-tokens = %d %s, want 200", r.status, r.body)
	}
	if r := a.do("POST", "/v1/auth/logout", admin.Token, nil); r.status != 400 {
		t.Errorf("logout with an API token = %d %s, want 400", r.status, r.body)
	}

	// Revocation.
	if r := a.do("DELETE", "/v1/api-tokens/"+read.APIToken.ID, access, nil); r.status != 204 {
		t.Fatalf("revoke = %d %s", r.status, r.body)
	}
	if r := a.do("DELETE", "/v1/api-tokens/"+read.APIToken.ID, access, nil); r.status != 204 {
		t.Errorf("revoke again = %d %s, want 204", r.status, r.body)
	}
	if r := a.do("GET", "/v1/api-tokens", read.Token, nil); r.status != 401 {
		t.Errorf("revoked token = %d %s, want 401", r.status, r.body)
	}
	for _, id := range []string{uuid.New(), "nope"} {
		if r := a.do("DELETE", "/v1/api-tokens/"+id, access, nil); r.status != 404 || r.errorCode(t) != apierror.CodeNotFound {
			t.Errorf("revoke %s = %d %s, want 404", id, r.status, r.body)
		}
	}
	if r := a.do("GET", "/v1/api-tokens/"+admin.APIToken.ID, access, nil); r.status != 405 || r.header.Get("Allow") != "DELETE" {
		t.Errorf("GET /v1/api-tokens/{id} = %d, want 405", r.status)
	}
	// Expiry.
	f.clock.Advance(time.Hour)
	if r := a.do("GET", "/v1/api-tokens", admin.Token, nil); r.status != 401 || r.errorCode(t) != apierror.CodeTokenExpired {
		t.Errorf("expired API token = %d %s, want 401 token_expired", r.status, r.body)
	}
}

func TestUnavailableRoutes(t *testing.T) {
	mux := http.NewServeMux()
	UnavailableRoutes(mux, "no database configured")
	srv := httptest.NewServer(server.Handler(slog.New(slog.DiscardHandler), mux))
	defer srv.Close()
	for _, p := range []string{"/v1/auth/login", "/v1/api-tokens", "/v1/api-tokens/x", "/v1/tenants"} {
		resp, err := http.Post(srv.URL+p, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("%s = %d, want 503", p, resp.StatusCode)
		}
	}
}
