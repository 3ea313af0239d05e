// Package sharing is bitvaultd's Sharing module: nodes shared with users of the same tenant as viewer or editor, public download links, and the node-level access check that combines those grants with the tenant role.
//
// # Access
//
// Access to a node is the best of two grants, and nothing without one (deny by default):
//
//   - the tenant role, through identity's RBAC table: files:write (member and above) is
//     write access to every node of the tenant, files:read (every role today) read access;
//   - the active shares of the user on the node or any folder above it: editor is write
//     access to that subtree, viewer read access, whatever the tenant role (a tenant viewer
//     with an editor share writes in that subtree).
//
// An API token never exceeds its scopes: share-derived read needs a scope unlocking
// files:read, write one unlocking files:write (identity.ScopeAllows), besides the token's
// user having the share. A node the caller has no access to at all is answered 404, like a
// node that does not exist (or belongs to another tenant); one it may read but not write is
// 403 for writes. Service.Authorize exposes the check to other modules; files consults it
// (AuthorizeNode, as its files.NodeAuthorizer) so that shares take effect in /v1/files and
// /v1/nodes too.
//
// Managing a node's shares and links needs write access to it; listing its shares, read
// access. A share names a user of the caller's tenant by id or email; sharing again with the
// same user changes the role (one active share per node and user). Revoking keeps the row
// (revoked_at) and ends the access at once: it is checked on every request.
//
// # Public links
//
// A link is an anonymous capability to download one file: GET /v1/links/{token} answers a
// 302 to a presigned GET of the file's current version, in the object store. The token is
// "bvl_", the tenant id in hex (which routes the lookup to the tenant's rows under row-level
// security) and 32 random bytes in base64url; only its SHA-256 is stored, and the token is
// shown once, when the link is created, and never logged (the access log sees
// /v1/links/bvl_<tenant>_…). A link may have a password (argon2id through identity's hasher,
// sent in the X-Link-Password header or a POST {password}), an expiry, and is download-only
// by default (the presigned GET makes the browser save the file; without it the file may be
// shown inline). Unknown tokens and files in the trash or purged are 404; expired or revoked
// links 410 gone; a missing or wrong password 401. Password guessing is limited like login's
// (package ratelimit): wrong passwords are counted per link and client address, per link and
// per address; past a limit the link answers 429 rate_limited with Retry-After, without
// checking the password, until the lock's window has passed (audited once per lockout as
// link.password.locked), and a right password clears the link's counters. A link is
// independent of its creator's later access: revoke it explicitly.
//
// Events: every share and link change writes an outbox row (sharing.share.created, …) in the
// same transaction.
package sharing

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
	"github.com/bitvault/bitvault/service/internal/ratelimit"
	"github.com/bitvault/bitvault/service/internal/storage"
)

// Access is a level of access to a node.
type Access int

// Access levels, each including the ones before.
const (
	NoAccess Access = iota
	Read
	Write
)

func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	}
	return "none"
}

// Share roles.
const (
	RoleViewer = "viewer"
	RoleEditor = "editor"
)

// PasswordHasher hashes and checks link passwords (identity.Service).
type PasswordHasher interface {
	HashPassword(ctx context.Context, password string) (string, error)
	VerifyPassword(ctx context.Context, password, encoded string) (bool, error)
}

// Presigner presigns downloads from the object store (storage.ObjectStore).
type Presigner interface {
	PresignGet(ctx context.Context, key string, o storage.GetOptions, ttl time.Duration) (storage.Presigned, error)
}

// Defaults of Config.
const (
	DefaultDownloadTTL = 5 * time.Minute
	DefaultMaxLinkTTL  = 366 * 24 * time.Hour
)

// Config configures a Service. Zero values take the defaults.
type Config struct {
	// DownloadTTL is the lifetime of the presigned downloads links redirect to.
	DownloadTTL time.Duration
	// MaxLinkTTL bounds a link's expiry (a link without one lasts until revoked).
	MaxLinkTTL time.Duration
	// Limits are the brute-force limits of link passwords (zero fields: ratelimit's
	// defaults); bitvaultd gives login's (identity.Config.Limits), read from the same
	// variables.
	Limits ratelimit.Config
	// RBAC is the tenant-wide role check (nil: identity.Authorize). Tests replace it to
	// exercise other role tables.
	RBAC func(identity.Principal, identity.Permission) error
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Service implements the sharing module.
type Service struct {
	pool      *pgxpool.Pool
	hasher    PasswordHasher
	presigner Presigner
	cfg       Config
	limiter   *ratelimit.Limiter
	logger    *slog.Logger
}

// New returns a Service on the app role's pool. presigner may be nil (no object store):
// links are then answered 503.
func New(pool *pgxpool.Pool, hasher PasswordHasher, presigner Presigner, cfg Config, logger *slog.Logger) (*Service, error) {
	if pool == nil || hasher == nil {
		return nil, errors.New("sharing: pool and password hasher are required")
	}
	if cfg.DownloadTTL <= 0 {
		cfg.DownloadTTL = DefaultDownloadTTL
	}
	if cfg.MaxLinkTTL <= 0 {
		cfg.MaxLinkTTL = DefaultMaxLinkTTL
	}
	if cfg.RBAC == nil {
		cfg.RBAC = identity.Authorize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	limiter, err := ratelimit.New(cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("sharing: %w", err)
	}
	cfg.Limits = limiter.Config()
	return &Service{pool: pool, hasher: hasher, presigner: presigner, cfg: cfg, limiter: limiter, logger: logger}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Errors. Coded errors are answered as they are.
var (
	ErrNotFound         = apierror.New(apierror.CodeNotFound, "not found")
	ErrPermissionDenied = apierror.New(apierror.CodePermissionDenied, "permission denied: needs write access to the node (tenant role member or above, or an editor share)")
)

func invalid(format string, args ...any) error {
	return apierror.New(apierror.CodeInvalidArgument, fmt.Sprintf(format, args...))
}

func isCoded(err error) bool {
	_, ok := errors.AsType[*apierror.Coded](err)
	return ok
}

func wrap(op string, err error) error {
	if err == nil || isCoded(err) {
		return err
	}
	return fmt.Errorf("sharing: %s: %w", op, err)
}

// tenantAccess is what p's role (and scopes) allow on every node of its tenant.
func (s *Service) tenantAccess(p identity.Principal) Access {
	switch {
	case s.cfg.RBAC(p, identity.PermFilesWrite) == nil:
		return Write
	case s.cfg.RBAC(p, identity.PermFilesRead) == nil:
		return Read
	}
	return NoAccess
}

// shareCap is the most p's credential lets a share give it.
func shareCap(p identity.Principal) Access {
	switch {
	case identity.ScopeAllows(p, identity.PermFilesWrite):
		return Write
	case identity.ScopeAllows(p, identity.PermFilesRead):
		return Read
	}
	return NoAccess
}

// effective combines p's tenant-wide access with the best share it holds on a node.
func (s *Service) effective(p identity.Principal, share Access) Access {
	return max(s.tenantAccess(p), min(share, shareCap(p)))
}

// requireAny fails unless p could have some access to some node (its role or its
// credential's scopes): the error of the role check otherwise.
func (s *Service) requireAny(p identity.Principal) error {
	if p.UserID == "" || p.TenantID == "" {
		return identity.ErrUnauthenticated
	}
	if s.tenantAccess(p) > NoAccess || shareCap(p) > NoAccess {
		return nil
	}
	return s.cfg.RBAC(p, identity.PermFilesRead)
}

// nodeInfo is a node as the access check sees it.
type nodeInfo struct {
	id, typ, name, path string
	inTrash             bool
	// share is the best active share of the user on the node or a folder above it.
	share Access
	// hash is the current version's blob (files).
	hash *string
	size int64
}

// lookupNode reads node id of tenant with its path, trash state and userID's best share on
// it or above it. A missing node is ErrNotFound.
func lookupNode(ctx context.Context, tx pgx.Tx, tenant, userID, id string) (nodeInfo, error) {
	n := nodeInfo{id: id}
	var user any // NULL (no user: a public link) matches no share
	if userID != "" {
		user = userID
	}
	var path *string
	var share int
	err := tx.QueryRow(ctx, `WITH RECURSIVE up AS (
	SELECT id, parent_id, name, deleted_at, 1 AS depth FROM nodes WHERE tenant_id = $1 AND id = $2
	UNION ALL
	SELECT n.id, n.parent_id, n.name, n.deleted_at, up.depth + 1
	FROM nodes n JOIN up ON n.tenant_id = $1 AND n.id = up.parent_id
	WHERE up.depth < 1000
)
SELECT '/' || string_agg(up.name, '/' ORDER BY up.depth DESC),
	coalesce(bool_or(up.deleted_at IS NOT NULL), false),
	coalesce(max(CASE s.role WHEN 'editor' THEN 2 WHEN 'viewer' THEN 1 ELSE 0 END), 0)
FROM up LEFT JOIN shares s ON s.tenant_id = $1 AND s.node_id = up.id AND s.user_id = $3 AND s.revoked_at IS NULL`,
		tenant, id, user).Scan(&path, &n.inTrash, &share)
	if err != nil {
		return nodeInfo{}, err
	}
	if path == nil {
		return nodeInfo{}, ErrNotFound
	}
	n.path, n.share = *path, Access(share)
	err = tx.QueryRow(ctx, `SELECT n.type, n.name, v.blob_hash, coalesce(v.size, 0)
FROM nodes n LEFT JOIN versions v ON v.tenant_id = n.tenant_id AND v.id = n.current_version_id
WHERE n.tenant_id = $1 AND n.id = $2`, tenant, id).Scan(&n.typ, &n.name, &n.hash, &n.size)
	if errors.Is(err, pgx.ErrNoRows) {
		return nodeInfo{}, ErrNotFound
	}
	return n, err
}

// check answers whether p has need on n: ErrNotFound when it has no access at all (hiding
// the node), a 403 when it may read but not write.
func (s *Service) check(p identity.Principal, n nodeInfo, need Access) error {
	got := s.effective(p, n.share)
	switch {
	case got == NoAccess:
		return ErrNotFound
	case got >= need:
		return nil
	}
	if err := s.cfg.RBAC(p, identity.PermFilesWrite); err != nil && !errors.Is(err, identity.ErrPermissionDenied) {
		return err // insufficient_scope: say so
	}
	return ErrPermissionDenied
}

// liveNode reads a node for p in tx and checks it is live (not in the trash, by itself or
// through a folder above it) and that p has need on it.
func (s *Service) liveNode(ctx context.Context, tx pgx.Tx, p identity.Principal, id string, need Access) (nodeInfo, error) {
	nid, ok := uuid.Parse(id)
	if !ok {
		return nodeInfo{}, ErrNotFound
	}
	n, err := lookupNode(ctx, tx, p.TenantID, p.UserID, nid)
	if err != nil {
		return nodeInfo{}, err
	}
	if n.inTrash {
		return nodeInfo{}, ErrNotFound
	}
	return n, s.check(p, n, need)
}

// Authorize checks that p has need (Read or Write) on node id (in the trash or not), as
// described in the package documentation: nil, ErrNotFound when p has no access to it at all
// (or it does not exist), or a 403 error.
func (s *Service) Authorize(ctx context.Context, p identity.Principal, id string, need Access) error {
	if err := s.requireAny(p); err != nil {
		return err
	}
	nid, ok := uuid.Parse(id)
	if !ok {
		return ErrNotFound
	}
	var n nodeInfo
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		var err error
		n, err = lookupNode(ctx, tx, p.TenantID, p.UserID, nid)
		return err
	})
	if err != nil {
		return wrap("authorize", err)
	}
	return s.check(p, n, need)
}

// AuthorizeNode is Authorize for modules that do not import sharing (files.NodeAuthorizer):
// write asks for Write access, otherwise Read.
func (s *Service) AuthorizeNode(ctx context.Context, p identity.Principal, id string, write bool) error {
	need := Read
	if write {
		need = Write
	}
	return s.Authorize(ctx, p, id, need)
}

// ReadScope says which nodes p may read: all of its tenant's (all), or else the subtrees
// under roots, the nodes shared with it. An error means none (p's credential allows no
// reading at all).
func (s *Service) ReadScope(ctx context.Context, p identity.Principal) (all bool, roots []string, err error) {
	if err := s.requireAny(p); err != nil {
		return false, nil, err
	}
	if s.tenantAccess(p) >= Read {
		return true, nil, nil
	}
	if shareCap(p) < Read {
		return false, nil, s.cfg.RBAC(p, identity.PermFilesRead)
	}
	err = db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT node_id::text FROM shares WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL", p.TenantID, p.UserID)
		if err != nil {
			return err
		}
		roots, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return false, roots, wrap("read scope", err)
}

// Outbox topics.
const (
	TopicShareCreated = "sharing.share.created"
	TopicShareUpdated = "sharing.share.updated"
	TopicShareRevoked = "sharing.share.revoked"
	TopicLinkCreated  = "sharing.link.created"
	TopicLinkRevoked  = "sharing.link.revoked"
)

// auditTypes maps the outbox topics to the audit log's event types: every share and link
// change is security-relevant.
var auditTypes = map[string]string{
	TopicShareCreated: audit.ShareCreated,
	TopicShareUpdated: audit.ShareUpdated,
	TopicShareRevoked: audit.ShareRevoked,
	TopicLinkCreated:  audit.LinkCreated,
	TopicLinkRevoked:  audit.LinkRevoked,
}

// event writes an outbox row in tx, and the matching audit log row.
func event(ctx context.Context, tx pgx.Tx, tenant, topic string, payload map[string]any, at time.Time) error {
	payload["tenant_id"] = tenant
	payload["at"] = at
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	if _, err = tx.Exec(ctx, "INSERT INTO outbox (tenant_id, topic, payload, created_at) VALUES ($1, $2, $3, $4)", tenant, topic, b, at); err != nil {
		return err
	}
	if typ, ok := auditTypes[topic]; ok {
		actor, _ := payload["actor_id"].(string)
		target, _ := payload["share_id"].(string)
		if target == "" {
			target, _ = payload["link_id"].(string)
		}
		return audit.Record(ctx, tx, tenant, actor, typ, target, payload)
	}
	return nil
}
