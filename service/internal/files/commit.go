package files

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"lukechampine.com/blake3"

	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/storage"
)

// CommitRequest is the input of Commit.
type CommitRequest struct {
	UploadID string `json:"upload_id"`
	// BaseVersion is the id of the version the client's content is based on; omitted, the
	// commit creates the file.
	BaseVersion *string `json:"base_version,omitempty"`
}

// CommitResult is a written version.
type CommitResult struct {
	Node    Node    `json:"node"`
	Version Version `json:"version"`
	// Deduplicated says the tenant had the content already: no new blob was stored.
	Deduplicated bool `json:"deduplicated"`
	// Seq is the change-journal position of the change.
	Seq int64 `json:"seq"`
}

// VersionConflict is Commit's error when the upload was kept as a conflicted copy (answered
// as 409 version_conflict with the copy).
type VersionConflict struct {
	Message string
	Copy    CommitResult
}

func (e *VersionConflict) Error() string { return apierror.CodeVersionConflict + ": " + e.Message }

// upload is a row of uploads.
type upload struct {
	id, path, stagingKey, blake3, status string
	// createdBy is the uploader's user id.
	createdBy string
	size      int64
	expiresAt time.Time
	// multipartID is the store's multipart upload id ("" for a single PUT), cut as plan.
	multipartID string
	plan        MultipartInfo
}

// Commit verifies an upload's bytes in the object store and writes the version (see the
// package documentation).
func (s *Service) Commit(ctx context.Context, p identity.Principal, req CommitRequest) (CommitResult, error) {
	if err := s.gate(p, true); err != nil {
		return CommitResult{}, err
	}
	uploadID, ok := parseUUID(req.UploadID)
	if !ok {
		return CommitResult{}, apierror.New(apierror.CodeNotFound, "upload not found")
	}
	var base *string
	if req.BaseVersion != nil {
		b, ok := parseUUID(*req.BaseVersion)
		if !ok {
			return CommitResult{}, invalid("base_version: want a version id")
		}
		base = &b
	}
	var u upload
	err := s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		var err error
		u, err = t.upload(ctx, uploadID, "")
		return err
	})
	if err != nil {
		return CommitResult{}, wrap("commit", err)
	}
	// Write access at the upload's path: the role's, or a share's (checked again at commit,
	// so that a share revoked since the upload started no longer counts).
	segs, err := splitPath(u.path)
	if err != nil {
		return CommitResult{}, err
	}
	if err := s.authorizePath(ctx, p, segs); err != nil {
		return CommitResult{}, err
	}

	if err := s.assemble(ctx, p, u); err != nil {
		return CommitResult{}, err
	}
	if err := s.verify(ctx, p, u); err != nil {
		return CommitResult{}, err
	}

	var res CommitResult
	var conflictMsg string
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		var err error
		res, conflictMsg, err = t.commit(ctx, uploadID, base)
		return err
	})
	if err != nil {
		return CommitResult{}, wrap("commit", err)
	}
	// The bytes are in the blob now (or were already): the staging object has served.
	if err := s.store.Delete(ctx, u.stagingKey); err != nil {
		s.logger.WarnContext(ctx, "staging object not deleted", slog.String("key", u.stagingKey), slog.String("error", err.Error()))
	}
	if conflictMsg != "" {
		return CommitResult{}, &VersionConflict{Message: conflictMsg, Copy: res}
	}
	return res, nil
}

// upload reads (and, with lock, locks) a pending upload: not found or expired is 404, a
// finished one 409.
func (t *txn) upload(ctx context.Context, id, lock string) (upload, error) {
	u, err := t.readUpload(ctx, id, lock)
	switch {
	case err != nil:
		return upload{}, err
	case u.status == StatusCancelled:
		return upload{}, conflict("upload was cancelled: start a new one")
	case u.status != "pending":
		return upload{}, conflict("upload %s is %s already", id, u.status)
	case !t.s.now().Before(u.expiresAt):
		return upload{}, apierror.New(apierror.CodeNotFound, "upload expired: start a new one")
	}
	return u, nil
}

// anyUpload reads an upload whatever its status; not found is 404.
func (t *txn) anyUpload(ctx context.Context, id string) (upload, error) {
	return t.readUpload(ctx, id, "")
}

func (t *txn) readUpload(ctx context.Context, id, lock string) (upload, error) {
	u := upload{id: id}
	q := "SELECT path, staging_key, blake3, status, created_by, size, expires_at, multipart_id, part_size FROM uploads WHERE tenant_id = $1 AND id = $2"
	if lock != "" {
		q += " " + lock
	}
	var multipartID *string
	var partSize *int64
	err := t.tx.QueryRow(ctx, q, t.tenant, id).Scan(&u.path, &u.stagingKey, &u.blake3, &u.status, &u.createdBy, &u.size, &u.expiresAt, &multipartID, &partSize)
	if isNoRows(err) {
		return upload{}, apierror.New(apierror.CodeNotFound, "upload not found")
	}
	if err != nil {
		return upload{}, err
	}
	if multipartID != nil && partSize != nil {
		u.multipartID = *multipartID
		u.plan = MultipartInfo{PartSize: *partSize, Parts: int(max(1, ceilDiv(u.size, *partSize)))}
	}
	return u, nil
}

// verify checks the staging object against the declared size and BLAKE3. On a mismatch it
// deletes the object, rejects the upload and returns 422.
func (s *Service) verify(ctx context.Context, p identity.Principal, u upload) error {
	info, err := s.store.Stat(ctx, u.stagingKey)
	if errors.Is(err, storage.ErrNotFound) {
		if err := s.stillPending(ctx, p, u); err != nil {
			return err // cancelled (which deletes the staging object) or committed since
		}
		return apierror.New(apierror.CodeUploadIncomplete, "the upload's bytes are not in the object store: PUT them to the upload URL first")
	}
	if err != nil {
		return wrap("commit: stat staging object", err)
	}
	if info.Size != u.size {
		return s.reject(ctx, p, u, apierror.CodeSizeMismatch, fmt.Sprintf("uploaded %d bytes, declared %d", info.Size, u.size))
	}
	rc, err := s.store.Open(ctx, u.stagingKey)
	if err != nil {
		return wrap("commit: read staging object", err)
	}
	h := blake3.New(32, nil)
	n, err := io.Copy(h, io.LimitReader(rc, u.size+1))
	rc.Close()
	if err != nil {
		return wrap("commit: read staging object", err)
	}
	if n != u.size {
		return s.reject(ctx, p, u, apierror.CodeSizeMismatch, fmt.Sprintf("uploaded %d bytes, declared %d", n, u.size))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != u.blake3 {
		return s.reject(ctx, p, u, apierror.CodeHashMismatch, fmt.Sprintf("uploaded content has BLAKE3 %s, declared %s", got, u.blake3))
	}
	return nil
}

// reject deletes the staging object (and aborts the multipart upload), marks the upload
// rejected and returns the coded error.
func (s *Service) reject(ctx context.Context, p identity.Principal, u upload, code, msg string) error {
	if err := s.abortMultipart(ctx, u.stagingKey, u.multipartID); err != nil {
		return wrap("commit: abort rejected multipart upload", err)
	}
	if err := s.store.Delete(ctx, u.stagingKey); err != nil {
		return wrap("commit: delete rejected staging object", err)
	}
	err := s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		_, err := t.tx.Exec(ctx, "UPDATE uploads SET status = 'rejected', finished_at = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'pending'", t.tenant, u.id, s.now())
		return err
	})
	if err != nil {
		return wrap("commit: reject upload", err)
	}
	s.logger.InfoContext(ctx, "upload rejected", slog.String("upload_id", u.id), slog.String("code", code))
	return apierror.New(code, msg+": the upload is rejected, start a new one")
}

// commit is the commit transaction: it returns the version written and, when the upload
// became a conflicted copy, why.
func (t *txn) commit(ctx context.Context, uploadID string, base *string) (CommitResult, string, error) {
	u, err := t.upload(ctx, uploadID, "FOR UPDATE")
	if err != nil {
		return CommitResult{}, "", err
	}
	segs, err := splitPath(u.path)
	if err != nil {
		return CommitResult{}, "", err
	}
	parent, err := t.ensureFolders(ctx, segs[:len(segs)-1])
	if err != nil {
		return CommitResult{}, "", err
	}
	name := segs[len(segs)-1]
	now := t.s.now()

	// Decide where the content goes: a new file, a new version of the file at the path, or
	// a conflicted copy next to it.
	var (
		node        Node
		op          = opCreate
		conflictMsg string
	)
	existing, err := t.liveChild(ctx, parent, name, "FOR UPDATE")
	if err != nil {
		return CommitResult{}, "", err
	}
	switch {
	case existing == nil:
		created, err := t.insertFile(ctx, parent, name)
		if err != nil {
			return CommitResult{}, "", err
		}
		if created == nil {
			// Created by a concurrent commit since we looked: see it in the next attempt.
			return CommitResult{}, "", errRetry
		}
		node = *created
	case existing.Type == TypeFolder:
		conflictMsg = fmt.Sprintf("%s is a folder", u.path)
	case base == nil:
		conflictMsg = fmt.Sprintf("a file exists at %s already (current version %s): commit with its base_version to update it", u.path, currentID(existing))
	case currentID(existing) != *base:
		conflictMsg = fmt.Sprintf("base version %s is not current (current: %s)", *base, currentID(existing))
	default:
		node, op = *existing, opUpdate
	}
	if conflictMsg != "" {
		copyNode, err := t.insertConflictedCopy(ctx, parent, name, now)
		if err != nil {
			return CommitResult{}, "", err
		}
		node = *copyNode
		conflictMsg += fmt.Sprintf("; the upload was kept as a conflicted copy: %s", joinPath(append(segs[:len(segs)-1:len(segs)-1], node.Name)))
	}
	node.Path = joinPath(append(segs[:len(segs)-1:len(segs)-1], node.Name))

	deduped, err := t.promoteBlob(ctx, u.blake3, u.size, u.stagingKey)
	if err != nil {
		return CommitResult{}, "", err
	}
	v, err := t.writeVersion(ctx, &node, u.blake3, u.size, base)
	if err != nil {
		return CommitResult{}, "", err
	}
	ch := t.record(op, node, &v, TopicVersionCreated, map[string]any{
		"deduplicated": deduped, "conflicted_copy": conflictMsg != "", "upload_id": uploadID,
	})
	status := "committed"
	if conflictMsg != "" {
		status = "conflicted"
	}
	if _, err := t.tx.Exec(ctx, "UPDATE uploads SET status = $3, finished_at = $4, version_id = $5 WHERE tenant_id = $1 AND id = $2",
		t.tenant, uploadID, status, now, v.ID); err != nil {
		return CommitResult{}, "", err
	}
	if err := t.flush(ctx); err != nil {
		return CommitResult{}, "", err
	}
	return CommitResult{Node: node, Version: v, Deduplicated: deduped, Seq: ch.seq}, conflictMsg, nil
}

// insertFile creates an empty file node (its first version follows), or returns nil when the
// name is taken.
func (t *txn) insertFile(ctx context.Context, parent *string, name string) (*Node, error) {
	var id string
	err := t.tx.QueryRow(ctx, `INSERT INTO nodes (tenant_id, parent_id, type, name, created_by, created_at, updated_at) VALUES ($1, $2, 'file', $3, $4, $5, $5)
ON CONFLICT (tenant_id, parent_key, name) WHERE deleted_at IS NULL DO NOTHING
RETURNING id`, t.tenant, parent, name, t.actor, t.s.now()).Scan(&id)
	if isNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	n, err := t.getNode(ctx, id, "")
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// insertConflictedCopy creates the file node of a conflicted copy of name, numbering it when
// a copy of the same second exists.
func (t *txn) insertConflictedCopy(ctx context.Context, parent *string, name string, now time.Time) (*Node, error) {
	for attempt := 1; attempt <= 100; attempt++ {
		n, err := t.insertFile(ctx, parent, conflictedName(name, now, attempt))
		if err != nil || n != nil {
			return n, err
		}
	}
	return nil, conflict("too many conflicted copies of %s", name)
}

// promoteBlob makes the verified staging object the tenant's blob for hash and takes a
// reference to it. If the blob is committed already (deduplication), the staging object is
// left for the caller to delete; otherwise it is copied to the blob key while the blob row is
// locked, which keeps a concurrent deletion of the same blob out.
func (t *txn) promoteBlob(ctx context.Context, hash string, size int64, stagingKey string) (deduped bool, err error) {
	for range 3 {
		if _, err := t.tx.Exec(ctx, `INSERT INTO blobs (tenant_id, hash, size, state) VALUES ($1, $2, $3, 'staging')
ON CONFLICT (tenant_id, hash) DO NOTHING`, t.tenant, hash, size); err != nil {
			return false, err
		}
		var state string
		var blobSize int64
		err := t.tx.QueryRow(ctx, "SELECT state, size FROM blobs WHERE tenant_id = $1 AND hash = $2 FOR UPDATE", t.tenant, hash).Scan(&state, &blobSize)
		if isNoRows(err) {
			continue // deleted by a concurrent finalization between the two statements
		}
		if err != nil {
			return false, err
		}
		if blobSize != size {
			return false, fmt.Errorf("blob %s has size %d, the upload %d", hash, blobSize, size)
		}
		if state != "committed" {
			if err := t.s.store.Copy(ctx, stagingKey, storage.BlobKey(t.tenant, hash)); err != nil {
				return false, err
			}
		}
		_, err = t.tx.Exec(ctx, "UPDATE blobs SET refcount = refcount + 1, state = 'committed', updated_at = $3 WHERE tenant_id = $1 AND hash = $2",
			t.tenant, hash, t.s.now())
		return state == "committed", err
	}
	return false, errRetry
}

// writeVersion adds the next version of node (locked, or created in this transaction) and
// makes it current; node is updated in place.
func (t *txn) writeVersion(ctx context.Context, node *Node, hash string, size int64, base *string) (Version, error) {
	now := t.s.now()
	v := Version{NodeID: node.ID, Size: size, BLAKE3: hash, CreatedBy: t.actor, BaseVersionID: base, CreatedAt: now}
	err := t.tx.QueryRow(ctx, `INSERT INTO versions (tenant_id, node_id, number, blob_hash, size, created_by, base_version_id, created_at)
VALUES ($1, $2, (SELECT coalesce(max(number), 0) + 1 FROM versions WHERE tenant_id = $1 AND node_id = $2), $3, $4, $5, $6, $7)
RETURNING id, number`, t.tenant, node.ID, hash, size, t.actor, base, now).Scan(&v.ID, &v.Number)
	if err != nil {
		return Version{}, err
	}
	if _, err := t.tx.Exec(ctx, "UPDATE nodes SET current_version_id = $3, size = $4, updated_at = $5 WHERE tenant_id = $1 AND id = $2",
		t.tenant, node.ID, v.ID, size, now); err != nil {
		return Version{}, err
	}
	node.CurrentVersion, node.Size, node.UpdatedAt = &v, size, now
	return v, nil
}

func currentID(n *Node) string {
	if n.CurrentVersion == nil {
		return "none"
	}
	return n.CurrentVersion.ID
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
