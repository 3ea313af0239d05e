package sharing

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bitvault/bitvault/service/internal/audit"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/uuid"
	"github.com/bitvault/bitvault/service/internal/ratelimit"
	"github.com/bitvault/bitvault/service/internal/storage"
)

// Link is a public link (never with its token, which is shown once).
type Link struct {
	ID     string `json:"id"`
	NodeID string `json:"node_id"`
	// Prefix is the token's beginning, to recognise it.
	Prefix       string     `json:"prefix"`
	HasPassword  bool       `json:"has_password"`
	DownloadOnly bool       `json:"download_only"`
	ExpiresAt    *time.Time `json:"expires_at"`
	CreatedBy    string     `json:"created_by"`
	CreatedAt    time.Time  `json:"created_at"`
}

// NewLink is the input of CreateLink.
type NewLink struct {
	// Password, if set (8 to 256 bytes), must be given to use the link.
	Password *string `json:"password"`
	// ExpiresAt, if set, ends the link; at most Config.MaxLinkTTL ahead.
	ExpiresAt *time.Time `json:"expires_at"`
	// DownloadOnly (default true) makes the download an attachment; false lets the browser
	// show the file inline.
	DownloadOnly *bool `json:"download_only"`
}

// Link password length limits (bytes).
const (
	MinLinkPasswordLen = 8
	MaxLinkPasswordLen = 256
)

// HeaderLinkPassword carries a link's password on GET /v1/links/{token}.
const HeaderLinkPassword = "X-Link-Password"

const (
	linkPrefix = "bvl_"
	secretLen  = 32
)

var b64url = base64.RawURLEncoding

// newLinkToken returns "bvl_" + the tenant id in hex + "_" + 32 random bytes (base64url),
// and its SHA-256.
func newLinkToken(tenantID string) (string, []byte) {
	secret := make([]byte, secretLen)
	_, _ = rand.Read(secret)
	token := linkPrefix + strings.ReplaceAll(tenantID, "-", "") + "_" + b64url.EncodeToString(secret)
	sum := sha256.Sum256([]byte(token))
	return token, sum[:]
}

// tokenTenantLen is the length of "bvl_" + 32 hex digits + "_".
const tokenTenantLen = len(linkPrefix) + 32 + 1

// parseLinkToken returns the tenant id and SHA-256 of a token made by newLinkToken.
func parseLinkToken(token string) (tenantID string, hash []byte, ok bool) {
	rest, found := strings.CutPrefix(token, linkPrefix)
	if !found || len(rest) != 32+1+b64url.EncodedLen(secretLen) || rest[32] != '_' {
		return "", nil, false
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(rest[:32])); err != nil {
		return "", nil, false
	}
	if secret, err := b64url.Strict().DecodeString(rest[33:]); err != nil || len(secret) != secretLen {
		return "", nil, false
	}
	sum := sha256.Sum256([]byte(token))
	return uuid.Format(b), sum[:], true
}

// redactToken keeps what routes a token (prefix and tenant) and drops its secret, for logs.
func redactToken(token string) string {
	if len(token) > tokenTenantLen && strings.HasPrefix(token, linkPrefix) {
		return token[:tokenTenantLen] + "…"
	}
	return "…"
}

// displayPrefix is the part of a token kept to recognise it in lists.
func displayPrefix(token string) string {
	return linkPrefix + "…" + token[tokenTenantLen:tokenTenantLen+6]
}

// CreateLink makes a public link to file id; it needs write access. The token is returned
// once.
func (s *Service) CreateLink(ctx context.Context, p identity.Principal, id string, in NewLink) (Link, string, error) {
	if err := s.requireAny(p); err != nil {
		return Link{}, "", err
	}
	now := s.now()
	l := Link{DownloadOnly: true, ExpiresAt: in.ExpiresAt, CreatedBy: p.UserID, CreatedAt: now}
	if in.DownloadOnly != nil {
		l.DownloadOnly = *in.DownloadOnly
	}
	if in.ExpiresAt != nil {
		at := in.ExpiresAt.UTC()
		if !at.After(now) || at.Sub(now) > s.cfg.MaxLinkTTL {
			return Link{}, "", invalid("expires_at must be in the future and at most %s ahead", s.cfg.MaxLinkTTL)
		}
		l.ExpiresAt = &at
	}
	var passwordHash *string
	if in.Password != nil {
		if n := len(*in.Password); n < MinLinkPasswordLen || n > MaxLinkPasswordLen {
			return Link{}, "", invalid("password must have %d to %d bytes", MinLinkPasswordLen, MaxLinkPasswordLen)
		}
		// Check access before spending a hash on it.
		if err := s.Authorize(ctx, p, id, Write); err != nil {
			return Link{}, "", err
		}
		h, err := s.hasher.HashPassword(ctx, *in.Password)
		if err != nil {
			return Link{}, "", wrap("create link: hash password", err)
		}
		passwordHash, l.HasPassword = &h, true
	}
	token, hash := newLinkToken(p.TenantID)
	l.Prefix = displayPrefix(token)
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		n, err := s.liveNode(ctx, tx, p, id, Write)
		if err != nil {
			return err
		}
		if n.typ != "file" {
			return invalid("%s is a folder: public links are to files", n.path)
		}
		l.NodeID = n.id
		err = tx.QueryRow(ctx, `INSERT INTO share_links (tenant_id, node_id, token_hash, prefix, password_hash, download_only, expires_at, created_by, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`, p.TenantID, n.id, hash, l.Prefix, passwordHash, l.DownloadOnly, l.ExpiresAt, p.UserID, now).Scan(&l.ID)
		if err != nil {
			return err
		}
		return event(ctx, tx, p.TenantID, TopicLinkCreated, map[string]any{"link_id": l.ID, "node_id": n.id, "expires_at": l.ExpiresAt, "has_password": l.HasPassword, "actor_id": p.UserID}, now)
	})
	if err != nil {
		return Link{}, "", wrap("create link", err)
	}
	return l, token, nil
}

// ListLinks lists the links of node id that are not revoked (expired ones included); it
// needs write access.
func (s *Service) ListLinks(ctx context.Context, p identity.Principal, id string) ([]Link, error) {
	if err := s.requireAny(p); err != nil {
		return nil, err
	}
	out := []Link{}
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		n, err := s.liveNode(ctx, tx, p, id, Write)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, node_id, prefix, password_hash IS NOT NULL, download_only, expires_at, created_by, created_at
FROM share_links WHERE tenant_id = $1 AND node_id = $2 AND revoked_at IS NULL ORDER BY created_at, id`, p.TenantID, n.id)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Link, error) {
			var l Link
			err := r.Scan(&l.ID, &l.NodeID, &l.Prefix, &l.HasPassword, &l.DownloadOnly, &l.ExpiresAt, &l.CreatedBy, &l.CreatedAt)
			return l, err
		})
		return err
	})
	if out == nil {
		out = []Link{}
	}
	return out, wrap("list links", err)
}

// RevokeLink ends link linkID of node id at once; it needs write access.
func (s *Service) RevokeLink(ctx context.Context, p identity.Principal, id, linkID string) error {
	if err := s.requireAny(p); err != nil {
		return err
	}
	lid, ok := uuid.Parse(linkID)
	if !ok {
		return ErrNotFound
	}
	now := s.now()
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		n, err := s.liveNode(ctx, tx, p, id, Write)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "UPDATE share_links SET revoked_at = $4, revoked_by = $5 WHERE tenant_id = $1 AND id = $2 AND node_id = $3 AND revoked_at IS NULL",
			p.TenantID, lid, n.id, now, p.UserID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return event(ctx, tx, p.TenantID, TopicLinkRevoked, map[string]any{"link_id": lid, "node_id": n.id, "actor_id": p.UserID}, now)
	})
	return wrap("revoke link", err)
}

// Link errors.
var (
	ErrLinkNotFound      = apierror.New(apierror.CodeNotFound, "link not found")
	ErrLinkExpired       = apierror.New(apierror.CodeGone, "link expired")
	ErrLinkRevoked       = apierror.New(apierror.CodeGone, "link revoked")
	ErrPasswordRequired  = apierror.New(apierror.CodeUnauthenticated, "this link needs a password ("+HeaderLinkPassword+" header, or POST {\"password\": …})")
	ErrWrongPassword     = apierror.New(apierror.CodeUnauthenticated, "wrong link password")
	ErrLinksUnavailable  = apierror.New(apierror.CodeUnavailable, "public links are not available: no object store configured")
	errLinkTargetMissing = apierror.New(apierror.CodeNotFound, "the linked file is no longer available")
)

// linkTarget is what ResolveLink reads of a link in its transaction.
type linkTarget struct {
	id           string
	passwordHash *string
	downloadOnly bool
	node         nodeInfo
	// attempt is the password check's, for the brute-force limits, reserved by lookupLink;
	// locks are the counters its reservation locked (audited unless the password is right).
	attempt ratelimit.Attempt
	locks   []ratelimit.Lock
}

// ResolveLink checks a link (token, and password when it has one) and presigns the download
// of its file's current version. clientIP (ratelimit.Config.ClientIP; "" if unknown) is counted
// against the link's brute-force limits when the password is wrong (from before the hash
// until it turns out right); while they are exceeded the password is not even checked: a
// *ratelimit.LockedError (429).
func (s *Service) ResolveLink(ctx context.Context, token, password, clientIP string) (storage.Presigned, error) {
	tenant, hash, ok := parseLinkToken(token)
	if !ok {
		return storage.Presigned{}, ErrLinkNotFound
	}
	if s.presigner == nil {
		return storage.Presigned{}, ErrLinksUnavailable
	}
	l, err := s.lookupLink(ctx, tenant, hash, password, clientIP)
	if err != nil {
		return storage.Presigned{}, wrap("resolve link", err)
	}
	if l.passwordHash != nil {
		if err := s.checkLinkPassword(ctx, tenant, l, password); err != nil {
			return storage.Presigned{}, err
		}
	}
	var opts storage.GetOptions
	if l.downloadOnly {
		opts.Filename = l.node.name
	}
	pr, err := s.presigner.PresignGet(ctx, storage.BlobKey(tenant, *l.node.hash), opts, s.cfg.DownloadTTL)
	return pr, wrap("resolve link: presign", err)
}

// lookupLink reads the live link of token hash and its file in tenant. For a
// password-protected link given a password, it also reserves the attempt on the brute-force
// counters of the link and clientIP (ratelimit.Limiter.Reserve), before any hashing: a
// *ratelimit.LockedError when they are exceeded, which rolls the reservation back.
func (s *Service) lookupLink(ctx context.Context, tenant string, hash []byte, password, clientIP string) (linkTarget, error) {
	var l linkTarget
	now := s.now()
	err := db.WithTenant(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		var nodeID string
		var expires, revoked *time.Time
		// A suspended tenant's links are not found.
		err := tx.QueryRow(ctx, `SELECT l.id, l.node_id, l.password_hash, l.download_only, l.expires_at, l.revoked_at
FROM share_links l JOIN tenants t ON t.id = l.tenant_id AND t.status = 'active'
WHERE l.tenant_id = $1 AND l.token_hash = $2`, tenant, hash).Scan(&l.id, &nodeID, &l.passwordHash, &l.downloadOnly, &expires, &revoked)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrLinkNotFound
		case err != nil:
			return err
		case revoked != nil:
			return ErrLinkRevoked
		case expires != nil && !now.Before(*expires):
			return ErrLinkExpired
		}
		l.node, err = lookupNode(ctx, tx, tenant, "", nodeID)
		if errors.Is(err, ErrNotFound) || err == nil && (l.node.inTrash || l.node.hash == nil) {
			return errLinkTargetMissing
		}
		if err != nil || l.passwordHash == nil || password == "" {
			return err
		}
		l.attempt = ratelimit.Attempt{Kind: ratelimit.Link, Target: l.id, IP: clientIP}
		l.locks, err = s.limiter.Reserve(ctx, tx, tenant, l.attempt, now)
		return err
	})
	return l, err
}

// checkLinkPassword verifies password against the link's (the attempt already reserved by
// lookupLink): a right one takes the attempt back, which clears the link's counters; a wrong
// one stays counted, and the locks its reservation engaged are audited.
func (s *Service) checkLinkPassword(ctx context.Context, tenant string, l linkTarget, password string) error {
	if password == "" {
		return ErrPasswordRequired
	}
	match := false
	if len(password) <= MaxLinkPasswordLen {
		var err error
		if match, err = s.hasher.VerifyPassword(ctx, password, *l.passwordHash); err != nil {
			// Not checked (the request ended): the attempt stays counted, its locks audited.
			return errors.Join(wrap("resolve link: verify password", err), s.linkLocked(context.WithoutCancel(ctx), tenant, l))
		}
	}
	if match {
		return wrap("resolve link: release limits", db.WithTenant(ctx, s.pool, tenant, func(tx pgx.Tx) error {
			return s.limiter.Release(ctx, tx, tenant, l.attempt, s.now())
		}))
	}
	if err := s.linkLocked(ctx, tenant, l); err != nil {
		return err
	}
	return ErrWrongPassword
}

// linkLocked audits the locks that l's attempt engaged (once per lockout), if any.
func (s *Service) linkLocked(ctx context.Context, tenant string, l linkTarget) error {
	if len(l.locks) == 0 {
		return nil
	}
	err := db.WithTenant(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		for _, lk := range l.locks {
			payload := map[string]any{"link_id": l.id, "node_id": l.node.id, "ip": l.attempt.IP, "scope": lk.Scope, "failures": lk.Failures, "locked_until": lk.Until}
			if err := audit.Record(ctx, tx, tenant, "", audit.LinkPasswordLocked, l.id, payload); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("resolve link: record lock", err)
}
