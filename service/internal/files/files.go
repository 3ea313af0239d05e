// Package files is bitvaultd's File & Metadata module: the namespace of folders and files, their versions, and the verified upload commit protocol over the object store.
//
// # The commit protocol
//
// POST /v1/files declares a file (path, size, BLAKE3) and gets a presigned PUT to a staging
// object (storage.StagingKey), after the quota check. The client uploads the bytes straight
// to the object store; POST /v1/files/commit then verifies them: it stats the staging object
// and streams it through BLAKE3, so no version ever exists without verified bytes. A size or
// hash mismatch rejects the upload (422 size_mismatch / hash_mismatch) and deletes the staging
// object. Verified bytes are promoted to the tenant's content-addressed blob
// (storage.BlobKey): if the tenant already has that blob, its reference count goes up and the
// staging object is simply deleted (deduplication per tenant, never across tenants).
// Large uploads on a store with multipart support (S3) are staged in parts instead of one
// PUT, which makes them resumable (see multipart.go); commit assembles the parts first and
// then verifies the object the same way.
// Then one transaction writes the node (creating missing parent folders), the version, the
// change-journal row and the outbox row (files.version.created). A client that gives up a
// pending upload cancels it (DELETE /v1/uploads/{id}, CancelUpload): it is finished as
// cancelled, its staged bytes and parts are discarded, and it stops counting toward the quota.
//
// # Decisions
//
// Concurrency: every namespace change takes row locks in one order (upload, parent folders
// FOR SHARE from the root down, the node FOR UPDATE, blobs FOR UPDATE in hash order, the
// tenant's journal counter last) and retries on deadlock or serialization failure. Creating
// a name relies on the unique index over live names (INSERT … ON CONFLICT DO NOTHING), so
// two commits to one new path serialize in the index: one creates the file, the other finds
// it. The journal's seq comes from the tenant's journal_counters row, incremented in the
// writing transaction and held until it commits: seq is gap-free and in commit order.
//
// Optimistic concurrency: a commit names the version it started from (base_version, a
// version id). Without one it creates the file, and a file already at the path is a
// create/create conflict. With one, it adds a version if the base is still the current
// version. Any other case (the base is stale, another file or a folder took the path) keeps
// the upload as a conflicted copy next to it, "name (conflicted copy 2006-01-02 150405).ext",
// and answers 409 version_conflict with the copy: a stale base never overwrites and no upload
// is lost. A base given for a path that no longer holds a file recreates it (edit wins over
// delete).
//
// Names are NFC-normalized, 1 to 255 bytes, without '/', and neither "." nor ".."; they are
// case-sensitive. Paths are '/'-separated names (leading and trailing '/' ignored), at most
// MaxDepth deep. Listings are ordered by name in byte order, then id, with an opaque keyset
// cursor, so pages stay stable under concurrent inserts.
//
// Trash: trashing marks the node itself; its descendants are in the trash through it (not
// listed, not downloadable, not addressable by path) and come back with it. Only an
// explicitly trashed node can be restored (into its old folder, which must be live, under its
// old or a new name) or purged. Purging deletes the subtree and its versions and decrements
// the blobs' reference counts; a blob reaching zero is deleted from the object store.
//
// Blob lifecycle: a blobs row in state 'committed' guarantees the object exists. A row whose
// count reaches zero turns 'deleting'; the object is deleted while the row is locked, and
// the row removed in the same transaction. A commit of the same content meanwhile waits for
// the lock and then copies the object again, so promotion and deletion cannot interleave.
// With Config.BlobGrace (BITVAULT_BLOB_GRACE), Purge leaves the blob 'deleting' and the GC
// consumer's sweep (CollectGarbage) deletes it once the grace period has passed, re-checking
// refcount = 0 and the row's age under the lock; a commit of the same content meanwhile
// makes it 'committed' again.
//
// Quota: checked when an upload starts (the digest's synchronous check), under a per-tenant
// advisory lock: bytes are the tenant's committed blobs (deduplicated, every version and the
// trash included) plus the declared sizes of its pending uploads; files are file nodes not
// purged plus pending uploads, and an upload to the path of a live file needs no file quota.
// Limits come from the tenant's quotas row (an explicit 0 allows nothing), else from Config
// (0: unlimited). Usage is computed, not metered: billing (usage meters, plans) replaces
// this later.
//
// Access: reading needs files:read and writing files:write through the tenant role
// (identity), except that, with a NodeAuthorizer (the sharing module, SetNodeAuthorizer), a
// caller whose role lacks the permission gets it on the nodes shared with it: node-level
// operations (content, listing a folder, versions, move, rename, copy, trash, restore, purge)
// ask about the node (moves and copies about the destination folder too), and writes by
// path (upload start, commit, folder creation) about the deepest live node on the path. The
// root is never shared. Commit checks again, so a share revoked after an upload started
// stops it.
//
// Copying a folder is not supported yet (copying a file is: same blob, new node).
package files

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/storage"
)

// Defaults of Config.
const (
	DefaultUploadTTL   = time.Hour
	DefaultDownloadTTL = 5 * time.Minute
	// DefaultMultipartThreshold, DefaultPartSize and DefaultMultipartTTL: see the
	// BITVAULT_MULTIPART_* settings.
	DefaultMultipartThreshold int64 = 64 << 20
	DefaultPartSize           int64 = 16 << 20
	DefaultMultipartTTL             = 24 * time.Hour
	// MultipartOff as Config.MultipartThreshold stages every upload as a single PUT.
	MultipartOff int64 = -1
)

// Config configures a Service. Zero values take the defaults.
type Config struct {
	// UploadTTL is how long an upload (and its presigned PUT) stays valid.
	UploadTTL time.Duration
	// DownloadTTL is the lifetime of presigned downloads.
	DownloadTTL time.Duration
	// MaxFileSize bounds declared sizes (0: storage.MaxObjectSize).
	MaxFileSize int64
	// BytesLimit and FilesLimit are the quotas of tenants without their own (0: unlimited).
	BytesLimit, FilesLimit int64
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// BlobGrace is how long a blob whose refcount reached 0 is kept before the GC deletes it
	// (0: Purge deletes it at once). A commit of the same content within the grace period
	// takes it back (state 'committed'), so it is never deleted.
	BlobGrace time.Duration
	// MultipartThreshold is the size above which uploads are staged in parts when the store
	// supports it (0: DefaultMultipartThreshold; MultipartOff: never).
	MultipartThreshold int64
	// PartSize is the size of the parts (0: DefaultPartSize; at least storage.MinPartSize).
	PartSize int64
	// MultipartTTL is how long a multipart upload stays valid (0: DefaultMultipartTTL).
	MultipartTTL time.Duration
}

// Service implements the files module.
type Service struct {
	pool   *pgxpool.Pool
	store  storage.ObjectStore
	cfg    Config
	logger *slog.Logger
	// nodes, if set, lets shares grant access to nodes (SetNodeAuthorizer).
	nodes NodeAuthorizer
}

// New returns a Service on the app role's pool and the object store.
func New(pool *pgxpool.Pool, store storage.ObjectStore, cfg Config, logger *slog.Logger) (*Service, error) {
	if pool == nil || store == nil {
		return nil, errors.New("files: pool and object store are required")
	}
	if cfg.UploadTTL <= 0 {
		cfg.UploadTTL = DefaultUploadTTL
	}
	if cfg.DownloadTTL <= 0 {
		cfg.DownloadTTL = DefaultDownloadTTL
	}
	if cfg.MaxFileSize <= 0 || cfg.MaxFileSize > storage.MaxObjectSize {
		cfg.MaxFileSize = storage.MaxObjectSize
	}
	if cfg.MultipartThreshold == 0 {
		cfg.MultipartThreshold = DefaultMultipartThreshold
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < storage.MinPartSize || cfg.PartSize > storage.MaxPartSize {
		return nil, fmt.Errorf("files: part size %d out of range %d..%d", cfg.PartSize, storage.MinPartSize, storage.MaxPartSize)
	}
	if cfg.MultipartTTL <= 0 {
		cfg.MultipartTTL = DefaultMultipartTTL
	}
	if cfg.BytesLimit < 0 || cfg.FilesLimit < 0 {
		return nil, errors.New("files: quota limits must not be negative")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{pool: pool, store: store, cfg: cfg, logger: logger}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Node types.
const (
	TypeFile   = "file"
	TypeFolder = "folder"
)

// Node is a file or folder.
type Node struct {
	ID       string  `json:"id"`
	Type     string  `json:"type"`
	Name     string  `json:"name"`
	ParentID *string `json:"parent_id"`
	// Path is set where it was computed (single-node answers).
	Path string `json:"path,omitempty"`
	// Size is the current version's size (files).
	Size int64 `json:"size"`
	// CurrentVersion is set for files.
	CurrentVersion *Version  `json:"current_version,omitempty"`
	CreatedBy      string    `json:"created_by"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// TrashedAt is set for a node put in the trash by itself.
	TrashedAt *time.Time `json:"trashed_at,omitempty"`
	// InTrash says the node is in the trash, by itself or through a folder above it (set
	// where the path was computed).
	InTrash bool `json:"in_trash,omitempty"`
}

// Version is one immutable content of a file.
type Version struct {
	ID            string    `json:"id"`
	NodeID        string    `json:"node_id"`
	Number        int       `json:"number"`
	Size          int64     `json:"size"`
	BLAKE3        string    `json:"blake3"`
	CreatedBy     string    `json:"created_by"`
	BaseVersionID *string   `json:"base_version_id"`
	CreatedAt     time.Time `json:"created_at"`
}

// Errors. Coded errors are answered as they are.
var (
	ErrNotFound = apierror.New(apierror.CodeNotFound, "not found")
)

func invalid(format string, args ...any) error {
	return apierror.New(apierror.CodeInvalidArgument, fmt.Sprintf(format, args...))
}

func conflict(format string, args ...any) error {
	return apierror.New(apierror.CodeConflict, fmt.Sprintf(format, args...))
}

func isCoded(err error) bool {
	_, ok := errors.AsType[*apierror.Coded](err)
	return ok
}

// wrap adds context to internal errors and passes coded ones through.
func wrap(op string, err error) error {
	if err == nil || isCoded(err) {
		return err
	}
	if _, ok := errors.AsType[*VersionConflict](err); ok {
		return err
	}
	return fmt.Errorf("files: %s: %w", op, err)
}

// maxAttempts bounds the retries of a transaction that hit a deadlock or a serialization
// failure.
const maxAttempts = 4

// inTenant runs fn in a transaction scoped to tenantID, retrying it on deadlock (40P01) and
// serialization failure (40001). fn must be safe to run again.
func (s *Service) inTenant(ctx context.Context, tenantID string, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = db.WithTenant(ctx, s.pool, tenantID, fn)
		if !retryable(err) || ctx.Err() != nil {
			return err
		}
		s.logger.DebugContext(ctx, "retrying transaction", slog.Int("attempt", attempt), slog.String("error", err.Error()))
		time.Sleep(time.Duration(attempt*attempt) * 5 * time.Millisecond)
	}
	return err
}

func retryable(err error) bool {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	return ok && (pgErr.Code == "40P01" || pgErr.Code == "40001") || errors.Is(err, errRetry)
}

func isUniqueViolation(err error, constraint string) bool {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	return ok && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}
