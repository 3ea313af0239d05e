-- 0014_upload_cancel: cancelled uploads (DELETE /v1/uploads/{id}).
--
-- Forward-only: never edit this file once released; add a new migration instead.
--
-- A client that gives up a pending upload (bitvault put --no-resume, or a local file changed
-- since an interrupted upload) cancels it rather than leaving it to expire: the upload is
-- finished with status 'cancelled' (so it no longer counts toward the quota, and a commit of
-- it is refused), its multipart upload aborted and its staging object deleted. Only the
-- status list changes: 0002 declared it as an inline column CHECK, which PostgreSQL named
-- uploads_status_check; finished_at is still set exactly when the upload is not pending (the
-- table's CHECK ((status = 'pending') = (finished_at IS NULL)) is untouched).
ALTER TABLE uploads
	DROP CONSTRAINT uploads_status_check,
	ADD CONSTRAINT uploads_status_check CHECK (status IN ('pending', 'committed', 'conflicted', 'rejected', 'expired', 'cancelled'));
