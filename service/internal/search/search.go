// Package search is bitvaultd's Search module, on PostgreSQL full-text search: node names and metadata, ranked, tenant-scoped and permission-filtered.
//
// # Index
//
// nodes.search_vector (migration 0003, kept up to date by triggers on nodes and
// node_metadata, under a GIN index) is a node's document in the 'simple' configuration: its
// name with punctuation read as spaces at weight A ("q3-report_final.pdf" is q3, report,
// final, pdf) and its metadata keys and values at weight C. 'simple' neither stems nor drops
// stop words: names are not prose. The index is synchronous with the namespace (the same
// transaction writes both), so there is no indexing lag; the OpenSearch backend of the full
// tier would be fed from the outbox instead.
//
// node_content (migration 0006) holds the text of small text-like files, extracted by the
// indexer consumer from files.version.created events (so it lags the namespace by the
// outbox relay and the bus), as a document at weight D: a node matches when its name and
// metadata document together with its content document has every word, and a match in the
// content ranks below one in the name.
//
// # Query
//
// GET /v1/search?q= splits q into words (letters, digits and marks) and matches nodes whose
// document has, for every word, a lexeme starting with it (prefix matching: "rep" finds
// "report"). Results are ranked by ts_rank (normalized by document length, so shorter names
// rank higher), plus 1 when the name is the query itself (case-insensitively) and 0.5 when
// the name without its extension is: an exact name beats a partial match. Ties go by node
// id. Pages are keyset-paginated on (rank, id) with an opaque cursor.
//
// The matching nodes come from the GIN indexes (led by tenant_id, migration 0015, so a
// search reads only its tenant's index entries) through search_candidates (migration 0011),
// because the text-search match operator is not leakproof and row-level security would
// otherwise keep the planner off the indexes (a scan of all the tenant's nodes per search).
// Each lookup returns at most CandidateLimit nodes (default 10,000): a query matching more
// than that in a tenant (a very common word or a one-letter prefix) is ranked among that many
// of its matches, in no particular order, so its best results may be missed; one more word
// narrows it. Queries matching fewer nodes (nearly all real ones) are exact.
//
// # What a caller sees
//
// Only its tenant's nodes (row-level security, and every query filters on the tenant), only
// live ones (not in the trash, by themselves or through a folder above them), and only those
// it may read (ReadScoper, the sharing module): everything when its role reads the whole
// tenant (files:read), else the subtrees shared with it. A credential that may read nothing
// gets the role check's error (403).
package search

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/uuid"
)

// Page sizes.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// Query limits.
const (
	MaxQueryLen   = 256 // bytes
	MaxQueryWords = 16
	// DefaultCandidateLimit is how many matching nodes each index lookup of a search returns
	// at most for ranking: a word found in most of a large tenant's names (a prefix such as
	// "f") is ranked among that many of its matches, not all of them, so that one search
	// costs tens of milliseconds whatever the tenant's size.
	DefaultCandidateLimit = 10000
)

// ReadScoper says which nodes a principal may read (sharing.Service).
type ReadScoper interface {
	// ReadScope: all of the tenant's nodes, or else the subtrees under roots; an error when
	// nothing.
	ReadScope(ctx context.Context, p identity.Principal) (all bool, roots []string, err error)
}

// Service implements the search module.
type Service struct {
	pool   *pgxpool.Pool
	access ReadScoper
	logger *slog.Logger
	// CandidateLimit bounds each index lookup of a search (0: DefaultCandidateLimit).
	CandidateLimit int
}

// New returns a Service on the app role's pool.
func New(pool *pgxpool.Pool, access ReadScoper, logger *slog.Logger) (*Service, error) {
	if pool == nil || access == nil {
		return nil, errors.New("search: pool and read scope are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{pool: pool, access: access, logger: logger}, nil
}

func invalid(format string, args ...any) error {
	return apierror.New(apierror.CodeInvalidArgument, fmt.Sprintf(format, args...))
}

// Hit is a node found.
type Hit struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Name      string    `json:"name"`
	ParentID  *string   `json:"parent_id"`
	Path      string    `json:"path"`
	Size      int64     `json:"size"`
	UpdatedAt time.Time `json:"updated_at"`
	// Rank orders the results, higher first.
	Rank float64 `json:"rank"`
}

// Page is one page of results; NextCursor is "" on the last.
type Page struct {
	Results    []Hit  `json:"results"`
	NextCursor string `json:"next_cursor"`
}

// cursor is the keyset position after a page's last hit.
type cursor struct {
	Rank float64 `json:"r"`
	ID   string  `json:"i"`
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
		return nil, invalid("cursor: not a cursor of this search")
	}
	id, ok := uuid.Parse(c.ID)
	if !ok {
		return nil, invalid("cursor: not a cursor of this search")
	}
	c.ID = id
	return &c, nil
}

// tsQuery turns q into a tsquery of the 'simple' configuration: every word as a prefix,
// all required.
func tsQuery(q string) (string, error) {
	switch {
	case len(q) > MaxQueryLen:
		return "", invalid("q: at most %d bytes", MaxQueryLen)
	case !utf8.ValidString(q):
		return "", invalid("q: not UTF-8")
	}
	words := strings.FieldsFunc(q, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r)
	})
	if len(words) == 0 {
		return "", invalid("q: want at least one letter or digit")
	}
	if len(words) > MaxQueryWords {
		return "", invalid("q: at most %d words", MaxQueryWords)
	}
	// Words hold only letters, digits and marks: nothing tsquery would read as syntax.
	parts := make([]string, len(words))
	for i, w := range words {
		parts[i] = "'" + w + "':*"
	}
	return strings.Join(parts, " & "), nil
}

// anyWord turns tsQuery's every-word form into its some-word form ("a & b" → "a | b").
func anyWord(all string) string { return strings.ReplaceAll(all, " & ", " | ") }

// searchQuery finds the live nodes of tenant $1 matching tsquery $2, ranked (with $3 the
// query text for the exact-name boost), that are readable: $5 (everything) or under one of
// the roots $4; after the keyset position ($6 rank, $7 id) if any; $8 rows. The nodes come
// from search_candidates (migration 0011: the GIN lookups, with $9 the query's any-word form
// and $10 the candidate limit), then are checked against the whole query here.
const searchQuery = `SELECT r.id, r.type, r.name, r.parent_id, r.size, r.updated_at, r.path, r.rank FROM (
	SELECT n.id, n.type, n.name, n.parent_id, n.size, n.updated_at, pl.path,
		ts_rank(n.search_vector || coalesce(c.search_vector, ''::tsvector), to_tsquery('simple', $2), 1)::float8
		+ CASE WHEN lower(n.name) = lower($3) THEN 1.0
			WHEN lower(regexp_replace(n.name, '\.[^.]*$', '')) = lower($3) THEN 0.5
			ELSE 0 END AS rank
	FROM search_candidates(to_tsquery('simple', $2), to_tsquery('simple', $9), $10) sc
	JOIN nodes n ON n.tenant_id = $1 AND n.id = sc.node_id
	LEFT JOIN node_content c ON c.tenant_id = n.tenant_id AND c.node_id = n.id
	CROSS JOIN LATERAL (
		WITH RECURSIVE up AS (
			SELECT n.id, n.parent_id, n.name, n.deleted_at, 1 AS depth
			UNION ALL
			SELECT a.id, a.parent_id, a.name, a.deleted_at, up.depth + 1
			FROM nodes a JOIN up ON a.tenant_id = $1 AND a.id = up.parent_id
			WHERE up.depth < 1000
		)
		SELECT '/' || string_agg(up.name, '/' ORDER BY up.depth DESC) AS path,
			bool_or(up.deleted_at IS NOT NULL) AS in_trash,
			coalesce(bool_or(up.id = ANY($4::uuid[])), false) AS shared
		FROM up
	) pl
	WHERE n.tenant_id = $1 AND n.deleted_at IS NULL
		AND (n.search_vector || coalesce(c.search_vector, ''::tsvector)) @@ to_tsquery('simple', $2)
		AND NOT pl.in_trash AND ($5 OR pl.shared)
) r
WHERE $6::float8 IS NULL OR r.rank < $6 OR r.rank = $6 AND r.id > $7::uuid
ORDER BY r.rank DESC, r.id
LIMIT $8`

// Search returns the nodes matching q that p may read, best first, a page at a time.
func (s *Service) Search(ctx context.Context, p identity.Principal, q, after string, limit int) (Page, error) {
	if p.UserID == "" || p.TenantID == "" {
		return Page{}, identity.ErrUnauthenticated
	}
	switch {
	case limit == 0:
		limit = DefaultPageSize
	case limit < 0 || limit > MaxPageSize:
		return Page{}, invalid("limit must be between 1 and %d", MaxPageSize)
	}
	q = strings.TrimSpace(q)
	tsq, err := tsQuery(q)
	if err != nil {
		return Page{}, err
	}
	c, err := decodeCursor(after)
	if err != nil {
		return Page{}, err
	}
	all, roots, err := s.access.ReadScope(ctx, p)
	if err != nil {
		return Page{}, err
	}
	page := Page{Results: []Hit{}}
	if !all && len(roots) == 0 {
		return page, nil
	}
	if roots == nil {
		roots = []string{}
	}
	var rank *float64
	var id *string
	if c != nil {
		rank, id = &c.Rank, &c.ID
	}
	err = db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, searchQuery, p.TenantID, tsq, q, roots, all, rank, id, limit+1, anyWord(tsq), cmp.Or(s.CandidateLimit, DefaultCandidateLimit))
		if err != nil {
			return err
		}
		page.Results, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Hit, error) {
			var h Hit
			err := r.Scan(&h.ID, &h.Type, &h.Name, &h.ParentID, &h.Size, &h.UpdatedAt, &h.Path, &h.Rank)
			return h, err
		})
		return err
	})
	if err != nil {
		return Page{}, fmt.Errorf("search: %w", err)
	}
	if len(page.Results) > limit {
		page.Results = page.Results[:limit]
		last := page.Results[limit-1]
		page.NextCursor = encodeCursor(cursor{Rank: last.Rank, ID: last.ID})
	}
	return page, nil
}
