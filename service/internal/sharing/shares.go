package sharing

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/uuid"
)

// Share is a node shared with a user.
type Share struct {
	ID     string `json:"id"`
	NodeID string `json:"node_id"`
	// UserID, UserEmail and UserName are the grantee's.
	UserID    string    `json:"user_id"`
	UserEmail string    `json:"user_email"`
	UserName  string    `json:"user_display_name"`
	Role      string    `json:"role"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewShare is the input of CreateShare: the grantee by id or by email, and the role.
type NewShare struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	Role   string `json:"role"`
}

// CreateShare shares node id with a user of p's tenant (see the package documentation);
// created is false when an active share existed and only its role changed.
func (s *Service) CreateShare(ctx context.Context, p identity.Principal, id string, in NewShare) (sh Share, created bool, err error) {
	if err := s.requireAny(p); err != nil {
		return Share{}, false, err
	}
	if in.Role != RoleViewer && in.Role != RoleEditor {
		return Share{}, false, invalid("role: want viewer or editor")
	}
	if (in.UserID == "") == (in.Email == "") {
		return Share{}, false, invalid("give the user to share with as user_id or email (one of them)")
	}
	now := s.now()
	err = db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		n, err := s.liveNode(ctx, tx, p, id, Write)
		if err != nil {
			return err
		}
		sh, err = lookupGrantee(ctx, tx, p.TenantID, in)
		if err != nil {
			return err
		}
		if sh.UserID == p.UserID {
			return invalid("cannot share with yourself")
		}
		err = tx.QueryRow(ctx, `INSERT INTO shares (tenant_id, node_id, user_id, role, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)
ON CONFLICT (tenant_id, node_id, user_id) WHERE revoked_at IS NULL DO UPDATE SET role = EXCLUDED.role, updated_at = EXCLUDED.updated_at
RETURNING id, created_by, created_at, updated_at, xmax = 0`, p.TenantID, n.id, sh.UserID, in.Role, p.UserID, now).
			Scan(&sh.ID, &sh.CreatedBy, &sh.CreatedAt, &sh.UpdatedAt, &created)
		if err != nil {
			return err
		}
		sh.NodeID, sh.Role = n.id, in.Role
		topic := TopicShareCreated
		if !created {
			topic = TopicShareUpdated
		}
		return event(ctx, tx, p.TenantID, topic, map[string]any{"share_id": sh.ID, "node_id": n.id, "user_id": sh.UserID, "role": in.Role, "actor_id": p.UserID}, now)
	})
	return sh, created, wrap("create share", err)
}

// lookupGrantee finds the user named by in in the tenant (row-level security hides every
// other tenant's users).
func lookupGrantee(ctx context.Context, tx pgx.Tx, tenant string, in NewShare) (Share, error) {
	var sh Share
	var err error
	if in.UserID != "" {
		uid, ok := uuid.Parse(in.UserID)
		if !ok {
			return Share{}, apierror.New(apierror.CodeNotFound, "user not found")
		}
		err = tx.QueryRow(ctx, "SELECT id, email, display_name FROM users WHERE tenant_id = $1 AND id = $2", tenant, uid).Scan(&sh.UserID, &sh.UserEmail, &sh.UserName)
	} else {
		err = tx.QueryRow(ctx, "SELECT id, email, display_name FROM users WHERE tenant_id = $1 AND email = $2", tenant, strings.ToLower(strings.TrimSpace(in.Email))).Scan(&sh.UserID, &sh.UserEmail, &sh.UserName)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return Share{}, apierror.New(apierror.CodeNotFound, "user not found")
	}
	return sh, err
}

const shareSelect = `SELECT s.id, s.node_id, s.user_id, u.email, u.display_name, s.role, s.created_by, s.created_at, s.updated_at
FROM shares s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
`

func scanShare(row pgx.Row) (Share, error) {
	var sh Share
	err := row.Scan(&sh.ID, &sh.NodeID, &sh.UserID, &sh.UserEmail, &sh.UserName, &sh.Role, &sh.CreatedBy, &sh.CreatedAt, &sh.UpdatedAt)
	return sh, err
}

// ListShares lists the active shares of node id itself (not those of folders above it);
// it needs read access.
func (s *Service) ListShares(ctx context.Context, p identity.Principal, id string) ([]Share, error) {
	if err := s.requireAny(p); err != nil {
		return nil, err
	}
	out := []Share{}
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		n, err := s.liveNode(ctx, tx, p, id, Read)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, shareSelect+"WHERE s.tenant_id = $1 AND s.node_id = $2 AND s.revoked_at IS NULL ORDER BY s.created_at, s.id", p.TenantID, n.id)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Share, error) { return scanShare(r) })
		return err
	})
	if out == nil {
		out = []Share{}
	}
	return out, wrap("list shares", err)
}

// RevokeShare ends share shareID of node id; it needs write access to the node.
func (s *Service) RevokeShare(ctx context.Context, p identity.Principal, id, shareID string) error {
	if err := s.requireAny(p); err != nil {
		return err
	}
	sid, ok := uuid.Parse(shareID)
	if !ok {
		return ErrNotFound
	}
	now := s.now()
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		n, err := s.liveNode(ctx, tx, p, id, Write)
		if err != nil {
			return err
		}
		var userID string
		err = tx.QueryRow(ctx, `UPDATE shares SET revoked_at = $4, revoked_by = $5
WHERE tenant_id = $1 AND id = $2 AND node_id = $3 AND revoked_at IS NULL RETURNING user_id`, p.TenantID, sid, n.id, now, p.UserID).Scan(&userID)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return event(ctx, tx, p.TenantID, TopicShareRevoked, map[string]any{"share_id": sid, "node_id": n.id, "user_id": userID, "actor_id": p.UserID}, now)
	})
	return wrap("revoke share", err)
}

// SharedNode is a share granted to the caller, with the node.
type SharedNode struct {
	Share
	NodeType string `json:"node_type"`
	NodeName string `json:"node_name"`
	Path     string `json:"path"`
}

// SharedWithMe lists the active shares granted to p on live nodes, newest first.
func (s *Service) SharedWithMe(ctx context.Context, p identity.Principal) ([]SharedNode, error) {
	if err := s.requireAny(p); err != nil {
		return nil, err
	}
	if shareCap(p) < Read {
		return nil, s.cfg.RBAC(p, identity.PermFilesRead)
	}
	out := []SharedNode{}
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT s.id, s.node_id, s.user_id, u.email, u.display_name, s.role, s.created_by, s.created_at, s.updated_at,
	n.type, n.name, pl.path
FROM shares s
JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
JOIN nodes n ON n.tenant_id = s.tenant_id AND n.id = s.node_id
CROSS JOIN LATERAL (
	WITH RECURSIVE up AS (
		SELECT n.id, n.parent_id, n.name, n.deleted_at, 1 AS depth
		UNION ALL
		SELECT a.id, a.parent_id, a.name, a.deleted_at, up.depth + 1
		FROM nodes a JOIN up ON a.tenant_id = $1 AND a.id = up.parent_id
		WHERE up.depth < 1000
	)
	SELECT '/' || string_agg(up.name, '/' ORDER BY up.depth DESC) AS path, bool_or(up.deleted_at IS NOT NULL) AS in_trash FROM up
) pl
WHERE s.tenant_id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND NOT pl.in_trash
ORDER BY s.created_at DESC, s.id`, p.TenantID, p.UserID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (SharedNode, error) {
			var sn SharedNode
			err := r.Scan(&sn.ID, &sn.NodeID, &sn.UserID, &sn.UserEmail, &sn.UserName, &sn.Role, &sn.CreatedBy, &sn.CreatedAt, &sn.UpdatedAt,
				&sn.NodeType, &sn.NodeName, &sn.Path)
			return sn, err
		})
		return err
	})
	if out == nil {
		out = []SharedNode{}
	}
	return out, wrap("shared with me", err)
}
