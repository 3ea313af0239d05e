package identity

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bitvault/bitvault/service/internal/audit"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/ratelimit"
)

// Credentials is the input of Login.
type Credentials struct {
	// Tenant is the tenant's slug.
	Tenant   string `json:"tenant"`
	Email    string `json:"email"`
	Password string `json:"password"`
	// ClientIP is the caller's address, for the brute-force limits (ratelimit.Config.ClientIP); ""
	// (not from HTTP) counts the email alone. Never read from the request body.
	ClientIP string `json:"-"`
}

// Tokens is the result of Login and Refresh.
type Tokens struct {
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
	// Principal is who the tokens act for (its SessionID is the session).
	Principal Principal
}

// loginAccount is what Login reads before checking the password; tenantID is "" for an
// unknown tenant and userID nil for an unknown user.
type loginAccount struct {
	tenantID, tenantStatus string
	userID, hash, status   *string
	role                   *Role
}

// canLogin reports whether the account may start a session (its password being right).
func (a loginAccount) canLogin() bool {
	return a.hash != nil && a.tenantStatus == "active" && a.status != nil && *a.status == "active" && a.role != nil
}

func (a loginAccount) actor() string {
	if a.userID == nil {
		return ""
	}
	return *a.userID
}

// Login checks a tenant slug, email and password and starts a session. Every failure is
// ErrInvalidCredentials after the same work: unknown tenant, unknown user, wrong password,
// disabled user, suspended tenant, no membership. An email (or client address) over its
// brute-force limit is a *ratelimit.LockedError (429) before any hashing, known user or not.
// The attempt counts against the limits from before its hash until it turns out right.
func (s *Service) Login(ctx context.Context, c Credentials) (Tokens, error) {
	slug := strings.TrimSpace(c.Tenant)
	email := strings.ToLower(strings.TrimSpace(c.Email))
	if len(c.Password) > MaxPasswordLen {
		return Tokens{}, ErrInvalidCredentials
	}
	attempt := ratelimit.Attempt{Kind: ratelimit.Login, Target: email, IP: c.ClientIP}
	acct, locks, err := s.lookupLogin(ctx, slug, email, attempt)
	if err != nil {
		return Tokens{}, wrap("login", err)
	}
	encoded := s.dummyHash
	if acct.hash != nil {
		encoded = *acct.hash
	}
	ok, err := s.verify(ctx, c.Password, encoded)
	if err != nil && !errors.Is(err, errBadHash) {
		// The request ended before the hash: the attempt stays counted, and a lock it engaged
		// is audited all the same.
		if len(locks) > 0 {
			if aerr := db.WithTenant(context.WithoutCancel(ctx), s.pool, acct.tenantID, func(tx pgx.Tx) error {
				return s.auditLocks(context.WithoutCancel(ctx), tx, acct, attempt, locks)
			}); aerr != nil {
				return Tokens{}, errors.Join(err, wrap("login: record lock", aerr))
			}
		}
		return Tokens{}, err
	}
	if !ok || !acct.canLogin() {
		// An unknown tenant has no log to write to, nor counters.
		if acct.tenantID != "" {
			if err := s.loginFailed(ctx, acct, attempt, locks); err != nil {
				return Tokens{}, wrap("login: record failure", err)
			}
		}
		return Tokens{}, ErrInvalidCredentials
	}
	return s.startSession(ctx, acct, attempt)
}

// lookupLogin resolves the tenant by slug and the user by email, and reserves the attempt on
// its brute-force counters in the tenant (ratelimit.Limiter.Reserve; the locks it engaged
// are returned): a *ratelimit.LockedError ends the login before any hashing, and rolls the
// reservation back. An unknown tenant or user is no error (the zero fields say so).
func (s *Service) lookupLogin(ctx context.Context, slug, email string, attempt ratelimit.Attempt) (loginAccount, []ratelimit.Lock, error) {
	var a loginAccount
	var locks []ratelimit.Lock
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The tenants policy shows the row whose slug is set in app.tenant_slug.
		if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_slug', $1, true)", slug); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, "SELECT id, status FROM tenants WHERE slug = $1", slug).Scan(&a.tenantID, &a.tenantStatus)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := db.SetTenant(ctx, tx, a.tenantID); err != nil {
			return err
		}
		// Before the user is looked up: a locked email answers the same whether it exists.
		if locks, err = s.limiter.Reserve(ctx, tx, a.tenantID, attempt, s.now()); err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `SELECT u.id, u.password_hash, u.status, m.role
FROM users u LEFT JOIN memberships m ON m.tenant_id = u.tenant_id AND m.user_id = u.id
WHERE u.email = $1`, email).Scan(&a.userID, &a.hash, &a.status, &a.role)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return loginAccount{}, nil, err
	}
	return a, locks, nil
}

// loginFailed audits a failed login in its tenant, and the locks its attempt engaged when it
// was reserved (once per lockout); the attempt is counted already.
func (s *Service) loginFailed(ctx context.Context, acct loginAccount, attempt ratelimit.Attempt, locks []ratelimit.Lock) error {
	return db.WithTenant(ctx, s.pool, acct.tenantID, func(tx pgx.Tx) error {
		actor := acct.actor()
		if err := audit.Record(ctx, tx, acct.tenantID, actor, audit.LoginFailed, actor, map[string]any{"email": attempt.Target}); err != nil {
			return err
		}
		return s.auditLocks(ctx, tx, acct, attempt, locks)
	})
}

// auditLocks records the brute-force locks a failed attempt engaged.
func (s *Service) auditLocks(ctx context.Context, tx pgx.Tx, acct loginAccount, attempt ratelimit.Attempt, locks []ratelimit.Lock) error {
	actor := acct.actor()
	for _, l := range locks {
		payload := map[string]any{"email": attempt.Target, "ip": attempt.IP, "scope": l.Scope, "failures": l.Failures, "locked_until": l.Until}
		if err := audit.Record(ctx, tx, acct.tenantID, actor, audit.LoginLocked, actor, payload); err != nil {
			return err
		}
	}
	return nil
}

// startSession creates the session of a successful login, takes its attempt back from the
// brute-force counters (which clears the email's) and signs the tokens.
func (s *Service) startSession(ctx context.Context, acct loginAccount, attempt ratelimit.Attempt) (Tokens, error) {
	p := Principal{TenantID: acct.tenantID, UserID: *acct.userID, Role: *acct.role}
	now := s.now()
	sessionExpires := now.Add(s.cfg.SessionTTL)
	var refresh string
	var refreshExpires time.Time
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "INSERT INTO sessions (tenant_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4) RETURNING id",
			p.TenantID, p.UserID, now, sessionExpires).Scan(&p.SessionID); err != nil {
			return err
		}
		var err error
		refresh, refreshExpires, err = s.insertRefreshToken(ctx, tx, p.TenantID, p.SessionID, now, sessionExpires)
		if err != nil {
			return err
		}
		if err := s.limiter.Release(ctx, tx, p.TenantID, attempt, now); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p.TenantID, p.UserID, audit.LoginSucceeded, p.UserID, map[string]any{"session_id": p.SessionID})
	})
	if err != nil {
		return Tokens{}, wrap("login: create session", err)
	}
	return s.tokens(p, now, sessionExpires, refresh, refreshExpires), nil
}

// insertRefreshToken stores a new refresh token of the session, valid for RefreshTTL but not
// past the session's end.
func (s *Service) insertRefreshToken(ctx context.Context, tx pgx.Tx, tenantID, sessionID string, now, sessionExpires time.Time) (string, time.Time, error) {
	token, hash := newOpaqueToken(prefixRefresh, tenantID)
	expires := minTime(now.Add(s.cfg.RefreshTTL), sessionExpires)
	_, err := tx.Exec(ctx, "INSERT INTO refresh_tokens (tenant_id, session_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
		tenantID, sessionID, hash, now, expires)
	return token, expires, err
}

// tokens signs an access token for p, valid for AccessTTL but not past the session's end.
func (s *Service) tokens(p Principal, now, sessionExpires time.Time, refresh string, refreshExpires time.Time) Tokens {
	exp := minTime(now.Add(s.cfg.AccessTTL), sessionExpires)
	access := s.signer.sign(accessClaims{
		Issuer: tokenIssuer, Audience: tokenAudience,
		Subject: p.UserID, TenantID: p.TenantID, Role: p.Role, SessionID: p.SessionID,
		IssuedAt: now.Unix(), ExpiresAt: exp.Unix(),
	})
	return Tokens{AccessToken: access, AccessExpiresAt: time.Unix(exp.Unix(), 0).UTC(), RefreshToken: refresh, RefreshExpiresAt: refreshExpires, Principal: p}
}

// Refresh rotates a refresh token: the token is marked used and a new access token and
// refresh token are returned. Presenting a token that was already used revokes its whole
// session (ErrRefreshReused): either the client or an attacker holds a stolen copy, and the
// server cannot tell which, so both must log in again.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	tenantID, hash, err := parseOpaqueToken(prefixRefresh, refreshToken)
	if err != nil {
		return Tokens{}, ErrRefreshInvalid
	}
	now := s.now()
	var (
		result  Tokens
		outcome error // returned after the transaction commits
	)
	err = db.WithTenant(ctx, s.pool, tenantID, func(tx pgx.Tx) error {
		var tokenID, sessionID string
		var expires time.Time
		var used *time.Time
		// The row lock serializes concurrent uses of one token: the second sees used_at set.
		err := tx.QueryRow(ctx, "SELECT id, session_id, expires_at, used_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
			hash).Scan(&tokenID, &sessionID, &expires, &used)
		if errors.Is(err, pgx.ErrNoRows) {
			outcome = ErrRefreshInvalid
			return nil
		}
		if err != nil {
			return err
		}
		if used != nil {
			if _, err := tx.Exec(ctx, "UPDATE sessions SET revoked_at = $2, revoked_reason = 'refresh_token_reuse' WHERE id = $1 AND revoked_at IS NULL",
				sessionID, now); err != nil {
				return err
			}
			outcome = ErrRefreshReused
			return nil
		}
		if !now.Before(expires) {
			outcome = ErrRefreshExpired
			return nil
		}
		p, sessionExpires, err := sessionPrincipal(ctx, tx, sessionID, "", now)
		if err != nil {
			if isCoded(err) {
				outcome = err
				return nil
			}
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE refresh_tokens SET used_at = $2 WHERE id = $1", tokenID, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE sessions SET last_refreshed_at = $2 WHERE id = $1", sessionID, now); err != nil {
			return err
		}
		refresh, refreshExpires, err := s.insertRefreshToken(ctx, tx, tenantID, sessionID, now, sessionExpires)
		if err != nil {
			return err
		}
		result = s.tokens(p, now, sessionExpires, refresh, refreshExpires)
		return nil
	})
	if err != nil {
		return Tokens{}, wrap("refresh", err)
	}
	if outcome != nil {
		return Tokens{}, outcome
	}
	return result, nil
}

// sessionPrincipal loads a live session (of userID, if not "") and its user's current role;
// a revoked or expired session, a disabled user or a missing membership is ErrSessionEnded.
func sessionPrincipal(ctx context.Context, tx pgx.Tx, sessionID, userID string, now time.Time) (Principal, time.Time, error) {
	p := Principal{SessionID: sessionID}
	var expires time.Time
	var revoked *time.Time
	var status string
	var role *Role
	err := tx.QueryRow(ctx, `SELECT s.tenant_id, s.user_id, s.expires_at, s.revoked_at, u.status, m.role
FROM sessions s
JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
LEFT JOIN memberships m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id
WHERE s.id = $1 AND ($2 = '' OR s.user_id::text = $2)`, sessionID, userID).Scan(&p.TenantID, &p.UserID, &expires, &revoked, &status, &role)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, time.Time{}, ErrSessionEnded
	}
	if err != nil {
		return Principal{}, time.Time{}, err
	}
	if revoked != nil || !now.Before(expires) || status != "active" || role == nil {
		return Principal{}, time.Time{}, ErrSessionEnded
	}
	p.Role = *role
	return p, expires, nil
}

// Logout revokes the session of an access token's principal.
func (s *Service) Logout(ctx context.Context, p Principal) error {
	if p.SessionID == "" {
		return invalid("logout ends a login session; revoke an API token with DELETE /v1/api-tokens/{id}")
	}
	return wrap("logout", db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE sessions SET revoked_at = $2, revoked_reason = 'logout' WHERE id = $1 AND revoked_at IS NULL", p.SessionID, s.now())
		return err
	}))
}

// LogoutRefresh revokes the session a refresh token belongs to (used or not), for clients
// whose access token has expired. An unknown token is not an error.
func (s *Service) LogoutRefresh(ctx context.Context, refreshToken string) error {
	tenantID, hash, err := parseOpaqueToken(prefixRefresh, refreshToken)
	if err != nil {
		return ErrRefreshInvalid
	}
	return wrap("logout", db.WithTenant(ctx, s.pool, tenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = $2, revoked_reason = 'logout'
WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL`, hash, s.now())
		return err
	}))
}

// Authenticate resolves a bearer credential, an access token or an API token, to its
// principal. Access tokens must be validly signed and unexpired and their session live; API
// tokens must exist, be unrevoked and unexpired. Either way the user must be active and hold
// a role, which is read from the database (a demotion takes effect at once).
func (s *Service) Authenticate(ctx context.Context, bearer string) (Principal, error) {
	if strings.HasPrefix(bearer, prefixAPIToken) {
		return s.authenticateAPIToken(ctx, bearer)
	}
	now := s.now()
	c, err := s.signer.verify(bearer, now)
	if err != nil {
		return Principal{}, err
	}
	for _, id := range []string{c.TenantID, c.SessionID, c.Subject} {
		if _, ok := parseUUID(id); !ok {
			return Principal{}, ErrUnauthenticated
		}
	}
	var p Principal
	err = db.WithTenant(ctx, s.pool, c.TenantID, func(tx pgx.Tx) error {
		var err error
		p, _, err = sessionPrincipal(ctx, tx, c.SessionID, c.Subject, now)
		return err
	})
	if err != nil {
		return Principal{}, wrap("authenticate", err)
	}
	return p, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
