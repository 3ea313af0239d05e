package identity

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/httpx"
)

// Paths served by Routes.
var paths = []string{"/v1/tenants", "/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout", "/v1/api-tokens", "/v1/api-tokens/{id}"}

// Routes adds the identity endpoints to mux:
//
//	POST   /v1/tenants           create a tenant and its owner (bootstrap token)
//	POST   /v1/auth/login        {tenant, email, password} → tokens (429 while rate limited)
//	POST   /v1/auth/refresh      {refresh_token} → tokens (rotated)
//	POST   /v1/auth/logout       bearer access token, or {refresh_token}
//	GET    /v1/api-tokens        the caller's API tokens
//	POST   /v1/api-tokens        {name, scopes, expires_at | expires_in_days} → token, shown once
//	DELETE /v1/api-tokens/{id}   revoke
func (s *Service) Routes(mux *http.ServeMux, logger *slog.Logger) {
	h := &handlers{s: s, logger: logger}
	mux.Handle("/v1/tenants", apierror.Methods(http.HandlerFunc(h.createTenant), http.MethodPost))
	mux.Handle("/v1/auth/login", apierror.Methods(http.HandlerFunc(h.login), http.MethodPost))
	mux.Handle("/v1/auth/refresh", apierror.Methods(http.HandlerFunc(h.refresh), http.MethodPost))
	mux.Handle("/v1/auth/logout", apierror.Methods(http.HandlerFunc(h.logout), http.MethodPost))
	mux.Handle("/v1/api-tokens", apierror.Methods(h.authenticated(h.apiTokens), http.MethodGet, http.MethodPost))
	mux.Handle("/v1/api-tokens/{id}", apierror.Methods(h.authenticated(h.revokeAPIToken), http.MethodDelete))
}

// UnavailableRoutes answers every identity endpoint with 503 and message, for a bitvaultd
// running without a database.
func UnavailableRoutes(mux *http.ServeMux, message string) {
	httpx.Unavailable(mux, paths, message)
}

type handlers struct {
	s      *Service
	logger *slog.Logger
}

func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrTokenExpired) || errors.Is(err, ErrSessionEnded) || errors.Is(err, ErrAPITokenRevoked) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="bitvault", error="invalid_token"`)
	}
	apierror.WriteError(w, r, h.logger, err)
}

// bearer returns the token of an "Authorization: Bearer" header, or "".
func bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// Authenticated is the authentication middleware for other modules' handlers: it runs next
// with the principal of the request's bearer token (an access token or an API token), or
// answers 401 with a WWW-Authenticate challenge. Authorization stays with the caller
// (Authorize).
func (s *Service) Authenticated(logger *slog.Logger, next func(http.ResponseWriter, *http.Request, Principal)) http.Handler {
	h := &handlers{s: s, logger: logger}
	return h.authenticated(next)
}

// authenticated runs next with the request's principal, or answers 401.
func (h *handlers) authenticated(next func(http.ResponseWriter, *http.Request, Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearer(r)
		if token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bitvault"`)
			apierror.WriteCode(w, r, apierror.CodeUnauthenticated, "missing bearer token (Authorization: Bearer <access token or API token>)")
			return
		}
		p, err := h.s.Authenticate(r.Context(), token)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		next(w, r, p)
	})
}

type createTenantRequest struct {
	Slug  string `json:"slug"`
	Name  string `json:"name"`
	Owner struct {
		Email       string `json:"email"`
		Password    string `json:"password"`
		DisplayName string `json:"display_name"`
	} `json:"owner"`
}

type createTenantResponse struct {
	Tenant Tenant `json:"tenant"`
	Owner  User   `json:"owner"`
}

func (h *handlers) createTenant(w http.ResponseWriter, r *http.Request) {
	want := h.s.cfg.BootstrapToken
	if want == "" {
		apierror.WriteCode(w, r, apierror.CodeNotFound, "tenant bootstrap over HTTP is disabled (set BITVAULT_BOOTSTRAP_TOKEN, or run 'bitvaultd admin create-tenant')")
		return
	}
	got, wantSum := sha256.Sum256([]byte(bearer(r))), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(got[:], wantSum[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="bitvault-bootstrap"`)
		apierror.WriteCode(w, r, apierror.CodeUnauthenticated, "creating a tenant needs the bootstrap token as bearer token")
		return
	}
	var req createTenantRequest
	if err := httpx.Decode(w, r, &req, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	t, u, err := h.s.CreateTenant(r.Context(), NewTenant{Slug: req.Slug, Name: req.Name, OwnerEmail: req.Owner.Email, OwnerPassword: req.Owner.Password, OwnerName: req.Owner.DisplayName})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.logger.InfoContext(r.Context(), "tenant created", slog.String("tenant_id", t.ID), slog.String("slug", t.Slug))
	httpx.WriteJSON(w, http.StatusCreated, createTenantResponse{Tenant: t, Owner: u})
}

// tokenResponse is the body of login and refresh.
type tokenResponse struct {
	TokenType        string    `json:"token_type"`
	AccessToken      string    `json:"access_token"`
	ExpiresIn        int64     `json:"expires_in"`
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshToken     string    `json:"refresh_token"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
	TenantID         string    `json:"tenant_id"`
	UserID           string    `json:"user_id"`
	Role             Role      `json:"role"`
	SessionID        string    `json:"session_id"`
}

func (h *handlers) writeTokens(w http.ResponseWriter, t Tokens) {
	httpx.WriteJSON(w, http.StatusOK, tokenResponse{
		TokenType:        "Bearer",
		AccessToken:      t.AccessToken,
		ExpiresIn:        int64(t.AccessExpiresAt.Sub(h.s.now()).Round(time.Second) / time.Second),
		ExpiresAt:        t.AccessExpiresAt,
		RefreshToken:     t.RefreshToken,
		RefreshExpiresAt: t.RefreshExpiresAt,
		TenantID:         t.Principal.TenantID,
		UserID:           t.Principal.UserID,
		Role:             t.Principal.Role,
		SessionID:        t.Principal.SessionID,
	})
}

func (h *handlers) login(w http.ResponseWriter, r *http.Request) {
	var c Credentials
	if err := httpx.Decode(w, r, &c, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	c.ClientIP = h.s.cfg.Limits.ClientIP(r)
	t, err := h.s.Login(r.Context(), c)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeTokens(w, t)
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (h *handlers) refresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if err := httpx.Decode(w, r, &req, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	t, err := h.s.Refresh(r.Context(), req.RefreshToken)
	if errors.Is(err, ErrRefreshReused) {
		h.logger.WarnContext(r.Context(), "refresh token reused: session revoked")
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeTokens(w, t)
}

// logout revokes the session of the bearer access token or, without one, of the refresh
// token in the body (the access token may have expired).
func (h *handlers) logout(w http.ResponseWriter, r *http.Request) {
	if bearer(r) != "" {
		h.authenticated(func(w http.ResponseWriter, r *http.Request, p Principal) {
			if err := h.s.Logout(r.Context(), p); err != nil {
				h.fail(w, r, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}).ServeHTTP(w, r)
		return
	}
	var req refreshRequest
	if err := httpx.Decode(w, r, &req, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.s.LogoutRefresh(r.Context(), req.RefreshToken); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type createAPITokenRequest struct {
	Name          string     `json:"name"`
	Scopes        []string   `json:"scopes"`
	ExpiresAt     *time.Time `json:"expires_at"`
	ExpiresInDays *int       `json:"expires_in_days"`
}

type createAPITokenResponse struct {
	APIToken APIToken `json:"api_token"`
	// Token is shown only in this response.
	Token string `json:"token"`
}

type listAPITokensResponse struct {
	APITokens []APIToken `json:"api_tokens"`
}

func (h *handlers) apiTokens(w http.ResponseWriter, r *http.Request, p Principal) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		list, err := h.s.ListAPITokens(r.Context(), p)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, listAPITokensResponse{APITokens: list})
		return
	}
	var req createAPITokenRequest
	if err := httpx.Decode(w, r, &req, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	in := NewAPIToken{Name: req.Name, Scopes: req.Scopes}
	switch {
	case req.ExpiresAt != nil && req.ExpiresInDays != nil:
		h.fail(w, r, invalid("give expires_at or expires_in_days, not both"))
		return
	case req.ExpiresAt != nil:
		in.ExpiresAt = *req.ExpiresAt
	case req.ExpiresInDays != nil:
		if maxDays := int(h.s.cfg.MaxAPITokenTTL / (24 * time.Hour)); *req.ExpiresInDays < 1 || *req.ExpiresInDays > maxDays {
			h.fail(w, r, invalid("expires_in_days must be between 1 and %d", maxDays))
			return
		}
		in.ExpiresAt = h.s.now().Add(time.Duration(*req.ExpiresInDays) * 24 * time.Hour)
	}
	t, token, err := h.s.CreateAPIToken(r.Context(), p, in)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, createAPITokenResponse{APIToken: t, Token: token})
}

func (h *handlers) revokeAPIToken(w http.ResponseWriter, r *http.Request, p Principal) {
	if err := h.s.RevokeAPIToken(r.Context(), p, r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
