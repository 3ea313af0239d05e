// Package identity is bitvaultd's Identity & Access module: tenants, users and their roles, login sessions with rotating refresh tokens, API tokens, and the deny-by-default permission check.
//
// # Decisions
//
// Users are per tenant, as in the architecture digest's data model (USER has tenant_id): a
// user row belongs to one tenant, its email is unique within that tenant (stored lower-case),
// and someone working in two tenants has two accounts with separate passwords. The tenant is
// the hard isolation boundary, so every identity row, users included, sits under row-level
// security (see package db) and nothing is shared across tenants. The user's role in its
// tenant is a row of memberships (owner, admin, member or viewer); a user without one cannot
// log in. Login therefore names the tenant by its slug, besides email and password.
//
// Passwords are hashed with argon2id (DefaultPasswordParams: 19 MiB, 2 passes, 1 lane, the
// OWASP baseline), encoded as a PHC string with its parameters, compared in constant time;
// at most GOMAXPROCS hashes run at once. A failed login does the same work whether or not the
// tenant and user exist and gives one answer for every cause.
//
// Password guessing is limited by package ratelimit (Config.Limits): failed logins are
// counted per tenant, per email and client address, per email and per address, in the
// database so that every replica sees them; once a limit is reached, logins of that email
// (from that address, or from anywhere at the higher per-email ceiling) are answered 429
// rate_limited with Retry-After, without computing a hash, until the lock's window has
// passed, and the lock is audited once (auth.login.locked). Unknown emails are counted like
// known ones, so the answers stay alike; a success clears the email's counters.
//
// Access tokens are HMAC-SHA256-signed JWTs (HS256, key BITVAULT_TOKEN_KEY) valid for 15
// minutes, carrying user (sub), tenant (tid), role and session (sid). Every request still
// looks the session up, so logout and refresh-token reuse end access at once, and the role
// used for the permission check is the current one from memberships (the claim is
// informational).
//
// Refresh tokens ("bvr_…") and API tokens ("bvt_…") are opaque: the tenant id in hex (which
// routes the lookup to the tenant's rows) and 32 random bytes; only their SHA-256 is stored.
// A refresh token is single-use: refreshing marks it used and returns a new one; presenting
// a used one again revokes the whole session (the token family). Sessions end after 30 days
// whatever the refreshes, refresh tokens after 14 days unused. API tokens have a name,
// scopes (files:read, files:write, admin), a mandatory expiry of at most a year, and are
// shown once; revoking sets revoked_at.
//
// Authorization denies by default: a permission is allowed only if the role's table lists
// it and, for API tokens, a scope of the token unlocks it; permissions that no scope
// unlocks (tenant:manage) are never available to API tokens.
//
// Tenants are created by POST /v1/tenants with the bootstrap token (BITVAULT_BOOTSTRAP_TOKEN;
// without it the endpoint answers 404) or by the 'bitvaultd admin create-tenant' command,
// which needs no token because it runs with the server's own configuration.
package identity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/ratelimit"
)

// Role is a user's role in its tenant.
type Role string

// Roles, from most to least powerful.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
	RoleViewer Role = "viewer"
)

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool {
	_, ok := rolePermissions[r]
	return ok
}

// Tenant is a row of tenants.
type Tenant struct {
	ID        string    `json:"id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// User is a user with its role in its tenant.
type User struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	Email       string    `json:"email"`
	DisplayName string    `json:"display_name"`
	Role        Role      `json:"role"`
	CreatedAt   time.Time `json:"created_at"`
}

// Principal is an authenticated caller: a user acting through a session (access token) or
// through one of its API tokens.
type Principal struct {
	TenantID string
	UserID   string
	// Role is the user's current role in the tenant.
	Role Role
	// SessionID is set for access tokens.
	SessionID string
	// APITokenID and Scopes are set for API tokens.
	APITokenID string
	Scopes     []Scope
}

// IsAPIToken reports whether the principal authenticated with an API token.
func (p Principal) IsAPIToken() bool { return p.APITokenID != "" }

// Errors. They are *apierror.Coded, so handlers answer them as they are; compare with
// errors.Is.
var (
	ErrInvalidCredentials = apierror.New(apierror.CodeUnauthenticated, "invalid tenant, email or password")
	ErrUnauthenticated    = apierror.New(apierror.CodeUnauthenticated, "missing or invalid credentials")
	ErrTokenExpired       = apierror.New(apierror.CodeTokenExpired, "token expired")
	ErrSessionEnded       = apierror.New(apierror.CodeUnauthenticated, "session ended: log in again")
	ErrRefreshInvalid     = apierror.New(apierror.CodeUnauthenticated, "invalid refresh token: log in again")
	ErrRefreshExpired     = apierror.New(apierror.CodeUnauthenticated, "refresh token expired: log in again")
	ErrRefreshReused      = apierror.New(apierror.CodeUnauthenticated, "refresh token was already used: the session has been revoked, log in again")
	ErrAPITokenRevoked    = apierror.New(apierror.CodeUnauthenticated, "API token revoked")
	ErrPermissionDenied   = apierror.New(apierror.CodePermissionDenied, "permission denied")
	ErrInsufficientScope  = apierror.New(apierror.CodeInsufficientScope, "the API token's scopes do not allow this")
	ErrNotFound           = apierror.New(apierror.CodeNotFound, "not found")
)

func invalid(format string, args ...any) error {
	return apierror.New(apierror.CodeInvalidArgument, fmt.Sprintf(format, args...))
}

// Defaults of Config.
const (
	DefaultAccessTTL      = 15 * time.Minute
	DefaultRefreshTTL     = 14 * 24 * time.Hour
	DefaultSessionTTL     = 30 * 24 * time.Hour
	DefaultMaxAPITokenTTL = 366 * 24 * time.Hour
	// MinTokenKeyLen is the minimum length of the access-token HMAC key.
	MinTokenKeyLen = 32
)

// Config configures a Service. Zero durations take the defaults.
type Config struct {
	// TokenKey signs access tokens (HMAC-SHA256); at least MinTokenKeyLen bytes, the same on
	// every replica.
	TokenKey []byte
	// BootstrapToken enables POST /v1/tenants for callers presenting it; "" disables it.
	BootstrapToken string
	AccessTTL      time.Duration
	RefreshTTL     time.Duration
	SessionTTL     time.Duration
	MaxAPITokenTTL time.Duration
	// Password is the argon2id cost of new hashes (zero: DefaultPasswordParams).
	Password PasswordParams
	// Limits are the brute-force limits of login (zero fields: ratelimit's defaults).
	Limits ratelimit.Config
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Service implements the identity module on the app role's pool.
type Service struct {
	pool   *pgxpool.Pool
	cfg    Config
	signer signer
	// hashing bounds concurrent argon2id computations (each takes Password.Memory).
	hashing chan struct{}
	// dummyHash is verified against when the user does not exist, so that a failed login
	// costs the same either way.
	dummyHash string
	limiter   *ratelimit.Limiter
	// verifies counts password verifications (tests check that a locked login costs none).
	verifies atomic.Int64
}

// New returns a Service.
func New(pool *pgxpool.Pool, cfg Config) (*Service, error) {
	if len(cfg.TokenKey) < MinTokenKeyLen {
		return nil, fmt.Errorf("identity: token key has %d bytes, want at least %d", len(cfg.TokenKey), MinTokenKeyLen)
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = DefaultAccessTTL
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = DefaultRefreshTTL
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.MaxAPITokenTTL <= 0 {
		cfg.MaxAPITokenTTL = DefaultMaxAPITokenTTL
	}
	if cfg.Password == (PasswordParams{}) {
		cfg.Password = DefaultPasswordParams
	}
	if err := cfg.Password.validate(); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	limiter, err := ratelimit.New(cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	cfg.Limits = limiter.Config()
	s := &Service{
		pool:    pool,
		cfg:     cfg,
		signer:  signer{key: cfg.TokenKey},
		hashing: make(chan struct{}, runtime.GOMAXPROCS(0)),
		limiter: limiter,
	}
	if s.dummyHash, err = hashPassword(rand.Text(), cfg.Password); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// hash and verify run argon2id under the concurrency bound.
func (s *Service) hash(ctx context.Context, password string) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer func() { <-s.hashing }()
	return hashPassword(password, s.cfg.Password)
}

func (s *Service) verify(ctx context.Context, password, encoded string) (bool, error) {
	if err := s.acquire(ctx); err != nil {
		return false, err
	}
	defer func() { <-s.hashing }()
	s.verifies.Add(1)
	return verifyPassword(password, encoded)
}

func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.hashing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func formatUUID(b [16]byte) string {
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// parseUUID accepts the canonical 36-character form (any case) and returns it lower-case.
func parseUUID(s string) (string, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return "", false
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(s[0:8]+s[9:13]+s[14:18]+s[19:23]+s[24:36])); err != nil {
		return "", false
	}
	return formatUUID(b), true
}

// isCoded reports whether err carries an API code already.
func isCoded(err error) bool {
	_, ok := errors.AsType[*apierror.Coded](err)
	return ok
}
