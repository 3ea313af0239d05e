package files

import (
	"context"
	"log/slog"

	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
)

// StatusCancelled is the status of an upload cancelled by DELETE /v1/uploads/{id}.
const StatusCancelled = "cancelled"

// CancelUpload cancels a pending upload (DELETE /v1/uploads/{id}): the upload is finished as
// cancelled, which frees its place in the quota and makes a later commit fail (409 "upload
// was cancelled"), then its multipart upload is aborted and its staging object deleted.
//
// It needs write access at the upload's path, as every upload operation (authorizeUpload),
// and, since it throws away someone's transfer, to be the uploader or a tenant owner or
// admin (403 otherwise). Another tenant's upload is not found (404, row-level security).
//
// It is idempotent: cancelling a cancelled upload succeeds again (and repeats the clean-up
// of the object store, so that a retry finishes a cancellation whose clean-up failed). A
// pending upload past its expiry (not swept by the GC yet) can be cancelled too. An upload
// that finished otherwise (committed, conflicted, rejected, expired by the GC) cannot: 409.
//
// The row is marked before the store is cleaned up: the mark waits for a commit holding the
// row, and a commit after it is refused, so no commit ever reads a staging object cancel has
// deleted.
func (s *Service) CancelUpload(ctx context.Context, p identity.Principal, id string) error {
	u, err := s.loadUpload(ctx, p, id, "cancel upload")
	if err != nil {
		return err
	}
	if u.createdBy != p.UserID && p.Role != identity.RoleOwner && p.Role != identity.RoleAdmin {
		return apierror.New(apierror.CodePermissionDenied, "only the uploader or a tenant admin may cancel an upload")
	}
	var status string
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		// Locked: a concurrent commit either finished first (the status says so) or sees the
		// upload cancelled.
		err := t.tx.QueryRow(ctx, "SELECT status FROM uploads WHERE tenant_id = $1 AND id = $2 FOR UPDATE", t.tenant, u.id).Scan(&status)
		if isNoRows(err) {
			return apierror.New(apierror.CodeNotFound, "upload not found")
		}
		if err != nil || status != "pending" {
			return err
		}
		_, err = t.tx.Exec(ctx, "UPDATE uploads SET status = $3, finished_at = $4 WHERE tenant_id = $1 AND id = $2", t.tenant, u.id, StatusCancelled, s.now())
		return err
	})
	if err != nil {
		return wrap("cancel upload", err)
	}
	if status != "pending" && status != StatusCancelled {
		return conflict("upload %s is %s already: there is nothing to cancel", u.id, status)
	}
	if err := s.abortMultipart(ctx, u.stagingKey, u.multipartID); err != nil {
		return wrap("cancel upload: abort multipart upload", err)
	}
	if err := s.store.Delete(ctx, u.stagingKey); err != nil {
		return wrap("cancel upload: delete staging object", err)
	}
	if status == "pending" {
		s.logger.InfoContext(ctx, "upload cancelled", slog.String("upload_id", u.id), slog.Bool("multipart", u.multipartID != ""))
	}
	return nil
}
