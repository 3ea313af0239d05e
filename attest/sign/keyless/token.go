package keyless

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/bitvault/bitvault/internal/retry"
)

// Audience is the OIDC audience Fulcio accepts.
const Audience = "sigstore"

// TokenSource gives an OIDC identity token for an audience.
type TokenSource interface {
	Token(ctx context.Context, audience string) (string, error)
}

// Environment variables GitHub Actions sets for a job with `permissions: id-token: write`.
const (
	EnvRequestURL   = "ACTIONS_ID_TOKEN_REQUEST_URL"
	EnvRequestToken = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
)

// ErrNoIDToken says the job cannot get an OIDC token; its message names the fix.
var ErrNoIDToken = errors.New("no GitHub Actions OIDC token: the release job needs `permissions: id-token: write` (and `contents: read`) in the workflow")

// GitHubActions requests tokens from the Actions runtime's token service.
type GitHubActions struct {
	RequestURL, RequestToken string
	Client                   *http.Client
	Retry                    retry.Policy
	Notify                   func(attempt int, err error, wait time.Duration)
}

// GitHubActionsFromEnv reads the request URL and token from the environment; when either is
// missing the job was not granted id-token: write (or this is not GitHub Actions).
func GitHubActionsFromEnv() (*GitHubActions, error) {
	u, t := os.Getenv(EnvRequestURL), os.Getenv(EnvRequestToken)
	if u == "" || t == "" {
		var missing []string
		for _, k := range []string{EnvRequestURL, EnvRequestToken} {
			if os.Getenv(k) == "" {
				missing = append(missing, k)
			}
		}
		return nil, fmt.Errorf("%w (%s not set)", ErrNoIDToken, strings.Join(missing, ", "))
	}
	return &GitHubActions{RequestURL: u, RequestToken: t, Retry: retry.Default}, nil
}

// Token implements TokenSource.
func (g *GitHubActions) Token(ctx context.Context, audience string) (string, error) {
	u, err := url.Parse(g.RequestURL)
	if err != nil {
		return "", fmt.Errorf("%s: %w", EnvRequestURL, err)
	}
	q := u.Query()
	q.Set("audience", audience)
	u.RawQuery = q.Encode()
	client := g.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	var token string
	err = retry.Do(ctx, g.Retry, "GitHub Actions OIDC token request to "+u.Host, g.Notify, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return retry.Permanent(err)
		}
		req.Header.Set("Authorization", "bearer "+g.RequestToken)
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		switch {
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return retry.Permanent(fmt.Errorf("%w: the token service answered %s: %s", ErrNoIDToken, resp.Status, strings.TrimSpace(string(body))))
		case resp.StatusCode != http.StatusOK:
			return retry.HTTPStatus(resp.StatusCode, fmt.Errorf("token service answered %s: %s", resp.Status, strings.TrimSpace(string(body))))
		}
		var v struct {
			Value string `json:"value"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v.Value == "" {
			return retry.Permanent(fmt.Errorf("token service answered without a token (%v)", err))
		}
		token = v.Value
		return nil
	})
	return token, err
}

// Claims are the JWT claims the signer needs before Fulcio sees the token.
type Claims struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	Expiry  int64  `json:"exp"`
}

// ParseClaims reads a JWT's claims without checking its signature (Fulcio checks it); the
// subject is what the proof of possession signs.
func ParseClaims(token string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, errors.New("OIDC token is not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Claims{}, fmt.Errorf("OIDC token claims: %w", err)
	}
	var c Claims
	if err := json.Unmarshal(raw, &c); err != nil {
		return Claims{}, fmt.Errorf("OIDC token claims: %w", err)
	}
	if c.Subject == "" {
		return Claims{}, errors.New("OIDC token has no subject")
	}
	return c, nil
}
