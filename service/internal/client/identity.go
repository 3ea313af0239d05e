package client

import (
	"context"
	"net/http"
	"time"
)

// Credentials log a user in.
type Credentials struct {
	// Tenant is the tenant's slug.
	Tenant   string `json:"tenant"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Tokens is the answer of login and refresh.
type Tokens struct {
	TokenType        string    `json:"token_type"`
	AccessToken      string    `json:"access_token"`
	ExpiresIn        int64     `json:"expires_in"`
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshToken     string    `json:"refresh_token"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
	TenantID         string    `json:"tenant_id"`
	UserID           string    `json:"user_id"`
	Role             string    `json:"role"`
	SessionID        string    `json:"session_id"`
}

// Session returns the tokens' session part.
func (t Tokens) Session() Session {
	return Session{AccessToken: t.AccessToken, ExpiresAt: t.ExpiresAt, RefreshToken: t.RefreshToken, RefreshExpiresAt: t.RefreshExpiresAt}
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// Login starts a session (POST /v1/auth/login) and makes it the client's.
func (c *Client) Login(ctx context.Context, cr Credentials) (Tokens, error) {
	var t Tokens
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/auth/login", body: cr}, &t); err != nil {
		return Tokens{}, err
	}
	s := t.Session()
	c.SetSession(&s)
	return t, nil
}

// Refresh rotates the session's tokens now (POST /v1/auth/refresh).
func (c *Client) Refresh(ctx context.Context) (Session, error) {
	c.mu.Lock()
	stale := ""
	if c.session != nil {
		stale = c.session.AccessToken
	}
	c.mu.Unlock()
	if err := c.refresh(ctx, stale); err != nil {
		return Session{}, err
	}
	return *c.Session(), nil
}

// Logout ends the client's session (POST /v1/auth/logout): with its access token, or, if
// that is refused, with its refresh token. The client forgets the session either way.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	s := c.session
	c.session = nil
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/auth/logout", bearer: s.AccessToken, want: http.StatusNoContent}, nil)
	if err != nil && IsUnauthenticated(err) && s.RefreshToken != "" {
		_, err = c.do(ctx, request{method: http.MethodPost, path: "/v1/auth/logout", body: refreshRequest{RefreshToken: s.RefreshToken}, want: http.StatusNoContent}, nil)
	}
	return err
}

// Tenant is a tenant.
type Tenant struct {
	ID        string    `json:"id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// User is a user of a tenant.
type User struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	Email       string    `json:"email"`
	DisplayName string    `json:"display_name"`
	Role        string    `json:"role"`
	CreatedAt   time.Time `json:"created_at"`
}

// NewTenant is the input of CreateTenant.
type NewTenant struct {
	Slug  string   `json:"slug"`
	Name  string   `json:"name"`
	Owner NewOwner `json:"owner"`
}

// NewOwner is a new tenant's owner.
type NewOwner struct {
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name,omitempty"`
}

// CreatedTenant is the answer of CreateTenant.
type CreatedTenant struct {
	Tenant Tenant `json:"tenant"`
	Owner  User   `json:"owner"`
}

// CreateTenant creates a tenant and its owner (POST /v1/tenants) with the server's bootstrap
// token.
func (c *Client) CreateTenant(ctx context.Context, bootstrapToken string, in NewTenant) (CreatedTenant, error) {
	var out CreatedTenant
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/tenants", body: in, bearer: bootstrapToken, want: http.StatusCreated}, &out)
	return out, err
}

// APIToken describes an API token (never the token itself).
type APIToken struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// NewAPIToken is the input of CreateAPIToken: give ExpiresAt or ExpiresInDays.
type NewAPIToken struct {
	Name          string     `json:"name"`
	Scopes        []string   `json:"scopes"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	ExpiresInDays *int       `json:"expires_in_days,omitempty"`
}

// CreatedAPIToken is the answer of CreateAPIToken; Token is shown only there.
type CreatedAPIToken struct {
	APIToken APIToken `json:"api_token"`
	Token    string   `json:"token"`
}

// CreateAPIToken creates an API token for the caller (POST /v1/api-tokens).
func (c *Client) CreateAPIToken(ctx context.Context, in NewAPIToken) (CreatedAPIToken, error) {
	var out CreatedAPIToken
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/api-tokens", body: in, auth: true, want: http.StatusCreated}, &out)
	return out, err
}

// ListAPITokens lists the caller's API tokens (GET /v1/api-tokens).
func (c *Client) ListAPITokens(ctx context.Context) ([]APIToken, error) {
	var out struct {
		APITokens []APIToken `json:"api_tokens"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/api-tokens", auth: true}, &out)
	return out.APITokens, err
}

// RevokeAPIToken revokes an API token (DELETE /v1/api-tokens/{id}).
func (c *Client) RevokeAPIToken(ctx context.Context, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/api-tokens/" + pathID(id), auth: true, want: http.StatusNoContent}, nil)
	return err
}

// ServerVersion is the answer of GET /v1/version.
type ServerVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Commit  string `json:"commit"`
}

// Version returns the server's version (GET /v1/version).
func (c *Client) Version(ctx context.Context) (ServerVersion, error) {
	var out ServerVersion
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/version"}, &out)
	return out, err
}
