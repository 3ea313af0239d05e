package consumers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/bus"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/storage"
)

// Indexer consumer name and filter.
const (
	IndexerName   = "indexer"
	IndexerFilter = "bitvault.files.version.created.*"
	// DefaultIndexMaxBytes is the largest file the indexer reads.
	DefaultIndexMaxBytes = 1 << 20
	// maxIndexedText bounds the text kept per file (a tsvector must stay under 1 MB).
	maxIndexedText = 256 << 10
)

// textExtensions are the extensions read as text without sniffing.
var textExtensions = map[string]bool{
	".txt": true, ".md": true, ".markdown": true, ".csv": true, ".tsv": true, ".json": true, ".xml": true,
	".yaml": true, ".yml": true, ".toml": true, ".ini": true, ".cfg": true, ".conf": true, ".log": true,
	".html": true, ".htm": true, ".css": true, ".js": true, ".ts": true, ".go": true, ".py": true,
	".java": true, ".c": true, ".h": true, ".cpp": true, ".rs": true, ".rb": true, ".sh": true,
	".sql": true, ".tex": true, ".rst": true, ".srt": true, ".vtt": true,
}

// Indexer keeps node_content, the searchable text of small text-like files, from
// files.version.created events: for a file of at most MaxBytes whose name has a text
// extension, or whose content sniffs as text (valid UTF-8, no NUL, detected as text/*), it
// reads the version's blob and stores its text (the first 256 KiB) with its tsvector at
// weight D; a version that is not text (or too large) removes the node's row. An event for a
// version that is no longer the node's current one changes nothing (a later event indexes
// the newer version); node_content rows go with their node (ON DELETE CASCADE).
//
// Idempotent: the effect and the ledger row (processed_events) are one transaction.
type Indexer struct {
	Pool  *pgxpool.Pool
	Store storage.ObjectStore
	// MaxBytes bounds the size of the files read (0: DefaultIndexMaxBytes).
	MaxBytes int64
}

// Handle is the indexer's bus.Handler.
func (ix Indexer) Handle(ctx context.Context, msg bus.Message) error {
	if msg.Type != files.TopicVersionCreated {
		return nil
	}
	var p struct {
		NodeID    string `json:"node_id"`
		VersionID string `json:"version_id"`
		Name      string `json:"name"`
		Size      *int64 `json:"size"`
		BLAKE3    string `json:"blake3"`
	}
	if err := json.Unmarshal(msg.Payload, &p); err != nil || p.NodeID == "" || p.VersionID == "" || p.Size == nil || p.BLAKE3 == "" {
		return bus.Term(fmt.Errorf("indexer: %s %s: bad payload", msg.Type, msg.ID))
	}
	text, ok, err := ix.extract(ctx, msg.Tenant, p.Name, *p.Size, p.BLAKE3)
	if err != nil {
		return fmt.Errorf("indexer: %w", err)
	}
	err = db.WithTenant(ctx, ix.Pool, msg.Tenant, func(tx pgx.Tx) error {
		first, err := Record(ctx, tx, msg.Tenant, IndexerName, msg.ID)
		if err != nil || !first {
			return err
		}
		var current *string
		err = tx.QueryRow(ctx, "SELECT current_version_id::text FROM nodes WHERE tenant_id = $1 AND id = $2 FOR UPDATE", msg.Tenant, p.NodeID).Scan(&current)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // purged meanwhile
		}
		if err != nil {
			return err
		}
		if current == nil || *current != p.VersionID {
			return nil // superseded: the newer version's event indexes it
		}
		if !ok {
			_, err = tx.Exec(ctx, "DELETE FROM node_content WHERE tenant_id = $1 AND node_id = $2", msg.Tenant, p.NodeID)
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO node_content (tenant_id, node_id, version_id, content, search_vector, indexed_at)
VALUES ($1, $2, $3, $4, setweight(to_tsvector('simple', $4), 'D'), now())
ON CONFLICT (tenant_id, node_id) DO UPDATE SET version_id = EXCLUDED.version_id, content = EXCLUDED.content,
	search_vector = EXCLUDED.search_vector, indexed_at = EXCLUDED.indexed_at`, msg.Tenant, p.NodeID, p.VersionID, text)
		return err
	})
	if err != nil {
		return fmt.Errorf("indexer: %w", err)
	}
	return nil
}

// extract reads the blob's text, or reports that the file is not indexed (too large, not
// text, or its blob gone).
func (ix Indexer) extract(ctx context.Context, tenant, name string, size int64, hash string) (string, bool, error) {
	limit := ix.MaxBytes
	if limit <= 0 {
		limit = DefaultIndexMaxBytes
	}
	if size > limit || size == 0 {
		return "", false, nil
	}
	r, err := ix.Store.Open(ctx, storage.BlobKey(tenant, hash))
	if errors.Is(err, storage.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return "", false, err
	}
	if !IsText(name, b) {
		return "", false, nil
	}
	if len(b) > maxIndexedText {
		b = b[:maxIndexedText]
		for len(b) > 0 && !utf8.Valid(b) { // do not cut a rune
			b = b[:len(b)-1]
		}
	}
	return string(b), true, nil
}

// IsText reports whether content (named name) is indexed as text: valid UTF-8 without NUL
// bytes, and a text extension or content sniffed as text/*.
func IsText(name string, content []byte) bool {
	if bytes.IndexByte(content, 0) >= 0 || !utf8.Valid(content) {
		return false
	}
	if textExtensions[strings.ToLower(path.Ext(name))] {
		return true
	}
	return strings.HasPrefix(http.DetectContentType(content), "text/")
}
