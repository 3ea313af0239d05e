// Package audit writes and reads the tenant's append-only audit log (table audit_log): the
// security-relevant actions (logins, tokens, shares and links, roles and users, quotas,
// purges). Rows are written by the services in the same transaction as the action they
// record (Record), so an action and its audit row commit or roll back together. The app role
// may only INSERT and SELECT audit_log (migration 0004): nothing the service does can rewrite
// or erase history.
package audit

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
)

// Event types.
const (
	LoginSucceeded = "auth.login.succeeded"
	LoginFailed    = "auth.login.failed"
	// LoginLocked: failed logins reached a brute-force limit (package ratelimit); written
	// once per lockout, by the failure that engaged it.
	LoginLocked     = "auth.login.locked"
	APITokenCreated = "api_token.created"
	APITokenRevoked = "api_token.revoked"
	ShareCreated    = "share.created"
	ShareUpdated    = "share.updated"
	ShareRevoked    = "share.revoked"
	LinkCreated     = "link.created"
	LinkRevoked     = "link.revoked"
	// LinkPasswordLocked: wrong passwords of a public link reached a brute-force limit; once
	// per lockout.
	LinkPasswordLocked = "link.password.locked"
	UserAdded          = "user.added"
	UserDisabled       = "user.disabled"
	UserEnabled        = "user.enabled"
	RoleChanged        = "user.role_changed"
	QuotaChanged       = "quota.changed"
	FlagChanged        = "flag.changed"
	NodePurged         = "node.purged"
)

// Entry is a row of the audit log.
type Entry struct {
	ID        int64           `json:"id"`
	ActorID   *string         `json:"actor_id"`
	EventType string          `json:"event_type"`
	Target    *string         `json:"target"`
	Payload   json.RawMessage `json:"payload"`
	At        time.Time       `json:"at"`
}

// Record appends an entry to tenant's audit log in tx (whose app.tenant_id must be tenant).
// actor and target may be "" (none); payload may be nil.
func Record(ctx context.Context, tx pgx.Tx, tenant, actor, eventType, target string, payload map[string]any) error {
	if payload == nil {
		payload = map[string]any{}
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "INSERT INTO audit_log (tenant_id, actor_id, event_type, target, payload) VALUES ($1, $2, $3, $4, $5)",
		tenant, nullable(actor), eventType, nullable(target), b)
	return err
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// List returns up to limit entries of tenant's log older than cursor (an id; 0: the newest),
// newest first.
func List(ctx context.Context, tx pgx.Tx, tenant string, cursor int64, limit int) ([]Entry, error) {
	if cursor <= 0 {
		cursor = 1<<63 - 1
	}
	rows, err := tx.Query(ctx, `SELECT id, actor_id::text, event_type, target, payload, at FROM audit_log
WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, tenant, cursor, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := r.Scan(&e.ID, &e.ActorID, &e.EventType, &e.Target, &e.Payload, &e.At)
		return e, err
	})
}
