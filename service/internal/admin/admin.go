// Package admin is bitvaultd's Billing & Admin module for tenant administrators: the tenant's
// quotas, its usage, its feature flags, its users and roles, and its audit log.
//
// # Decisions
//
// Access: every endpoint needs identity.PermTenantAdmin (owner and admin; for API tokens, the
// admin scope); everything else is denied (403). Rows of other tenants are invisible under
// row-level security, so naming one (a user id) is 404.
//
// Quotas are the files module's quotas table (0002): a NULL limit is bitvaultd's default
// (BITVAULT_QUOTA_*), 0 allows nothing. files enforces them when an upload starts, under a
// per-tenant lock, before any bytes move (413 quota_exceeded); this module only sets them.
//
// Usage is computed, not metered, where the truth is in the database: bytes stored are the
// tenant's committed blobs (deduplicated; every version and the trash included, as the quota
// counts them), files its file nodes (the trash included). Both come from one statement, so
// they are a consistent snapshot whatever runs concurrently. Uploads started this month are a
// counter (usage_meters) incremented atomically by files in the transaction that records the
// upload.
//
// Feature flags here are the tenant level of the digest's precedence (global default <
// environment < tenant): any JSON value per key; PUT sets the given keys, null removes one.
//
// Users: an admin may add users, change roles and disable or re-enable users, but only an
// owner may make or unmake owners, nobody changes their own role or status, and the last
// active owner stays. A disabled user's sessions and API tokens stop working at once
// (identity checks the user's status on every request).
//
// Audit log (package audit): append-only for the app role. Role changes, user changes, quota
// and flag changes are recorded here, in the transaction of the change; logins, API tokens,
// shares and links, and purges by their modules.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/audit"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/uuid"
)

// UserAdder adds users (identity.Service).
type UserAdder interface {
	AddUser(ctx context.Context, p identity.Principal, in identity.NewUser) (identity.User, error)
}

// Config configures a Service.
type Config struct {
	// DefaultBytesLimit and DefaultFilesLimit are the files module's defaults (0: unlimited),
	// shown as the effective limits of tenants without their own.
	DefaultBytesLimit, DefaultFilesLimit int64
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Service implements the admin module.
type Service struct {
	pool   *pgxpool.Pool
	users  UserAdder
	cfg    Config
	logger *slog.Logger
}

// New returns a Service.
func New(pool *pgxpool.Pool, users UserAdder, cfg Config, logger *slog.Logger) (*Service, error) {
	if pool == nil || users == nil {
		return nil, errors.New("admin: pool and user adder are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{pool: pool, users: users, cfg: cfg, logger: logger}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Errors.
var (
	ErrNotFound     = apierror.New(apierror.CodeNotFound, "not found")
	ErrUserNotFound = apierror.New(apierror.CodeNotFound, "user not found")
)

func invalid(format string, args ...any) error {
	return apierror.New(apierror.CodeInvalidArgument, fmt.Sprintf(format, args...))
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*apierror.Coded](err); ok {
		return err
	}
	return fmt.Errorf("admin: %s: %w", op, err)
}

func (s *Service) authorize(p identity.Principal) error {
	return identity.Authorize(p, identity.PermTenantAdmin)
}

// Quota is a tenant's limits: its own (nil: the default) and the effective ones (0 with no
// own limit: unlimited).
type Quota struct {
	BytesLimit          *int64     `json:"bytes_limit"`
	FilesLimit          *int64     `json:"files_limit"`
	EffectiveBytesLimit int64      `json:"effective_bytes_limit"`
	EffectiveFilesLimit int64      `json:"effective_files_limit"`
	UpdatedAt           *time.Time `json:"updated_at,omitempty"`
}

func (s *Service) readQuota(ctx context.Context, tx pgx.Tx, tenant string) (Quota, error) {
	var q Quota
	var at time.Time
	err := tx.QueryRow(ctx, "SELECT bytes_limit, files_limit, updated_at FROM quotas WHERE tenant_id = $1", tenant).Scan(&q.BytesLimit, &q.FilesLimit, &at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return Quota{}, err
	default:
		q.UpdatedAt = &at
	}
	q.EffectiveBytesLimit, q.EffectiveFilesLimit = s.cfg.DefaultBytesLimit, s.cfg.DefaultFilesLimit
	if q.BytesLimit != nil {
		q.EffectiveBytesLimit = *q.BytesLimit
	}
	if q.FilesLimit != nil {
		q.EffectiveFilesLimit = *q.FilesLimit
	}
	return q, nil
}

// GetQuota returns p's tenant's quota.
func (s *Service) GetQuota(ctx context.Context, p identity.Principal) (Quota, error) {
	if err := s.authorize(p); err != nil {
		return Quota{}, err
	}
	var q Quota
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		var err error
		q, err = s.readQuota(ctx, tx, p.TenantID)
		return err
	})
	return q, wrap("get quota", err)
}

// QuotaUpdate sets the tenant's limits: nil (JSON null or absent) returns a limit to the
// default.
type QuotaUpdate struct {
	BytesLimit *int64 `json:"bytes_limit"`
	FilesLimit *int64 `json:"files_limit"`
}

// SetQuota replaces p's tenant's limits.
func (s *Service) SetQuota(ctx context.Context, p identity.Principal, in QuotaUpdate) (Quota, error) {
	if err := s.authorize(p); err != nil {
		return Quota{}, err
	}
	if in.BytesLimit != nil && *in.BytesLimit < 0 || in.FilesLimit != nil && *in.FilesLimit < 0 {
		return Quota{}, invalid("limits must not be negative (null: the default)")
	}
	var q Quota
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		old, err := s.readQuota(ctx, tx, p.TenantID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO quotas (tenant_id, bytes_limit, files_limit, updated_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id) DO UPDATE SET bytes_limit = EXCLUDED.bytes_limit, files_limit = EXCLUDED.files_limit, updated_at = EXCLUDED.updated_at`,
			p.TenantID, in.BytesLimit, in.FilesLimit, s.now()); err != nil {
			return err
		}
		if q, err = s.readQuota(ctx, tx, p.TenantID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p.TenantID, p.UserID, audit.QuotaChanged, p.TenantID, map[string]any{
			"old": map[string]any{"bytes_limit": old.BytesLimit, "files_limit": old.FilesLimit},
			"new": map[string]any{"bytes_limit": in.BytesLimit, "files_limit": in.FilesLimit},
		})
	})
	return q, wrap("set quota", err)
}

// Usage is what a tenant uses.
type Usage struct {
	BytesStored      int64     `json:"bytes_stored"`
	Files            int64     `json:"files"`
	UploadsThisMonth int64     `json:"uploads_this_month"`
	Month            string    `json:"month"` // YYYY-MM (UTC)
	AsOf             time.Time `json:"as_of"`
}

// GetUsage returns p's tenant's usage (see the package documentation).
func (s *Service) GetUsage(ctx context.Context, p identity.Principal) (Usage, error) {
	if err := s.authorize(p); err != nil {
		return Usage{}, err
	}
	now := s.now()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	u := Usage{Month: month.Format("2006-01"), AsOf: now}
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT
	coalesce((SELECT sum(size) FROM blobs WHERE tenant_id = $1 AND state = 'committed'), 0)::bigint,
	(SELECT count(*) FROM nodes WHERE tenant_id = $1 AND type = 'file'),
	coalesce((SELECT uploads FROM usage_meters WHERE tenant_id = $1 AND month = $2::date), 0)`,
			p.TenantID, month.Format("2006-01-02")).Scan(&u.BytesStored, &u.Files, &u.UploadsThisMonth)
	})
	return u, wrap("get usage", err)
}

// maxFlags bounds a tenant's flags, and maxFlagValue the size of one value.
const (
	maxFlags     = 200
	maxFlagValue = 4096
)

// ListFlags returns p's tenant's flags.
func (s *Service) ListFlags(ctx context.Context, p identity.Principal) (map[string]json.RawMessage, error) {
	if err := s.authorize(p); err != nil {
		return nil, err
	}
	var flags map[string]json.RawMessage
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		var err error
		flags, err = readFlags(ctx, tx, p.TenantID)
		return err
	})
	return flags, wrap("list flags", err)
}

func readFlags(ctx context.Context, tx pgx.Tx, tenant string) (map[string]json.RawMessage, error) {
	rows, err := tx.Query(ctx, "SELECT key, value FROM feature_flags WHERE tenant_id = $1 ORDER BY key", tenant)
	if err != nil {
		return nil, err
	}
	flags := map[string]json.RawMessage{}
	var k string
	var v []byte
	_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error {
		flags[k] = json.RawMessage(append([]byte(nil), v...))
		return nil
	})
	return flags, err
}

// SetFlags sets the given flags (a null value removes the flag) and returns them all.
func (s *Service) SetFlags(ctx context.Context, p identity.Principal, in map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	if err := s.authorize(p); err != nil {
		return nil, err
	}
	if len(in) == 0 {
		return nil, invalid("flags: give at least one")
	}
	for k, v := range in {
		if !flagKey(k) {
			return nil, invalid("flag %q: 1 to 100 of a-z, 0-9, '_', '.', '-', starting with a letter or digit", k)
		}
		if len(v) > maxFlagValue {
			return nil, invalid("flag %q: value larger than %d bytes", k, maxFlagValue)
		}
	}
	var flags map[string]json.RawMessage
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		for k, v := range in {
			var err error
			if v == nil || string(v) == "null" {
				_, err = tx.Exec(ctx, "DELETE FROM feature_flags WHERE tenant_id = $1 AND key = $2", p.TenantID, k)
			} else {
				_, err = tx.Exec(ctx, `INSERT INTO feature_flags (tenant_id, key, value, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at`,
					p.TenantID, k, []byte(v), p.UserID, s.now())
			}
			if err != nil {
				return err
			}
			if err := audit.Record(ctx, tx, p.TenantID, p.UserID, audit.FlagChanged, k, map[string]any{"value": v}); err != nil {
				return err
			}
		}
		var err error
		if flags, err = readFlags(ctx, tx, p.TenantID); err != nil {
			return err
		}
		if len(flags) > maxFlags {
			return invalid("at most %d flags per tenant", maxFlags)
		}
		return nil
	})
	return flags, wrap("set flags", err)
}

func flagKey(k string) bool {
	if len(k) < 1 || len(k) > 100 {
		return false
	}
	for i, c := range k {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '.' || c == '-')
		if !ok {
			return false
		}
	}
	return true
}

// User is a user of the tenant as administrators see it.
type User struct {
	ID          string        `json:"id"`
	Email       string        `json:"email"`
	DisplayName string        `json:"display_name"`
	Role        identity.Role `json:"role"`
	Status      string        `json:"status"`
	CreatedAt   time.Time     `json:"created_at"`
}

const userSelect = `SELECT u.id, u.email, u.display_name, coalesce(m.role, ''), u.status, u.created_at
FROM users u LEFT JOIN memberships m ON m.tenant_id = u.tenant_id AND m.user_id = u.id
`

func scanUser(r pgx.Row) (User, error) {
	var u User
	var role string
	err := r.Scan(&u.ID, &u.Email, &u.DisplayName, &role, &u.Status, &u.CreatedAt)
	u.Role = identity.Role(role)
	return u, err
}

// ListUsers lists the tenant's users by email.
func (s *Service) ListUsers(ctx context.Context, p identity.Principal) ([]User, error) {
	if err := s.authorize(p); err != nil {
		return nil, err
	}
	var out []User
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, userSelect+"WHERE u.tenant_id = $1 ORDER BY u.email, u.id", p.TenantID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
		return err
	})
	if out == nil {
		out = []User{}
	}
	return out, wrap("list users", err)
}

// AddUser adds a user with a role (identity.Service.AddUser, which records the audit row).
func (s *Service) AddUser(ctx context.Context, p identity.Principal, in identity.NewUser) (User, error) {
	if err := s.authorize(p); err != nil {
		return User{}, err
	}
	u, err := s.users.AddUser(ctx, p, in)
	if err != nil {
		return User{}, err
	}
	return User{ID: u.ID, Email: u.Email, DisplayName: u.DisplayName, Role: u.Role, Status: "active", CreatedAt: u.CreatedAt}, nil
}

// UserUpdate changes a user's role and/or status ("active" or "disabled"); nil leaves it.
type UserUpdate struct {
	Role   *identity.Role `json:"role"`
	Status *string        `json:"status"`
}

// UpdateUser applies in to user id (see the package documentation for the rules).
func (s *Service) UpdateUser(ctx context.Context, p identity.Principal, id string, in UserUpdate) (User, error) {
	if err := s.authorize(p); err != nil {
		return User{}, err
	}
	uid, ok := uuid.Parse(id)
	if !ok {
		return User{}, ErrUserNotFound
	}
	if in.Role == nil && in.Status == nil {
		return User{}, invalid("give role and/or status")
	}
	if in.Role != nil && !in.Role.Valid() {
		return User{}, invalid("role %q: want owner, admin, member or viewer", *in.Role)
	}
	if in.Status != nil && *in.Status != "active" && *in.Status != "disabled" {
		return User{}, invalid("status %q: want active or disabled", *in.Status)
	}
	var u User
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		// Owners are counted under a lock, so that two concurrent demotions cannot remove
		// the last two owners.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('bitvault.owners:' || $1::text, 0))", p.TenantID); err != nil {
			return err
		}
		var err error
		u, err = scanUser(tx.QueryRow(ctx, userSelect+"WHERE u.tenant_id = $1 AND u.id = $2 FOR UPDATE OF u", p.TenantID, uid))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrUserNotFound
		}
		if err != nil {
			return err
		}
		if u.ID == p.UserID {
			return apierror.New(apierror.CodePermissionDenied, "you cannot change your own role or status")
		}
		touchesOwner := u.Role == identity.RoleOwner || in.Role != nil && *in.Role == identity.RoleOwner
		if touchesOwner && p.Role != identity.RoleOwner {
			return apierror.New(apierror.CodePermissionDenied, "only an owner may make or change owners")
		}
		losesOwner := u.Role == identity.RoleOwner && u.Status == "active" &&
			(in.Role != nil && *in.Role != identity.RoleOwner || in.Status != nil && *in.Status == "disabled")
		if losesOwner {
			var owners int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM memberships m JOIN users u ON u.tenant_id = m.tenant_id AND u.id = m.user_id
WHERE m.tenant_id = $1 AND m.role = 'owner' AND u.status = 'active'`, p.TenantID).Scan(&owners); err != nil {
				return err
			}
			if owners <= 1 {
				return apierror.New(apierror.CodeConflict, "the tenant must keep an active owner")
			}
		}
		if in.Role != nil && *in.Role != u.Role {
			if _, err := tx.Exec(ctx, `INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = EXCLUDED.role`, p.TenantID, uid, string(*in.Role)); err != nil {
				return err
			}
			if err := audit.Record(ctx, tx, p.TenantID, p.UserID, audit.RoleChanged, uid, map[string]any{"email": u.Email, "old_role": string(u.Role), "new_role": string(*in.Role)}); err != nil {
				return err
			}
			u.Role = *in.Role
		}
		if in.Status != nil && *in.Status != u.Status {
			if _, err := tx.Exec(ctx, "UPDATE users SET status = $3 WHERE tenant_id = $1 AND id = $2", p.TenantID, uid, *in.Status); err != nil {
				return err
			}
			typ := audit.UserDisabled
			if *in.Status == "active" {
				typ = audit.UserEnabled
			}
			if err := audit.Record(ctx, tx, p.TenantID, p.UserID, typ, uid, map[string]any{"email": u.Email}); err != nil {
				return err
			}
			u.Status = *in.Status
		}
		return nil
	})
	return u, wrap("update user", err)
}

// DefaultAuditPage and MaxAuditPage bound audit log pages.
const (
	DefaultAuditPage = 100
	MaxAuditPage     = 1000
)

// AuditPage is a page of the audit log, newest first.
type AuditPage struct {
	Entries    []audit.Entry `json:"entries"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// Audit returns a page of p's tenant's audit log, entries older than cursor (an entry id, ""
// for the newest).
func (s *Service) Audit(ctx context.Context, p identity.Principal, cursor string, limit int) (AuditPage, error) {
	if err := s.authorize(p); err != nil {
		return AuditPage{}, err
	}
	var after int64
	if cursor != "" {
		if _, err := fmt.Sscan(cursor, &after); err != nil || after <= 0 || fmt.Sprint(after) != cursor {
			return AuditPage{}, invalid("cursor: not a cursor of this log")
		}
	}
	if limit <= 0 {
		limit = DefaultAuditPage
	}
	limit = min(limit, MaxAuditPage)
	var page AuditPage
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		es, err := audit.List(ctx, tx, p.TenantID, after, limit+1)
		if err != nil {
			return err
		}
		if len(es) > limit {
			es = es[:limit]
			page.NextCursor = fmt.Sprint(es[limit-1].ID)
		}
		page.Entries = es
		return nil
	})
	if page.Entries == nil {
		page.Entries = []audit.Entry{}
	}
	return page, wrap("audit", err)
}
