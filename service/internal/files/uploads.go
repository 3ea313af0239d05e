package files

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/uuid"
	"github.com/bitvault/bitvault/service/internal/storage"
)

// NewUpload is the input of CreateUpload.
type NewUpload struct {
	// Path is where the file goes; missing folders are created at commit.
	Path string `json:"path"`
	// Size is the exact size in bytes.
	Size int64 `json:"size"`
	// BLAKE3 is the content's BLAKE3-256, 64 hex digits: verified at commit.
	BLAKE3 string `json:"blake3"`
	// SHA256, optional (64 hex digits), is signed into the presigned PUT, so that the object
	// store itself refuses other bytes.
	SHA256 string `json:"sha256,omitempty"`
}

// Upload is a started upload.
type Upload struct {
	ID        string    `json:"upload_id"`
	Path      string    `json:"path"`
	Size      int64     `json:"size"`
	BLAKE3    string    `json:"blake3"`
	ExpiresAt time.Time `json:"expires_at"`
	// Put is the request that uploads the bytes, straight to the object store (a single
	// PUT upload).
	Put storage.Presigned `json:"upload,omitzero"`
	// Multipart, instead of Put, says the upload is staged in parts (see PresignParts).
	Multipart *MultipartInfo `json:"multipart,omitempty"`
}

// CreateUpload checks the quota, records the upload and presigns the PUT of its bytes to a
// staging object.
func (s *Service) CreateUpload(ctx context.Context, p identity.Principal, in NewUpload) (Upload, error) {
	if err := s.gate(p, true); err != nil {
		return Upload{}, err
	}
	segs, err := splitPath(in.Path)
	if err != nil {
		return Upload{}, err
	}
	if err := s.authorizePath(ctx, p, segs); err != nil {
		return Upload{}, err
	}
	switch {
	case in.Size < 0:
		return Upload{}, invalid("size must not be negative")
	case in.Size > s.cfg.MaxFileSize:
		return Upload{}, apierror.New(apierror.CodeFileTooLarge, fmt.Sprintf("size %d is larger than the largest file accepted, %d bytes", in.Size, s.cfg.MaxFileSize))
	}
	hash, err := parseHash("blake3", in.BLAKE3)
	if err != nil {
		return Upload{}, err
	}
	var sha []byte
	var shaHex *string
	if in.SHA256 != "" {
		h, err := parseHash("sha256", in.SHA256)
		if err != nil {
			return Upload{}, err
		}
		sha, _ = hex.DecodeString(h)
		shaHex = &h
	}

	u := Upload{ID: uuid.New(), Path: joinPath(segs), Size: in.Size, BLAKE3: hash}
	key := storage.StagingKey(p.TenantID, u.ID)
	multipartID, err := s.stage(ctx, &u, key, sha)
	if err != nil {
		return Upload{}, wrap("create upload", err)
	}
	var partSize *int64
	if u.Multipart != nil {
		partSize = &u.Multipart.PartSize
	}
	err = s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		if err := t.checkQuota(ctx, segs, in.Size); err != nil {
			return err
		}
		_, err := t.tx.Exec(ctx, `INSERT INTO uploads (tenant_id, id, path, staging_key, size, blake3, sha256, created_by, created_at, expires_at, multipart_id, part_size)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, t.tenant, u.ID, u.Path, key, u.Size, u.BLAKE3, shaHex, t.actor, s.now(), u.ExpiresAt, multipartID, partSize)
		if err != nil {
			return err
		}
		// The month's upload counter (usage_meters, read by the admin module): an atomic
		// increment, correct under concurrent uploads.
		_, err = t.tx.Exec(ctx, `INSERT INTO usage_meters (tenant_id, month, uploads, updated_at) VALUES ($1, date_trunc('month', $2::timestamptz AT TIME ZONE 'UTC')::date, 1, $2)
ON CONFLICT (tenant_id, month) DO UPDATE SET uploads = usage_meters.uploads + 1, updated_at = EXCLUDED.updated_at`, t.tenant, s.now())
		return err
	})
	if err != nil {
		if multipartID != nil {
			// Refused (quota) or failed: the multipart upload would only hold storage.
			if aerr := s.abortMultipart(context.WithoutCancel(ctx), key, *multipartID); aerr != nil {
				s.logger.WarnContext(ctx, "multipart upload not aborted", slog.String("key", key), slog.String("error", aerr.Error()))
			}
		}
		return Upload{}, wrap("create upload", err)
	}
	return u, nil
}

// stage prepares the staging key for u's bytes: a multipart upload for a large upload when
// the store supports it (its id is returned), else a presigned single PUT.
func (s *Service) stage(ctx context.Context, u *Upload, key string, sha []byte) (*string, error) {
	if mp, ok := s.multipartStore(u.Size); ok {
		id, err := mp.CreateMultipart(ctx, key)
		if err != nil {
			return nil, err
		}
		plan := planParts(u.Size, s.cfg.PartSize)
		u.Multipart = &plan
		u.ExpiresAt = s.now().Add(s.cfg.MultipartTTL).Truncate(time.Second)
		return &id, nil
	}
	var err error
	u.Put, err = s.store.PresignPut(ctx, key, storage.PutConstraints{Size: u.Size, SHA256: sha}, s.cfg.UploadTTL)
	if err != nil {
		return nil, err
	}
	u.ExpiresAt = u.Put.ExpiresAt
	return nil, nil
}

// checkQuota refuses an upload of size bytes to segs that would exceed the tenant's limits
// (see the package documentation). It holds a per-tenant advisory lock until the
// transaction ends, so concurrent uploads are counted one after the other.
func (t *txn) checkQuota(ctx context.Context, segs []string, size int64) error {
	bytesLimit, filesLimit := t.s.cfg.BytesLimit, t.s.cfg.FilesLimit
	var ownBytes, ownFiles *int64
	err := t.tx.QueryRow(ctx, "SELECT bytes_limit, files_limit FROM quotas WHERE tenant_id = $1", t.tenant).Scan(&ownBytes, &ownFiles)
	if err != nil && !isNoRows(err) {
		return err
	}
	if ownBytes != nil {
		bytesLimit = *ownBytes
	}
	if ownFiles != nil {
		filesLimit = *ownFiles
	}
	if bytesLimit == 0 && filesLimit == 0 && ownBytes == nil && ownFiles == nil {
		return nil
	}
	if _, err := t.tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('bitvault.quota:' || $1::text, 0))", t.tenant); err != nil {
		return err
	}
	var bytesUsed, filesUsed int64
	err = t.tx.QueryRow(ctx, `SELECT
	coalesce((SELECT sum(size) FROM blobs WHERE tenant_id = $1 AND state = 'committed'), 0)
	  + coalesce((SELECT sum(size) FROM uploads WHERE tenant_id = $1 AND status = 'pending' AND expires_at > $2), 0),
	(SELECT count(*) FROM nodes WHERE tenant_id = $1 AND type = 'file')
	  + (SELECT count(*) FROM uploads WHERE tenant_id = $1 AND status = 'pending' AND expires_at > $2)`, t.tenant, t.s.now()).Scan(&bytesUsed, &filesUsed)
	if err != nil {
		return err
	}
	limited := func(limit int64, own *int64) bool { return own != nil || limit > 0 }
	if limited(bytesLimit, ownBytes) && bytesUsed+size > bytesLimit {
		return apierror.New(apierror.CodeQuotaExceeded, fmt.Sprintf("storage quota exceeded: %d of %d bytes used, the upload needs %d", bytesUsed, bytesLimit, size))
	}
	if limited(filesLimit, ownFiles) {
		// Replacing a live file needs no file quota.
		existing, err := t.lookup(ctx, segs)
		if err != nil {
			return err
		}
		if (existing == nil || existing.Type != TypeFile) && filesUsed+1 > filesLimit {
			return apierror.New(apierror.CodeQuotaExceeded, fmt.Sprintf("file quota exceeded: %d of %d files", filesUsed, filesLimit))
		}
	}
	return nil
}

// lookup resolves a path through live nodes, without locks; nil if nothing is there.
func (t *txn) lookup(ctx context.Context, segs []string) (*Node, error) {
	var parent *string
	var n *Node
	for _, name := range segs {
		var err error
		if n, err = t.liveChild(ctx, parent, name, ""); err != nil || n == nil {
			return nil, err
		}
		parent = &n.ID
	}
	return n, nil
}
