package files

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bitvault/bitvault/service/internal/audit"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/storage"
)

// Page limits of List and ListTrash.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Page is one page of a listing; NextCursor is "" on the last.
type Page struct {
	Nodes      []Node `json:"nodes"`
	NextCursor string `json:"next_cursor"`
}

// cursor is the keyset position after the last node of a page.
type cursor struct {
	Name string     `json:"n,omitempty"`
	At   *time.Time `json:"t,omitempty"`
	ID   string     `json:"i"`
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err != nil || json.Unmarshal(b, &c) != nil {
		return nil, invalid("cursor: not a cursor of this listing")
	}
	if _, ok := parseUUID(c.ID); !ok {
		return nil, invalid("cursor: not a cursor of this listing")
	}
	return &c, nil
}

func pageSize(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultPageSize, nil
	case limit < 0 || limit > MaxPageSize:
		return 0, invalid("limit must be between 1 and %d", MaxPageSize)
	}
	return limit, nil
}

// nodeID parses an id from a URL; a malformed one is simply not found.
func nodeID(id string) (string, error) {
	if v, ok := parseUUID(id); ok {
		return v, nil
	}
	return "", ErrNotFound
}

// openNode gates p for reading (or writing), parses id and authorizes p on that node; it
// returns the parsed id.
func (s *Service) openNode(ctx context.Context, p identity.Principal, id string, write bool) (string, error) {
	if err := s.gate(p, write); err != nil {
		return "", err
	}
	id, err := nodeID(id)
	if err != nil {
		return "", err
	}
	if err := s.authorizeNode(ctx, p, id, write); err != nil {
		return "", err
	}
	return id, nil
}

// queryPage runs a listing query that asks for limit+1 rows and cuts it to a page; next
// makes the cursor that follows the page's last node.
func (t *txn) queryPage(ctx context.Context, q string, args []any, limit int, next func(last Node) cursor) (Page, error) {
	rows, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return Page{}, err
	}
	var page Page
	if page.Nodes, err = collectNodes(rows); err != nil {
		return Page{}, err
	}
	if len(page.Nodes) > limit {
		page.Nodes = page.Nodes[:limit]
		page.NextCursor = encodeCursor(next(page.Nodes[limit-1]))
	}
	return page, nil
}

// orEmpty makes a page without nodes list none rather than null.
func (pg Page) orEmpty() Page {
	if pg.Nodes == nil {
		pg.Nodes = []Node{}
	}
	return pg
}

// CreateFolder creates the folder at path, and the missing folders above it. An existing
// node at path is 409 already_exists.
func (s *Service) CreateFolder(ctx context.Context, p identity.Principal, path string) (Node, error) {
	if err := s.gate(p, true); err != nil {
		return Node{}, err
	}
	segs, err := splitPath(path)
	if err != nil {
		return Node{}, err
	}
	if err := s.authorizePath(ctx, p, segs); err != nil {
		return Node{}, err
	}
	var n Node
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		parent, err := t.ensureFolders(ctx, segs[:len(segs)-1])
		if err != nil {
			return err
		}
		var id string
		err = t.tx.QueryRow(ctx, `INSERT INTO nodes (tenant_id, parent_id, type, name, created_by) VALUES ($1, $2, 'folder', $3, $4)
ON CONFLICT (tenant_id, parent_key, name) WHERE deleted_at IS NULL DO NOTHING
RETURNING id`, t.tenant, parent, segs[len(segs)-1], t.actor).Scan(&id)
		if isNoRows(err) {
			return apierror.New(apierror.CodeAlreadyExists, fmt.Sprintf("%s exists already", joinPath(segs)))
		}
		if err != nil {
			return err
		}
		if n, err = t.getNode(ctx, id, ""); err != nil {
			return err
		}
		n.Path = joinPath(segs)
		t.record(opCreate, n, nil, TopicNodeCreated, nil)
		return nil
	})
	return n, wrap("create folder", err)
}

// Get returns a node (in the trash or not) with its path.
func (s *Service) Get(ctx context.Context, p identity.Principal, id string) (Node, error) {
	id, err := s.openNode(ctx, p, id, false)
	if err != nil {
		return Node{}, err
	}
	var n Node
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		var err error
		if n, err = t.getNode(ctx, id, ""); err != nil {
			return err
		}
		pl, err := t.place(ctx, id)
		n.Path, n.InTrash = pl.path, pl.inTrash
		return err
	})
	return n, wrap("get node", err)
}

// List returns the live children of a folder (parentID "": the root), ordered by name (bytes)
// then id, a page at a time.
func (s *Service) List(ctx context.Context, p identity.Principal, parentID, after string, limit int) (Page, error) {
	if parentID == "" {
		if err := identity.Authorize(p, identity.PermFilesRead); err != nil {
			return Page{}, err
		}
	} else {
		if err := s.gate(p, false); err != nil {
			return Page{}, err
		}
		id, err := nodeID(parentID)
		if err != nil {
			return Page{}, err
		}
		if err := s.authorizeNode(ctx, p, id, false); err != nil {
			return Page{}, err
		}
	}
	limit, err := pageSize(limit)
	if err != nil {
		return Page{}, err
	}
	c, err := decodeCursor(after)
	if err != nil {
		return Page{}, err
	}
	var page Page
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		parent, _, err := t.liveFolder(ctx, &parentID)
		if err != nil {
			return err
		}
		args := []any{t.tenant, ParentKey(parent)}
		if c != nil {
			args = append(args, c.Name, c.ID)
		}
		q := ListSQL(c != nil, limit+1)
		page, err = t.queryPage(ctx, q, args, limit, func(last Node) cursor { return cursor{Name: last.Name, ID: last.ID} })
		return err
	})
	return page.orEmpty(), wrap("list", err)
}

// ListTrash returns the nodes put in the trash by themselves, most recent first.
func (s *Service) ListTrash(ctx context.Context, p identity.Principal, after string, limit int) (Page, error) {
	if err := identity.Authorize(p, identity.PermFilesRead); err != nil {
		return Page{}, err
	}
	limit, err := pageSize(limit)
	if err != nil {
		return Page{}, err
	}
	c, err := decodeCursor(after)
	if err != nil {
		return Page{}, err
	}
	if c != nil && c.At == nil {
		return Page{}, invalid("cursor: not a cursor of this listing")
	}
	var page Page
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		q := nodeSelect + "WHERE n.tenant_id = $1 AND n.deleted_at IS NOT NULL"
		args := []any{t.tenant}
		if c != nil {
			q += " AND (n.deleted_at, n.id) < ($2, $3::uuid)"
			args = append(args, *c.At, c.ID)
		}
		q += fmt.Sprintf(" ORDER BY n.deleted_at DESC, n.id DESC LIMIT %d", limit+1)
		var err error
		page, err = t.queryPage(ctx, q, args, limit, func(last Node) cursor { return cursor{At: last.TrashedAt, ID: last.ID} })
		return err
	})
	return page.orEmpty(), wrap("list trash", err)
}

// Versions lists a file's versions, newest first.
func (s *Service) Versions(ctx context.Context, p identity.Principal, id string) ([]Version, error) {
	id, err := s.openNode(ctx, p, id, false)
	if err != nil {
		return nil, err
	}
	vs := []Version{}
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		if _, err := t.getNode(ctx, id, ""); err != nil {
			return err
		}
		rows, err := t.tx.Query(ctx, `SELECT id, number, size, blob_hash, created_by, base_version_id, created_at
FROM versions WHERE tenant_id = $1 AND node_id = $2 ORDER BY number DESC`, t.tenant, id)
		if err != nil {
			return err
		}
		for rows.Next() {
			v := Version{NodeID: id}
			if err := rows.Scan(&v.ID, &v.Number, &v.Size, &v.BLAKE3, &v.CreatedBy, &v.BaseVersionID, &v.CreatedAt); err != nil {
				return err
			}
			vs = append(vs, v)
		}
		return rows.Err()
	})
	return vs, wrap("versions", err)
}

// Download presigns a GET of a live file's content: the current version, or versionID's.
func (s *Service) Download(ctx context.Context, p identity.Principal, id, versionID string) (storage.Presigned, error) {
	id, err := s.openNode(ctx, p, id, false)
	if err != nil {
		return storage.Presigned{}, err
	}
	var name, hash string
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		n, err := t.liveNode(ctx, id, "")
		if err != nil {
			return err
		}
		if n.Type != TypeFile || n.CurrentVersion == nil {
			return invalid("%s is a folder: only files have content", n.Path)
		}
		name, hash = n.Name, n.CurrentVersion.BLAKE3
		if versionID == "" {
			return nil
		}
		vid, ok := parseUUID(versionID)
		if !ok {
			return apierror.New(apierror.CodeNotFound, "version not found")
		}
		err = t.tx.QueryRow(ctx, "SELECT blob_hash FROM versions WHERE tenant_id = $1 AND node_id = $2 AND id = $3", t.tenant, id, vid).Scan(&hash)
		if isNoRows(err) {
			return apierror.New(apierror.CodeNotFound, "version not found")
		}
		return err
	})
	if err != nil {
		return storage.Presigned{}, wrap("download", err)
	}
	pr, err := s.store.PresignGet(ctx, storage.BlobKey(p.TenantID, hash), storage.GetOptions{Filename: name}, s.cfg.DownloadTTL)
	return pr, wrap("download", err)
}

// Placement names a target folder and name for Move and Copy.
type Placement struct {
	// ParentID is the target folder, "" for the root; nil keeps the current folder.
	ParentID *string `json:"parent_id"`
	// Name, if set, is the new name; nil keeps the current one.
	Name *string `json:"name"`
}

// target resolves a Placement relative to node n.
func (t *txn) target(ctx context.Context, n Node, to Placement) (*string, string, string, error) {
	parent, parentPath := n.ParentID, ""
	if to.ParentID != nil {
		var err error
		if parent, parentPath, err = t.liveFolder(ctx, to.ParentID); err != nil {
			return nil, "", "", err
		}
	} else if parent != nil {
		pf, _, err := t.liveFolder(ctx, parent)
		if err != nil {
			return nil, "", "", err
		}
		pl, err := t.place(ctx, *pf)
		if err != nil {
			return nil, "", "", err
		}
		parentPath = pl.path
	}
	name := n.Name
	if to.Name != nil {
		var err error
		if name, err = normalizeName(*to.Name); err != nil {
			return nil, "", "", err
		}
	}
	return parent, parentPath, name, nil
}

func childPath(parentPath, name string) string { return parentPath + "/" + name }

// Move moves and/or renames a live node. Moving a folder into itself or below is 409
// conflict; a taken name is 409 already_exists.
func (s *Service) Move(ctx context.Context, p identity.Principal, id string, to Placement) (Node, error) {
	id, err := s.openNode(ctx, p, id, true)
	if err != nil {
		return Node{}, err
	}
	if to.ParentID != nil {
		if err := s.authorizeParent(ctx, p, to.ParentID); err != nil {
			return Node{}, err
		}
	}
	var n Node
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		var err error
		if n, err = t.liveNode(ctx, id, "FOR UPDATE"); err != nil {
			return err
		}
		parent, parentPath, name, err := t.target(ctx, n, to)
		if err != nil {
			return err
		}
		if n.Type == TypeFolder && parent != nil {
			var inside bool
			if err := t.tx.QueryRow(ctx, `WITH RECURSIVE up AS (
	SELECT id, parent_id, 1 AS depth FROM nodes WHERE tenant_id = $1 AND id = $2
	UNION ALL
	SELECT n.id, n.parent_id, up.depth + 1 FROM nodes n JOIN up ON n.tenant_id = $1 AND n.id = up.parent_id WHERE up.depth < 1000
)
SELECT EXISTS (SELECT 1 FROM up WHERE id = $3)`, t.tenant, *parent, n.ID).Scan(&inside); err != nil {
				return err
			}
			if inside {
				return conflict("cannot move %s into itself", n.Path)
			}
		}
		if name == n.Name && equalParent(parent, n.ParentID) {
			return nil
		}
		_, err = t.tx.Exec(ctx, "UPDATE nodes SET parent_id = $3, name = $4, updated_at = $5 WHERE tenant_id = $1 AND id = $2",
			t.tenant, n.ID, parent, name, s.now())
		if isUniqueViolation(err, liveNameIndex) {
			return apierror.New(apierror.CodeAlreadyExists, fmt.Sprintf("%s exists already", childPath(parentPath, name)))
		}
		if err != nil {
			return err
		}
		from := n.Path
		n.ParentID, n.Name, n.Path, n.UpdatedAt = parent, name, childPath(parentPath, name), s.now()
		t.record(opMove, n, nil, TopicNodeMoved, map[string]any{"from_path": from})
		return nil
	})
	return n, wrap("move", err)
}

func equalParent(a, b *string) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// Copy copies a live file: a new node whose first version shares the source's blob (one
// more reference, no bytes copied). Copying folders is not supported yet.
func (s *Service) Copy(ctx context.Context, p identity.Principal, id string, to Placement) (CommitResult, error) {
	id, err := s.openNode(ctx, p, id, false)
	if err != nil {
		return CommitResult{}, err
	}
	if dest := to.ParentID; dest != nil || identity.Authorize(p, identity.PermFilesWrite) != nil {
		if dest == nil {
			if dest, err = s.parentOf(ctx, p, id); err != nil {
				return CommitResult{}, err
			}
		}
		if err := s.authorizeParent(ctx, p, dest); err != nil {
			return CommitResult{}, err
		}
	}
	var res CommitResult
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		src, err := t.liveNode(ctx, id, "FOR SHARE")
		if err != nil {
			return err
		}
		if src.Type != TypeFile || src.CurrentVersion == nil {
			return invalid("copying folders is not supported yet")
		}
		parent, parentPath, name, err := t.target(ctx, src, to)
		if err != nil {
			return err
		}
		n, err := t.insertFile(ctx, parent, name)
		if err != nil {
			return err
		}
		if n == nil {
			return apierror.New(apierror.CodeAlreadyExists, fmt.Sprintf("%s exists already", childPath(parentPath, name)))
		}
		n.Path = childPath(parentPath, name)
		tag, err := t.tx.Exec(ctx, "UPDATE blobs SET refcount = refcount + 1, updated_at = $3 WHERE tenant_id = $1 AND hash = $2 AND state = 'committed'",
			t.tenant, src.CurrentVersion.BLAKE3, s.now())
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("blob %s of version %s is not committed", src.CurrentVersion.BLAKE3, src.CurrentVersion.ID)
		}
		v, err := t.writeVersion(ctx, n, src.CurrentVersion.BLAKE3, src.CurrentVersion.Size, nil)
		if err != nil {
			return err
		}
		ch := t.record(opCreate, *n, &v, TopicVersionCreated, map[string]any{
			"deduplicated": true, "copied_from_node_id": src.ID, "copied_from_version_id": src.CurrentVersion.ID,
		})
		if err := t.flush(ctx); err != nil {
			return err
		}
		res = CommitResult{Node: *n, Version: v, Deduplicated: true, Seq: ch.seq}
		return nil
	})
	return res, wrap("copy", err)
}

// Trash puts a live node (and, through it, its subtree) in the trash.
func (s *Service) Trash(ctx context.Context, p identity.Principal, id string) (Node, error) {
	id, err := s.openNode(ctx, p, id, true)
	if err != nil {
		return Node{}, err
	}
	var n Node
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		var err error
		if n, err = t.liveNode(ctx, id, "FOR UPDATE"); err != nil {
			return err
		}
		now := s.now()
		if _, err := t.tx.Exec(ctx, "UPDATE nodes SET deleted_at = $3, deleted_by = $4 WHERE tenant_id = $1 AND id = $2", t.tenant, id, now, t.actor); err != nil {
			return err
		}
		n.TrashedAt, n.InTrash = &now, true
		t.record(opTrash, n, nil, TopicNodeTrashed, nil)
		return nil
	})
	return n, wrap("trash", err)
}

// Restore takes a node out of the trash, into its folder (which must not be in the trash),
// under its name or newName.
func (s *Service) Restore(ctx context.Context, p identity.Principal, id string, newName *string) (Node, error) {
	id, err := s.openNode(ctx, p, id, true)
	if err != nil {
		return Node{}, err
	}
	var n Node
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		var err error
		if n, err = t.getNode(ctx, id, "FOR UPDATE"); err != nil {
			return err
		}
		if n.TrashedAt == nil {
			pl, err := t.place(ctx, id)
			if err != nil {
				return err
			}
			if pl.inTrash {
				return conflict("%s is in the trash through a folder above it: restore that folder", pl.path)
			}
			return conflict("%s is not in the trash", pl.path)
		}
		parentPath := ""
		if n.ParentID != nil {
			pf, err := t.getNode(ctx, *n.ParentID, "FOR SHARE")
			if err != nil {
				return err
			}
			pl, err := t.place(ctx, pf.ID)
			if err != nil {
				return err
			}
			if pl.inTrash {
				return conflict("its folder %s is in the trash: restore that first", pl.path)
			}
			parentPath = pl.path
		}
		name := n.Name
		if newName != nil {
			if name, err = normalizeName(*newName); err != nil {
				return err
			}
		}
		_, err = t.tx.Exec(ctx, "UPDATE nodes SET deleted_at = NULL, deleted_by = NULL, name = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
			t.tenant, id, name, s.now())
		if isUniqueViolation(err, liveNameIndex) {
			return apierror.New(apierror.CodeAlreadyExists, fmt.Sprintf("%s exists already: restore under another name", childPath(parentPath, name)))
		}
		if err != nil {
			return err
		}
		n.Name, n.Path, n.TrashedAt, n.UpdatedAt = name, childPath(parentPath, name), nil, s.now()
		t.record(opRestore, n, nil, TopicNodeRestored, nil)
		return nil
	})
	return n, wrap("restore", err)
}

// Purge deletes a node in the trash for good, with its subtree and versions; blobs no longer
// referenced are deleted from the object store.
func (s *Service) Purge(ctx context.Context, p identity.Principal, id string) error {
	id, err := s.openNode(ctx, p, id, true)
	if err != nil {
		return err
	}
	var orphans []string
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		orphans = nil
		n, err := t.getNode(ctx, id, "FOR UPDATE")
		if err != nil {
			return err
		}
		pl, err := t.place(ctx, id)
		if err != nil {
			return err
		}
		if !pl.inTrash {
			return conflict("%s is not in the trash: trash it first", pl.path)
		}
		n.Path = pl.path
		// The subtree, locked.
		rows, err := t.tx.Query(ctx, `WITH RECURSIVE sub AS (
	SELECT id, 1 AS depth FROM nodes WHERE tenant_id = $1 AND id = $2
	UNION ALL
	SELECT n.id, sub.depth + 1 FROM nodes n JOIN sub ON n.tenant_id = $1 AND n.parent_id = sub.id WHERE sub.depth < 1000
)
SELECT n.id FROM nodes n JOIN sub ON n.tenant_id = $1 AND n.id = sub.id ORDER BY n.id FOR UPDATE OF n`, t.tenant, id)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var nid string
			if err := rows.Scan(&nid); err != nil {
				return err
			}
			ids = append(ids, nid)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// References each blob loses, in hash order (the lock order of blobs).
		rows, err = t.tx.Query(ctx, `SELECT blob_hash, count(*) FROM versions WHERE tenant_id = $1 AND node_id = ANY($2::uuid[])
GROUP BY blob_hash ORDER BY blob_hash`, t.tenant, ids)
		if err != nil {
			return err
		}
		refs := map[string]int64{}
		var hashes []string
		for rows.Next() {
			var h string
			var c int64
			if err := rows.Scan(&h, &c); err != nil {
				return err
			}
			refs[h] = c
			hashes = append(hashes, h)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := t.tx.Exec(ctx, "DELETE FROM nodes WHERE tenant_id = $1 AND id = ANY($2::uuid[])", t.tenant, ids); err != nil {
			return err
		}
		now := s.now()
		for _, h := range hashes {
			var left int64
			err := t.tx.QueryRow(ctx, `UPDATE blobs SET refcount = refcount - $3,
	state = CASE WHEN refcount - $3 = 0 THEN 'deleting' ELSE state END, updated_at = $4
WHERE tenant_id = $1 AND hash = $2 RETURNING refcount`, t.tenant, h, refs[h], now).Scan(&left)
			if err != nil {
				return fmt.Errorf("blob %s: %w", h, err)
			}
			if left == 0 {
				orphans = append(orphans, h)
			}
		}
		t.record(opPurge, n, nil, TopicNodePurged, map[string]any{"purged_nodes": len(ids), "released_blobs": orphans})
		return audit.Record(ctx, t.tx, t.tenant, t.actor, audit.NodePurged, n.ID, map[string]any{"path": n.Path, "type": n.Type, "purged_nodes": len(ids)})
	})
	if err != nil {
		return wrap("purge", err)
	}
	if s.cfg.BlobGrace > 0 {
		return nil // the GC deletes the orphans once the grace period has passed
	}
	for _, h := range orphans {
		if err := s.deleteBlob(ctx, p.TenantID, h); err != nil {
			// Left in state 'deleting': CollectGarbage finishes it.
			s.logger.WarnContext(ctx, "blob not deleted", slog.String("blob", h), slog.String("error", err.Error()))
		}
	}
	return nil
}

// deleteBlob deletes an unreferenced blob's object and row, unless a commit took a new
// reference meanwhile (or, with a grace period, since the cut-off: the row's updated_at is
// after it). The refcount is re-checked under the row lock, which stays held while the
// object is deleted, so a concurrent commit of the same content waits and copies it again.
func (s *Service) deleteBlob(ctx context.Context, tenantID, hash string) error {
	_, err := s.deleteBlobCounted(ctx, tenantID, hash)
	return err
}

// deleteBlobCounted is deleteBlob, reporting whether it deleted the blob.
func (s *Service) deleteBlobCounted(ctx context.Context, tenantID, hash string) (bool, error) {
	cutoff := s.now().Add(-s.cfg.BlobGrace)
	if s.cfg.BlobGrace <= 0 {
		cutoff = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	deleted := false
	err := s.inTenant(ctx, tenantID, func(tx pgx.Tx) error {
		deleted = false
		var one int
		err := tx.QueryRow(ctx, "SELECT 1 FROM blobs WHERE tenant_id = $1 AND hash = $2 AND refcount = 0 AND state <> 'committed' AND updated_at <= $3 FOR UPDATE", tenantID, hash, cutoff).Scan(&one)
		if isNoRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.store.Delete(ctx, storage.BlobKey(tenantID, hash)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "DELETE FROM blobs WHERE tenant_id = $1 AND hash = $2", tenantID, hash)
		deleted = err == nil
		return err
	})
	return deleted, err
}

// GarbageReport says what CollectGarbage removed.
type GarbageReport struct {
	Blobs   int `json:"blobs"`
	Uploads int `json:"uploads"`
	// Pending counts the unreferenced blobs still within their grace period.
	Pending int `json:"pending,omitempty"`
}

// BlobGrace is the configured grace period of unreferenced blobs.
func (s *Service) BlobGrace() time.Duration { return s.cfg.BlobGrace }

// Store is the service's object store (for the consumers reading blobs: the indexer).
func (s *Service) Store() storage.ObjectStore { return s.store }

// Now is the service's clock (UTC).
func (s *Service) Now() time.Time { return s.now() }

// CollectGarbage finishes a tenant's interrupted work: it deletes blobs whose references are
// gone (left by a purge that could not delete them), and expires pending uploads past their
// TTL, deleting their staging objects (and aborting their multipart uploads). It is safe to run at any time, concurrently too.
func (s *Service) CollectGarbage(ctx context.Context, tenantID string) (GarbageReport, error) {
	var rep GarbageReport
	var hashes []string
	type stale struct{ id, key, multipartID string }
	var uploads []stale
	err := s.inTenant(ctx, tenantID, func(tx pgx.Tx) error {
		hashes, uploads = nil, nil
		rep.Pending = 0
		cutoff := s.now().Add(-s.cfg.BlobGrace)
		rows, err := tx.Query(ctx, "SELECT hash, updated_at <= $2 FROM blobs WHERE tenant_id = $1 AND refcount = 0 AND state <> 'committed' ORDER BY hash", tenantID, cutoff)
		if err != nil {
			return err
		}
		for rows.Next() {
			var h string
			var due bool
			if err := rows.Scan(&h, &due); err != nil {
				return err
			}
			if !due && s.cfg.BlobGrace > 0 {
				rep.Pending++
				continue
			}
			hashes = append(hashes, h)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, "SELECT id, staging_key, coalesce(multipart_id, '') FROM uploads WHERE tenant_id = $1 AND status = 'pending' AND expires_at <= $2", tenantID, s.now())
		if err != nil {
			return err
		}
		for rows.Next() {
			var u stale
			if err := rows.Scan(&u.id, &u.key, &u.multipartID); err != nil {
				return err
			}
			uploads = append(uploads, u)
		}
		return rows.Err()
	})
	if err != nil {
		return rep, wrap("collect garbage", err)
	}
	for _, h := range hashes {
		deleted, err := s.deleteBlobCounted(ctx, tenantID, h)
		if err != nil {
			return rep, wrap("collect garbage", err)
		}
		if deleted {
			rep.Blobs++
		}
	}
	for _, u := range uploads {
		// An expired multipart upload's parts are discarded too (S3 keeps them otherwise).
		if err := s.abortMultipart(ctx, u.key, u.multipartID); err != nil {
			return rep, wrap("collect garbage", err)
		}
		if err := s.store.Delete(ctx, u.key); err != nil {
			return rep, wrap("collect garbage", err)
		}
		err := s.inTenant(ctx, tenantID, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "UPDATE uploads SET status = 'expired', finished_at = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'pending'", tenantID, u.id, s.now())
			return err
		})
		if err != nil {
			return rep, wrap("collect garbage", err)
		}
		rep.Uploads++
	}
	return rep, nil
}
