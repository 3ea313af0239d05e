-- 0013_multipart_uploads: resumable uploads of large files through the store's multipart API.
--
-- Forward-only: never edit this file once released; add a new migration instead.
--
-- An upload larger than the multipart threshold (BITVAULT_MULTIPART_THRESHOLD) on a store
-- that supports it (S3) is staged as a multipart upload to its staging key: multipart_id is
-- the store's upload id and part_size the size of every part but the last. The store keeps
-- the parts uploaded so far, so a client resumes an interrupted upload by asking which parts
-- are there (GET /v1/uploads/{id}) and sending only the others. A finished, rejected or
-- expired upload's multipart upload is aborted (its parts are storage the store would keep
-- and bill otherwise), by Commit's rejection and by the GC's sweep of expired uploads.
ALTER TABLE uploads
	ADD COLUMN multipart_id text CHECK (octet_length(multipart_id) BETWEEN 1 AND 1024),
	ADD COLUMN part_size    bigint CHECK (part_size > 0),
	ADD CONSTRAINT uploads_multipart_check CHECK ((multipart_id IS NULL) = (part_size IS NULL));
