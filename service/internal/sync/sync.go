// Package sync is bitvaultd's Sync module: devices with persisted cursors and the cursor pull of namespace changes from the change journal.
//
// # The journal is the truth
//
// The files module writes a change_journal row in the same transaction as every namespace
// change, numbered per tenant from 1 without gaps, in commit order (the tenant's journal
// counter row stays locked until the writer commits). Sync only reads it: GET
// /v1/sync/changes?cursor=N returns the changes with seq > N in seq order, a page at a time,
// with next_cursor (the seq of the page's last change, or N when there is none) and
// has_more. A cursor is the seq of the last change a client has applied, so it is exactly
// resumable: the same cursor gives the same page, and the next_cursor of the last page
// gives nothing until something changes. The query is a range scan of the journal's primary
// key (tenant_id, seq), whatever the journal's size. A page, the journal's latest seq and
// its horizon are read in one REPEATABLE READ snapshot.
//
// A change carries the node id, its type, the operation (create, update, move, trash,
// restore, purge), the parent and name the change gave it, the version (id and number), the
// content hash (BLAKE3) and size for file contents, the actor and the time. path is
// informational: the parent's current path plus the change's name (null once the parent is
// purged); clients apply changes by node id, parent id and name, which are exact.
//
// # Long polls
//
// With wait (GET /v1/sync/changes?cursor=N&wait=30s, at most MaxWait), a pull that finds
// nothing after the cursor waits for a change instead of answering an empty page at once:
// it reads the journal again when the tenant's "changes available" signal arrives
// (Config.Notifier: the bus's files events, fanned out per tenant in each bitvaultd
// process), and every Config.Recheck anyway (BITVAULT_SYNC_RECHECK, default 15s), and answers as soon as there is a change, or
// the empty page when the wait runs out. The signal is only a wake-up: the journal stays the
// truth, so a lost signal delays the answer by a re-check at most.
//
// # Cursors and the horizon
//
// Compaction may drop old journal rows; journal_horizons records, per tenant, the seq up to
// which rows may be gone (SetHorizon, for the compactor; it never moves back). A cursor
// below the horizon cannot be resumed, and one beyond the journal's latest seq belongs to
// another (reset) namespace: both are answered 409 cursor_stale, and the client does a full
// resync: GET /v1/sync/cursor for the latest position, a full listing, then pulls from that
// position.
//
// Devices are per user: POST /v1/devices registers one (the client may choose its id;
// registering again renames it), and PUT /v1/devices/{id}/cursor persists the cursor the
// device has applied (within [horizon, latest]). Another user's device is 404.
//
// Pulling changes and devices need files:read on the whole tenant (every tenant role has
// it): the journal is not filtered per node, so a caller who reads only what was shared
// with it cannot sync.
package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/uuid"
)

// Page sizes of Pull.
const (
	DefaultPageSize = 500
	MaxPageSize     = 1000
)

// Long polls of Pull (WaitChanges).
const (
	// MaxWait bounds a long poll's wait.
	MaxWait = 60 * time.Second
	// DefaultRecheck is how often a long poll re-reads the journal without a wake-up. The
	// signal is the wake-up; the re-check only covers a lost signal, and costs a
	// transaction per idle long poll each time (N idle devices: N/15 transactions a second).
	DefaultRecheck = 15 * time.Second
	// MinRecheck is the shortest Recheck LoadConfig accepts.
	MinRecheck = time.Second
)

// EnvRecheck sets Config.Recheck: a duration of at least MinRecheck (default
// DefaultRecheck).
const EnvRecheck = "BITVAULT_SYNC_RECHECK"

// LoadConfig reads the sync settings (EnvRecheck) through lookup; the other fields are the
// binary's to set.
func LoadConfig(lookup func(string) (string, bool)) (Config, error) {
	c := Config{Recheck: DefaultRecheck}
	if v, _ := lookup(EnvRecheck); strings.TrimSpace(v) != "" {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < MinRecheck {
			return Config{}, fmt.Errorf("%s=%q: want a duration of at least %s", EnvRecheck, v, MinRecheck)
		}
		c.Recheck = d
	}
	return c, nil
}

// Notifier wakes long polls: Wait returns a channel closed when the tenant's namespace may
// have changed, and a function releasing the wait (consumers.Signal implements it).
type Notifier interface {
	Wait(tenant string) (<-chan struct{}, func())
}

// Config configures a Service.
type Config struct {
	// RBAC is the tenant-wide role check (nil: identity.Authorize).
	RBAC func(identity.Principal, identity.Permission) error
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Notifier, if set, wakes the long polls as soon as the tenant's changes are committed;
	// without it they see changes at the next re-check only.
	Notifier Notifier
	// Recheck is how often a long poll re-reads the journal anyway (0: DefaultRecheck), so
	// that a lost wake-up only delays it.
	Recheck time.Duration
	// Stop, once closed (the server shuts down, after its drain delay), ends the long polls
	// at once: they answer what the journal has, so that in-flight requests do not hold up
	// the shutdown.
	Stop <-chan struct{}
}

// Service implements the sync module.
type Service struct {
	pool   *pgxpool.Pool
	cfg    Config
	logger *slog.Logger
}

// New returns a Service on the app role's pool.
func New(pool *pgxpool.Pool, cfg Config, logger *slog.Logger) (*Service, error) {
	if pool == nil {
		return nil, errors.New("sync: pool is required")
	}
	if cfg.RBAC == nil {
		cfg.RBAC = identity.Authorize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = DefaultRecheck
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{pool: pool, cfg: cfg, logger: logger}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Errors. Coded errors are answered as they are.
var (
	ErrNotFound = apierror.New(apierror.CodeNotFound, "not found")
)

func invalid(format string, args ...any) error {
	return apierror.New(apierror.CodeInvalidArgument, fmt.Sprintf(format, args...))
}

// staleError is the 409 cursor_stale answer.
func staleError(format string, args ...any) error {
	return apierror.New(apierror.CodeCursorStale, fmt.Sprintf(format, args...)+
		": do a full resync (GET /v1/sync/cursor for the latest cursor, list the namespace, then pull changes from that cursor)")
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*apierror.Coded](err); ok {
		return err
	}
	return fmt.Errorf("sync: %s: %w", op, err)
}

// Device is a user's sync client.
type Device struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Cursor is the journal position the device has applied.
	Cursor          int64      `json:"cursor"`
	CursorUpdatedAt *time.Time `json:"cursor_updated_at"`
	CreatedAt       time.Time  `json:"created_at"`
}

// NewDevice is the input of RegisterDevice.
type NewDevice struct {
	// ID, optional, is the client's own id for the device (a UUID).
	ID   string `json:"id"`
	Name string `json:"name"`
}

// RegisterDevice registers a device of p's user; registering an existing id of the same
// user renames it (created false). An id taken by another user's device is 409.
func (s *Service) RegisterDevice(ctx context.Context, p identity.Principal, in NewDevice) (d Device, created bool, err error) {
	if err := s.cfg.RBAC(p, identity.PermFilesRead); err != nil {
		return Device{}, false, err
	}
	name := strings.TrimSpace(in.Name)
	if name == "" || utf8.RuneCountInString(name) > 200 {
		return Device{}, false, invalid("name: 1 to 200 characters")
	}
	var id any // NULL: the database picks one
	if in.ID != "" {
		v, ok := uuid.Parse(in.ID)
		if !ok {
			return Device{}, false, invalid("id: want a UUID")
		}
		id = v
	}
	now := s.now()
	err = db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO devices (tenant_id, id, user_id, name, created_at) VALUES ($1, coalesce($2::uuid, gen_random_uuid()), $3, $4, $5)
ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name WHERE devices.user_id = EXCLUDED.user_id
RETURNING id, name, sync_cursor, cursor_updated_at, created_at, xmax = 0`, p.TenantID, id, p.UserID, name, now).
			Scan(&d.ID, &d.Name, &d.Cursor, &d.CursorUpdatedAt, &d.CreatedAt, &created)
		if errors.Is(err, pgx.ErrNoRows) {
			return apierror.New(apierror.CodeAlreadyExists, "device id taken: register without an id, or with another one")
		}
		return err
	})
	return d, created, wrap("register device", err)
}

const deviceSelect = "SELECT id, name, sync_cursor, cursor_updated_at, created_at FROM devices "

func scanDevice(row pgx.Row) (Device, error) {
	var d Device
	err := row.Scan(&d.ID, &d.Name, &d.Cursor, &d.CursorUpdatedAt, &d.CreatedAt)
	return d, err
}

// ListDevices lists p's user's devices, oldest first.
func (s *Service) ListDevices(ctx context.Context, p identity.Principal) ([]Device, error) {
	if err := s.cfg.RBAC(p, identity.PermFilesRead); err != nil {
		return nil, err
	}
	out := []Device{}
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, deviceSelect+"WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id", p.TenantID, p.UserID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Device, error) { return scanDevice(r) })
		return err
	})
	if out == nil {
		out = []Device{}
	}
	return out, wrap("list devices", err)
}

// GetDevice returns one of p's user's devices.
func (s *Service) GetDevice(ctx context.Context, p identity.Principal, id string) (Device, error) {
	if err := s.cfg.RBAC(p, identity.PermFilesRead); err != nil {
		return Device{}, err
	}
	did, ok := uuid.Parse(id)
	if !ok {
		return Device{}, ErrNotFound
	}
	var d Device
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		var err error
		d, err = scanDevice(tx.QueryRow(ctx, deviceSelect+"WHERE tenant_id = $1 AND id = $2 AND user_id = $3", p.TenantID, did, p.UserID))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	return d, wrap("get device", err)
}

// DeleteDevice unregisters one of p's user's devices.
func (s *Service) DeleteDevice(ctx context.Context, p identity.Principal, id string) error {
	if err := s.cfg.RBAC(p, identity.PermFilesRead); err != nil {
		return err
	}
	did, ok := uuid.Parse(id)
	if !ok {
		return ErrNotFound
	}
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM devices WHERE tenant_id = $1 AND id = $2 AND user_id = $3", p.TenantID, did, p.UserID)
		if err == nil && tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return err
	})
	return wrap("delete device", err)
}

// SetCursor persists the cursor device id has applied; it must lie within the journal's
// horizon and latest seq (409 cursor_stale otherwise).
func (s *Service) SetCursor(ctx context.Context, p identity.Principal, id string, cursor int64) (Device, error) {
	if err := s.cfg.RBAC(p, identity.PermFilesRead); err != nil {
		return Device{}, err
	}
	did, ok := uuid.Parse(id)
	if !ok {
		return Device{}, ErrNotFound
	}
	if cursor < 0 {
		return Device{}, invalid("cursor must not be negative")
	}
	now := s.now()
	var d Device
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		// The device first: another user's device is 404 whatever the cursor.
		var err error
		d, err = scanDevice(tx.QueryRow(ctx, deviceSelect+"WHERE tenant_id = $1 AND id = $2 AND user_id = $3 FOR UPDATE", p.TenantID, did, p.UserID))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		pos, err := position(ctx, tx, p.TenantID)
		if err != nil {
			return err
		}
		if err := pos.check(cursor); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE devices SET sync_cursor = $3, cursor_updated_at = $4 WHERE tenant_id = $1 AND id = $2", p.TenantID, did, cursor, now)
		d.Cursor, d.CursorUpdatedAt = cursor, &now
		return err
	})
	return d, wrap("set cursor", err)
}

// Position is where a tenant's journal stands.
type Position struct {
	// Cursor is the latest seq: pulling from it returns only changes made from now on.
	Cursor int64 `json:"cursor"`
	// Horizon is the oldest cursor that can still be resumed.
	Horizon int64 `json:"horizon"`
}

// position reads the latest seq and the horizon of tenant in tx.
func position(ctx context.Context, tx pgx.Tx, tenant string) (Position, error) {
	var pos Position
	err := tx.QueryRow(ctx, `SELECT coalesce((SELECT seq FROM journal_counters WHERE tenant_id = $1), 0),
	coalesce((SELECT horizon FROM journal_horizons WHERE tenant_id = $1), 0)`, tenant).Scan(&pos.Cursor, &pos.Horizon)
	return pos, err
}

func (pos Position) check(cursor int64) error {
	switch {
	case cursor < pos.Horizon:
		return staleError("cursor %d is older than the journal's retained horizon %d", cursor, pos.Horizon)
	case cursor > pos.Cursor:
		return staleError("cursor %d is ahead of the journal (latest %d): it belongs to another or a reset namespace", cursor, pos.Cursor)
	}
	return nil
}

// inSnapshot runs fn in a read-only REPEATABLE READ transaction of tenant: one snapshot.
func (s *Service) inSnapshot(ctx context.Context, tenant string, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := db.SetTenant(ctx, tx, tenant); err != nil {
			return err
		}
		return fn(tx)
	})
}

// Latest returns the position of p's tenant's journal.
func (s *Service) Latest(ctx context.Context, p identity.Principal) (Position, error) {
	if err := s.cfg.RBAC(p, identity.PermFilesRead); err != nil {
		return Position{}, err
	}
	var pos Position
	err := s.inSnapshot(ctx, p.TenantID, func(tx pgx.Tx) error {
		var err error
		pos, err = position(ctx, tx, p.TenantID)
		return err
	})
	return pos, wrap("latest cursor", err)
}

// Change is one row of the change journal.
type Change struct {
	Seq      int64   `json:"seq"`
	Op       string  `json:"op"`
	NodeID   string  `json:"node_id"`
	NodeType string  `json:"node_type"`
	ParentID *string `json:"parent_id"`
	Name     string  `json:"name"`
	// Path is the parent's current path and Name (null once the parent is purged).
	Path *string `json:"path"`
	// VersionID and Version (its number) are set for changes of a file's content.
	VersionID *string `json:"version_id,omitempty"`
	Version   *int    `json:"version,omitempty"`
	// Hash is the content's BLAKE3, Size its size (null once the version is purged).
	Hash    *string   `json:"hash,omitempty"`
	Size    *int64    `json:"size,omitempty"`
	ActorID string    `json:"actor_id"`
	At      time.Time `json:"at"`
}

// Changes is one page of the journal.
type Changes struct {
	Changes []Change `json:"changes"`
	// NextCursor is the cursor to pull the next page from (the last change's seq, or the
	// cursor asked for when the page is empty).
	NextCursor int64 `json:"next_cursor"`
	// HasMore says the journal has changes beyond NextCursor already.
	HasMore bool `json:"has_more"`
	// LatestCursor is the journal's latest seq in the same snapshot.
	LatestCursor int64 `json:"latest_cursor"`
}

// PullSQL reads a page of the journal: a range scan of its primary key (tenant_id, seq)
// ($1 tenant, $2 cursor, $3 page size + 1), with the version's number and size and the
// parent's current path.
const PullSQL = `SELECT j.seq, j.op, j.node_id, j.node_type, j.parent_id, j.name, j.version_id, v.number, j.blob_hash, v.size, j.actor_id, j.at,
	CASE WHEN j.parent_id IS NULL THEN '/' || j.name ELSE pp.path || '/' || j.name END
FROM change_journal j
LEFT JOIN versions v ON v.tenant_id = j.tenant_id AND v.id = j.version_id
LEFT JOIN LATERAL (
	WITH RECURSIVE up AS (
		SELECT a.id, a.parent_id, a.name, 1 AS depth FROM nodes a WHERE a.tenant_id = $1 AND a.id = j.parent_id
		UNION ALL
		SELECT a.id, a.parent_id, a.name, up.depth + 1 FROM nodes a JOIN up ON a.tenant_id = $1 AND a.id = up.parent_id
		WHERE up.depth < 1000
	)
	SELECT '/' || string_agg(up.name, '/' ORDER BY up.depth DESC) AS path FROM up HAVING count(*) > 0
) pp ON j.parent_id IS NOT NULL
WHERE j.tenant_id = $1 AND j.seq > $2
ORDER BY j.seq
LIMIT $3`

// Pull returns the changes after cursor, at most limit (0: DefaultPageSize).
func (s *Service) Pull(ctx context.Context, p identity.Principal, cursor int64, limit int) (Changes, error) {
	if err := s.cfg.RBAC(p, identity.PermFilesRead); err != nil {
		return Changes{}, err
	}
	switch {
	case cursor < 0:
		return Changes{}, invalid("cursor must not be negative")
	case limit == 0:
		limit = DefaultPageSize
	case limit < 0 || limit > MaxPageSize:
		return Changes{}, invalid("limit must be between 1 and %d", MaxPageSize)
	}
	out := Changes{Changes: []Change{}, NextCursor: cursor}
	err := s.inSnapshot(ctx, p.TenantID, func(tx pgx.Tx) error {
		pos, err := position(ctx, tx, p.TenantID)
		if err != nil {
			return err
		}
		if err := pos.check(cursor); err != nil {
			return err
		}
		out.LatestCursor = pos.Cursor
		rows, err := tx.Query(ctx, PullSQL, p.TenantID, cursor, limit+1)
		if err != nil {
			return err
		}
		out.Changes, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Change, error) {
			var c Change
			err := r.Scan(&c.Seq, &c.Op, &c.NodeID, &c.NodeType, &c.ParentID, &c.Name, &c.VersionID, &c.Version, &c.Hash, &c.Size, &c.ActorID, &c.At, &c.Path)
			return c, err
		})
		return err
	})
	if err != nil {
		return Changes{}, wrap("pull", err)
	}
	if len(out.Changes) > limit {
		out.Changes, out.HasMore = out.Changes[:limit], true
	}
	if n := len(out.Changes); n > 0 {
		out.NextCursor = out.Changes[n-1].Seq
	}
	return out, nil
}

// SetHorizon records that tenantID's journal rows up to horizon may be compacted away (for
// the compactor, which must call it before deleting them). The horizon never moves back and
// never beyond the latest seq.
func (s *Service) SetHorizon(ctx context.Context, tenantID string, horizon int64) error {
	if horizon < 0 {
		return invalid("horizon must not be negative")
	}
	err := db.WithTenant(ctx, s.pool, tenantID, func(tx pgx.Tx) error {
		pos, err := position(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		if horizon > pos.Cursor {
			return invalid("horizon %d is beyond the journal's latest seq %d", horizon, pos.Cursor)
		}
		_, err = tx.Exec(ctx, `INSERT INTO journal_horizons (tenant_id, horizon, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id) DO UPDATE SET horizon = greatest(journal_horizons.horizon, EXCLUDED.horizon), updated_at = EXCLUDED.updated_at`, tenantID, horizon, s.now())
		return err
	})
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "23503" {
		return ErrNotFound // no such tenant
	}
	return wrap("set horizon", err)
}
