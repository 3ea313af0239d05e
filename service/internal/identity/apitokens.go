package identity

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bitvault/bitvault/service/internal/audit"
	"github.com/bitvault/bitvault/service/internal/db"
)

// APIToken describes an API token; the token itself is shown only once, by CreateAPIToken.
type APIToken struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []Scope    `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// NewAPIToken is the input of CreateAPIToken.
type NewAPIToken struct {
	Name      string
	Scopes    []string
	ExpiresAt time.Time
}

// lastUsedResolution bounds how often a token's last_used_at is written.
const lastUsedResolution = time.Minute

// CreateAPIToken creates an API token for p's user and returns it with the token, which is
// not stored (only its SHA-256 is) and cannot be shown again. The scopes must be within what
// the user's role allows and, when p is itself an API token, within its scopes; the expiry
// is mandatory, in the future and at most MaxAPITokenTTL away.
func (s *Service) CreateAPIToken(ctx context.Context, p Principal, in NewAPIToken) (APIToken, string, error) {
	if err := Authorize(p, PermAPITokensManage); err != nil {
		return APIToken{}, "", err
	}
	name := strings.TrimSpace(in.Name)
	if name == "" || len(name) > 100 {
		return APIToken{}, "", invalid("name: 1 to 100 characters")
	}
	scopes, err := normalizeScopes(in.Scopes)
	if err != nil {
		return APIToken{}, "", err
	}
	for _, sc := range scopes {
		if !canGrantScope(p, sc) {
			return APIToken{}, "", ErrPermissionDenied
		}
	}
	now := s.now()
	switch {
	case in.ExpiresAt.IsZero():
		return APIToken{}, "", invalid("expiry is required (API tokens cannot live forever)")
	case !in.ExpiresAt.After(now):
		return APIToken{}, "", invalid("expiry must be in the future")
	case in.ExpiresAt.After(now.Add(s.cfg.MaxAPITokenTTL)):
		return APIToken{}, "", invalid("expiry must be at most %d days away", int(s.cfg.MaxAPITokenTTL/(24*time.Hour)))
	}
	token, hash := newOpaqueToken(prefixAPIToken, p.TenantID)
	t := APIToken{UserID: p.UserID, Name: name, Prefix: displayPrefix(token), Scopes: scopes, ExpiresAt: in.ExpiresAt.UTC()}
	err = db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO api_tokens (tenant_id, user_id, name, token_hash, prefix, scopes, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, created_at`,
			p.TenantID, p.UserID, name, hash, t.Prefix, scopeStrings(scopes), now, t.ExpiresAt).Scan(&t.ID, &t.CreatedAt); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p.TenantID, p.UserID, audit.APITokenCreated, t.ID, map[string]any{"name": name, "scopes": scopeStrings(scopes), "prefix": t.Prefix})
	})
	if err != nil {
		return APIToken{}, "", wrap("create API token", err)
	}
	return t, token, nil
}

// ListAPITokens lists p's user's API tokens, newest first, revoked and expired ones included.
func (s *Service) ListAPITokens(ctx context.Context, p Principal) ([]APIToken, error) {
	if err := Authorize(p, PermAPITokensManage); err != nil {
		return nil, err
	}
	var out []APIToken
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, user_id, name, prefix, scopes, created_at, expires_at, last_used_at, revoked_at
FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id`, p.UserID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIToken, error) {
			var t APIToken
			var scopes []string
			err := r.Scan(&t.ID, &t.UserID, &t.Name, &t.Prefix, &scopes, &t.CreatedAt, &t.ExpiresAt, &t.LastUsedAt, &t.RevokedAt)
			for _, sc := range scopes {
				t.Scopes = append(t.Scopes, Scope(sc))
			}
			return t, err
		})
		return err
	})
	if err != nil {
		return nil, wrap("list API tokens", err)
	}
	if out == nil {
		out = []APIToken{}
	}
	return out, nil
}

// RevokeAPIToken revokes one of p's user's API tokens, or any token of the tenant with
// api_tokens:admin. Revoking a revoked token is not an error; a token p may not revoke is
// ErrNotFound, like one that does not exist.
func (s *Service) RevokeAPIToken(ctx context.Context, p Principal, id string) error {
	if err := Authorize(p, PermAPITokensManage); err != nil {
		return err
	}
	id, ok := parseUUID(id)
	if !ok {
		return ErrNotFound
	}
	anyUser := Authorize(p, PermAPITokensAdmin) == nil
	var found bool
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		var revoked *time.Time
		err := tx.QueryRow(ctx, "SELECT revoked_at FROM api_tokens WHERE id = $1 AND (user_id = $2 OR $3) FOR UPDATE",
			id, p.UserID, anyUser).Scan(&revoked)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		if revoked != nil {
			return nil
		}
		if _, err = tx.Exec(ctx, "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1", id, s.now()); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p.TenantID, p.UserID, audit.APITokenRevoked, id, nil)
	})
	if err != nil {
		return wrap("revoke API token", err)
	}
	if !found {
		return ErrNotFound
	}
	return nil
}

// authenticateAPIToken resolves an API token to its principal.
func (s *Service) authenticateAPIToken(ctx context.Context, token string) (Principal, error) {
	tenantID, hash, err := parseOpaqueToken(prefixAPIToken, token)
	if err != nil {
		return Principal{}, ErrUnauthenticated
	}
	now := s.now()
	var p Principal
	var outcome error
	err = db.WithTenant(ctx, s.pool, tenantID, func(tx pgx.Tx) error {
		var scopes []string
		var expires time.Time
		var lastUsed, revoked *time.Time
		var status string
		var role *Role
		err := tx.QueryRow(ctx, `SELECT t.id, t.user_id, t.scopes, t.expires_at, t.last_used_at, t.revoked_at, u.status, m.role
FROM api_tokens t
JOIN users u ON u.tenant_id = t.tenant_id AND u.id = t.user_id
LEFT JOIN memberships m ON m.tenant_id = t.tenant_id AND m.user_id = t.user_id
WHERE t.token_hash = $1`, hash).Scan(&p.APITokenID, &p.UserID, &scopes, &expires, &lastUsed, &revoked, &status, &role)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			outcome = ErrUnauthenticated
			return nil
		case err != nil:
			return err
		case revoked != nil:
			outcome = ErrAPITokenRevoked
			return nil
		case !now.Before(expires):
			outcome = ErrTokenExpired
			return nil
		case status != "active" || role == nil:
			outcome = ErrUnauthenticated
			return nil
		}
		p.TenantID, p.Role = tenantID, *role
		for _, sc := range scopes {
			p.Scopes = append(p.Scopes, Scope(sc))
		}
		if lastUsed == nil || now.Sub(*lastUsed) >= lastUsedResolution {
			_, err = tx.Exec(ctx, "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1", p.APITokenID, now)
		}
		return err
	})
	if err != nil {
		return Principal{}, wrap("authenticate API token", err)
	}
	if outcome != nil {
		return Principal{}, outcome
	}
	return p, nil
}

func scopeStrings(scopes []Scope) []string {
	out := make([]string, len(scopes))
	for i, sc := range scopes {
		out[i] = string(sc)
	}
	return out
}
