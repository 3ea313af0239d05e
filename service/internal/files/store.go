package files

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// rootKey stands for the root (parent NULL) in nodes.parent_key, the column the indexes over
// live names and children use (migration 0007).
const rootKey = "00000000-0000-0000-0000-000000000000"

// liveNameIndex is the unique index over live names among siblings: a violation of it means
// the name is taken.
const liveNameIndex = "nodes_live_name_key"

// ParentKey is the nodes.parent_key of the children of parentID (nil: the root). It is
// computed here, not in SQL: under row-level security the planner uses an index only for
// conditions it knows cannot leak values, and it counts any COALESCE as leaky (see
// migration 0007).
func ParentKey(parentID *string) string {
	if parentID == nil {
		return rootKey
	}
	return *parentID
}

// txn is one transaction of one tenant, on behalf of actor (a user id). Every query filters
// on the tenant besides the row-level security policies.
type txn struct {
	s      *Service
	tx     pgx.Tx
	tenant string
	actor  string
	// changes are the journal rows and events to write before committing (see record).
	changes []*change
}

// inTx runs fn in a tenant transaction (see Service.inTenant) and writes the changes it
// recorded before committing.
func (s *Service) inTx(ctx context.Context, tenantID, actorID string, fn func(t *txn) error) error {
	return s.inTenant(ctx, tenantID, func(tx pgx.Tx) error {
		t := &txn{s: s, tx: tx, tenant: tenantID, actor: actorID}
		if err := fn(t); err != nil {
			return err
		}
		return t.flush(ctx)
	})
}

// nodeSelect reads nodes with their current version; append WHERE … (and FOR … OF n).
const nodeSelect = `SELECT n.id, n.type, n.name, n.parent_id, n.size, n.created_by, n.created_at, n.updated_at, n.deleted_at,
	v.id, v.number, v.size, v.blob_hash, v.created_by, v.base_version_id, v.created_at
FROM nodes n LEFT JOIN versions v ON v.tenant_id = n.tenant_id AND v.id = n.current_version_id
`

func scanNode(row pgx.Row) (Node, error) {
	var n Node
	var (
		vID, vHash, vBy *string
		vNumber         *int
		vSize           *int64
		vBase           *string
		vAt             *time.Time
	)
	err := row.Scan(&n.ID, &n.Type, &n.Name, &n.ParentID, &n.Size, &n.CreatedBy, &n.CreatedAt, &n.UpdatedAt, &n.TrashedAt,
		&vID, &vNumber, &vSize, &vHash, &vBy, &vBase, &vAt)
	if err != nil {
		return Node{}, err
	}
	if vID != nil {
		n.CurrentVersion = &Version{ID: *vID, NodeID: n.ID, Number: *vNumber, Size: *vSize, BLAKE3: *vHash, CreatedBy: *vBy, BaseVersionID: vBase, CreatedAt: *vAt}
	}
	return n, nil
}

func collectNodes(rows pgx.Rows) ([]Node, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Node, error) { return scanNode(r) })
}

// getNode reads node id (in the trash or not); lock is "", "FOR SHARE" or "FOR UPDATE".
func (t *txn) getNode(ctx context.Context, id, lock string) (Node, error) {
	q := nodeSelect + "WHERE n.tenant_id = $1 AND n.id = $2"
	if lock != "" {
		q += " " + lock + " OF n"
	}
	n, err := scanNode(t.tx.QueryRow(ctx, q, t.tenant, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Node{}, ErrNotFound
	}
	return n, err
}

// ChildSQL finds a live child by name: $1 tenant, $2 ParentKey of the folder, $3 name. The
// commit path runs it for every segment of a path. Exported, with ListSQL, for EXPLAIN
// (bvload, the plan tests).
const ChildSQL = nodeSelect + "WHERE n.tenant_id = $1 AND n.parent_key = $2::uuid AND n.name = $3 AND n.deleted_at IS NULL"

// ListSQL pages through a folder's live children in listing order: $1 tenant, $2 ParentKey of
// the folder and, after a cursor, $3 name and $4 id of the last node of the previous page.
func ListSQL(afterCursor bool, limit int) string {
	q := nodeSelect + "WHERE n.tenant_id = $1 AND n.parent_key = $2::uuid AND n.deleted_at IS NULL"
	if afterCursor {
		q += ` AND (n.name COLLATE "C", n.id) > ($3 COLLATE "C", $4::uuid)`
	}
	return q + fmt.Sprintf(` ORDER BY n.name COLLATE "C", n.id LIMIT %d`, limit)
}

// liveChild returns the live child of parentID (nil: the root) named name, or nil.
func (t *txn) liveChild(ctx context.Context, parentID *string, name, lock string) (*Node, error) {
	q := ChildSQL
	if lock != "" {
		q += " " + lock + " OF n"
	}
	n, err := scanNode(t.tx.QueryRow(ctx, q, t.tenant, ParentKey(parentID), name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// placement is where a node sits: its path and whether it is in the trash, by itself or
// through a folder above it.
type placement struct {
	path    string
	inTrash bool
}

// place computes the path of node id from its ancestors.
func (t *txn) place(ctx context.Context, id string) (placement, error) {
	var p placement
	var path *string
	err := t.tx.QueryRow(ctx, `WITH RECURSIVE up AS (
	SELECT id, parent_id, name, deleted_at, 1 AS depth FROM nodes WHERE tenant_id = $1 AND id = $2
	UNION ALL
	SELECT n.id, n.parent_id, n.name, n.deleted_at, up.depth + 1
	FROM nodes n JOIN up ON n.tenant_id = $1 AND n.id = up.parent_id
	WHERE up.depth < 1000
)
SELECT '/' || string_agg(name, '/' ORDER BY depth DESC), coalesce(bool_or(deleted_at IS NOT NULL), false) FROM up`, t.tenant, id).Scan(&path, &p.inTrash)
	if err != nil {
		return placement{}, err
	}
	if path == nil {
		return placement{}, ErrNotFound
	}
	p.path = *path
	return p, nil
}

// liveNode reads node id with its path, locked as asked, and answers ErrNotFound when it is in
// the trash (by itself or through a folder above it).
func (t *txn) liveNode(ctx context.Context, id, lock string) (Node, error) {
	n, err := t.getNode(ctx, id, lock)
	if err != nil {
		return Node{}, err
	}
	p, err := t.place(ctx, id)
	if err != nil {
		return Node{}, err
	}
	if p.inTrash {
		return Node{}, ErrNotFound
	}
	n.Path = p.path
	return n, nil
}

// liveFolder resolves a parent given by id ("" or nil: the root), locked FOR SHARE so that it
// cannot be trashed, moved or purged until the transaction ends.
func (t *txn) liveFolder(ctx context.Context, id *string) (*string, string, error) {
	if id == nil || *id == "" {
		return nil, "", nil
	}
	pid, ok := parseUUID(*id)
	if !ok {
		return nil, "", ErrNotFound
	}
	n, err := t.liveNode(ctx, pid, "FOR SHARE")
	if err != nil {
		return nil, "", err
	}
	if n.Type != TypeFolder {
		return nil, "", conflict("%s is a file, not a folder", n.Path)
	}
	return &n.ID, n.Path, nil
}

// ensureFolders walks segs from the root, creating the missing folders, and returns the
// last one's id (nil for no segs). Each folder on the way is locked FOR SHARE.
func (t *txn) ensureFolders(ctx context.Context, segs []string) (*string, error) {
	var parent *string
	for i, name := range segs {
		var id string
		err := t.tx.QueryRow(ctx, `INSERT INTO nodes (tenant_id, parent_id, type, name, created_by) VALUES ($1, $2, 'folder', $3, $4)
ON CONFLICT (tenant_id, parent_key, name) WHERE deleted_at IS NULL DO NOTHING
RETURNING id`, t.tenant, parent, name, t.actor).Scan(&id)
		switch {
		case err == nil:
			n, err := t.getNode(ctx, id, "")
			if err != nil {
				return nil, err
			}
			n.Path = joinPath(segs[:i+1])
			t.record(opCreate, n, nil, TopicNodeCreated, nil)
		case errors.Is(err, pgx.ErrNoRows):
			n, err := t.liveChild(ctx, parent, name, "FOR SHARE")
			if err != nil {
				return nil, err
			}
			if n == nil {
				// Taken and released again between the two statements (a concurrent trash
				// or move): let the caller's retry see the new state.
				return nil, errRetry
			}
			if n.Type != TypeFolder {
				return nil, conflict("%s is a file, not a folder", joinPath(segs[:i+1]))
			}
			id = n.ID
		default:
			return nil, err
		}
		parent = &id
	}
	return parent, nil
}

// errRetry makes inTenant's caller run the transaction again.
var errRetry = errors.New("files: state changed during the transaction, retry")

// Journal operations.
const (
	opCreate  = "create"
	opUpdate  = "update"
	opMove    = "move"
	opTrash   = "trash"
	opRestore = "restore"
	opPurge   = "purge"
)

// Outbox topics.
const (
	TopicVersionCreated = "files.version.created"
	TopicNodeCreated    = "files.node.created"
	TopicNodeMoved      = "files.node.moved"
	TopicNodeTrashed    = "files.node.trashed"
	TopicNodeRestored   = "files.node.restored"
	TopicNodePurged     = "files.node.purged"
)

// change is a namespace change waiting for its journal row and outbox event.
type change struct {
	op    string
	node  Node
	v     *Version
	topic string
	extra map[string]any
	// seq is set when the transaction's changes are flushed.
	seq int64
}

// record queues a change-journal row for n and the outbox event announcing it; they are
// written by flush at the end of the transaction, so that the tenant's journal counter is
// the last lock the transaction takes. extra is merged into the event payload.
func (t *txn) record(op string, n Node, v *Version, topic string, extra map[string]any) *change {
	c := &change{op: op, node: n, v: v, topic: topic, extra: extra}
	t.changes = append(t.changes, c)
	return c
}

// flush numbers the queued changes from the tenant's counter (whose row stays locked until
// the transaction ends: seq is gap-free and in commit order) and writes their journal rows
// and outbox events.
func (t *txn) flush(ctx context.Context) error {
	if len(t.changes) == 0 {
		return nil
	}
	n := int64(len(t.changes))
	var last int64
	err := t.tx.QueryRow(ctx, `INSERT INTO journal_counters (tenant_id, seq) VALUES ($1, $2)
ON CONFLICT (tenant_id) DO UPDATE SET seq = journal_counters.seq + $2 RETURNING seq`, t.tenant, n).Scan(&last)
	if err != nil {
		return fmt.Errorf("journal counter: %w", err)
	}
	now := t.s.now()
	batch := &pgx.Batch{}
	for i, c := range t.changes {
		c.seq = last - n + 1 + int64(i)
		var versionID, hash *string
		if c.v != nil {
			versionID, hash = &c.v.ID, &c.v.BLAKE3
		}
		batch.Queue(`INSERT INTO change_journal (tenant_id, seq, node_id, op, node_type, parent_id, name, version_id, blob_hash, actor_id, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, t.tenant, c.seq, c.node.ID, c.op, c.node.Type, c.node.ParentID, c.node.Name, versionID, hash, t.actor, now)
		payload := map[string]any{
			"tenant_id": t.tenant, "seq": c.seq, "op": c.op, "node_id": c.node.ID, "node_type": c.node.Type,
			"parent_id": c.node.ParentID, "name": c.node.Name, "actor_id": t.actor, "at": now,
		}
		if c.node.Path != "" {
			payload["path"] = c.node.Path
		}
		if c.v != nil {
			payload["version_id"], payload["version_number"], payload["size"], payload["blake3"] = c.v.ID, c.v.Number, c.v.Size, c.v.BLAKE3
			payload["base_version_id"] = c.v.BaseVersionID
		}
		for k, val := range c.extra {
			payload[k] = val
		}
		b, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		batch.Queue("INSERT INTO outbox (tenant_id, topic, payload, created_at) VALUES ($1, $2, $3, $4)", t.tenant, c.topic, b, now)
	}
	if err := t.tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("journal and outbox: %w", err)
	}
	t.changes = nil
	return nil
}
