// Package ratelimit is bitvaultd's brute-force protection for password checks: logins
// (identity) and the passwords of public share links (sharing). Failed attempts are counted
// in PostgreSQL (table rate_limits, migration 0008), so every bitvaultd replica sees the same
// counters and a lockout holds whichever replica the next guess reaches.
//
// # Counters
//
// A password check is an Attempt against a target (a login account: tenant and email; or a
// share link) from a client IP. Each failure counts on three counters of the tenant, each
// with its own limit (Config):
//
//   - target+IP (PerAccountIP, default 5): one client guessing one account's or link's
//     password. This is the limit a real attack meets first, and it locks out only that
//     client for that target.
//   - target (PerAccount, default 50): the same target from any address, the ceiling for an
//     attack spread over many addresses.
//   - IP (PerIP, default 50): one client trying many targets of the tenant (password
//     spraying).
//
// An attempt is counted as a failure before its password is hashed (Reserve), in the
// transaction that reads the target, and taken back if the password is right (Release):
// counting after the hash would let any number of concurrent attempts pass the check before
// the first of them is counted. Counting is a fixed window (Window, default 15 min) that
// starts at a counter's first attempt; the attempt that reaches a limit locks the counter
// for a whole Window from that moment. While any counter of an attempt is locked, the
// attempt is rejected before the password hash is computed (a cheap rejection: one indexed
// read) with 429 rate_limited and Retry-After; so is an attempt that concurrent attempts,
// still being checked, have left no room for. Rejected attempts are not counted, so a
// lockout always ends one Window after it began. A successful check deletes the target and
// target+IP counters (not the IP one, which only loses the success's own count: succeeding
// on one account of its own must not reset a sprayer's budget). The owner of the check
// writes one audit row when a lock engages (unless the attempt that engaged it turns out
// right, which clears it), which is once per lockout however many requests are then
// rejected.
//
// # Trade-offs
//
// A lockout is a denial of service an attacker can aim at someone else, so the design keeps
// it narrow and finite. The low limit is per target and IP: failures from the attacker's
// address lock only that address out of the account, and the user, from anywhere else, is
// unaffected. Only the target ceiling, ten times higher, locks everyone out of the account
// (or link); an attacker who wants to keep a user locked out must sustain PerAccount
// failures every Window (about 4,800 requests a day at the defaults), every lock engagement
// is audited, and the lock ends by itself one Window after the attacks stop. Without that
// ceiling an attacker with many addresses would get unlimited guesses; with it, guesses at
// one account are bounded by PerAccount per Window whatever the number of addresses.
//
// Client addresses are the connection's peer (Config.ClientIP). X-Forwarded-For is believed
// only when the peer is one of BITVAULT_TRUSTED_PROXIES (the ingress in front of bitvaultd),
// read from the right up to the first address that is not a trusted proxy: trusting it from
// anyone would let any client pick a fresh address per request. Behind a reverse proxy that
// is not listed, every client has the proxy's address and the IP and target+IP counters
// count everyone together, so PerAccountIP failures would lock an account out for everyone:
// list the proxy. IPv6 clients
// are counted per /64, the block one subscriber usually holds, since a single address of it
// costs nothing to change.
//
// Login counts failures by the email as typed (lower-cased), whether or not the user exists,
// so a locked unknown email and a locked real one answer alike. Attempts at a tenant slug
// that does not exist are not counted: their rows would have no tenant to belong to under
// row-level security, and they guess no existing account's password. They keep doing the
// full hash (bounded by identity's hashing concurrency), and they are never answered 429,
// so someone making PerAccountIP attempts can tell an existing slug from a missing one;
// slugs are what users type at login, not secrets.
//
// # Storage
//
// Counters are tenant rows under row-level security like every other: the caller passes its
// transaction, whose app.tenant_id is the tenant (login sets it once the slug has resolved
// the tenant). Counter keys are SHA-256 of the scope and the subject (email, link id,
// address), which fixes their size whatever a client sends; that is not secrecy (an IPv4
// address is easily recovered from its hash), and the audit rows name the email and address
// anyway. Every attempt writes: its counts before the hash, and a successful one takes them
// back with one more statement. Stale rows (past expires_at) are deleted by Reserve,
// at most sweepBatch per call, through the (tenant_id, expires_at) index: a tenant's table
// holds its counters of the last Window plus what its last writes had no time to sweep.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bitvault/bitvault/service/internal/platform/apierror"
)

// Kind is what a password protects: it prefixes the counters' scopes and words the 429's
// message.
type Kind string

// Kinds.
const (
	Login Kind = "login"
	Link  Kind = "link"
)

// Counter scopes, after the kind: login.target_ip, link.target, login.ip, ...
const (
	scopeTargetIP = "target_ip"
	scopeTarget   = "target"
	scopeIP       = "ip"
)

// Attempt is one password check.
type Attempt struct {
	Kind Kind
	// Target is the account (the lower-cased email) or the link id.
	Target string
	// IP is the client's address (ClientIP); "" when unknown (a call that does not come from
	// HTTP), which counts the target alone.
	IP string
}

// Limiter applies a Config to the counters of the caller's transactions. It keeps no state
// of its own, so any number of Limiters (replicas) share the counters through the database.
type Limiter struct {
	cfg Config
}

// New returns a Limiter; zero fields of cfg take the defaults.
func New(cfg Config) (*Limiter, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	return &Limiter{cfg: cfg}, nil
}

// Config returns the Limiter's configuration, defaults filled in.
func (l *Limiter) Config() Config { return l.cfg }

// counter is one of an attempt's counters.
type counter struct {
	scope string
	key   []byte
	limit int
}

// counters returns the attempt's counters: IP, target and target+IP, without the two IP
// ones when the address is unknown. They are in the order of their scopes (ip < target <
// target_ip), the order in which every writer locks them.
func (l *Limiter) counters(a Attempt) []counter {
	target := l.counter(a.Kind, scopeTarget, a.Target, l.cfg.PerAccount)
	if a.IP == "" {
		return []counter{target}
	}
	ip := normalizeIP(a.IP)
	return []counter{
		l.counter(a.Kind, scopeIP, ip, l.cfg.PerIP),
		target,
		l.counter(a.Kind, scopeTargetIP, a.Target+"\x00"+ip, l.cfg.PerAccountIP),
	}
}

func (l *Limiter) counter(kind Kind, scope, subject string, limit int) counter {
	full := string(kind) + "." + scope
	// The scope is part of the hash, so a key never matches another scope's subject.
	sum := sha256.Sum256([]byte(full + "\x00" + subject))
	return counter{scope: full, key: sum[:], limit: limit}
}

// LockedError is the rejection of an attempt while one of its counters is locked. It wraps
// a rate_limited *apierror.Coded (handlers answer it as they are) and tells when to retry
// (apierror.WriteError sets Retry-After from RetryAfter).
type LockedError struct {
	// Wait is how long until every locked counter of the attempt has expired.
	Wait time.Duration
	// Scope is the scope of the counter locked longest (login.target_ip, link.target, ...).
	Scope string
	coded *apierror.Coded
}

func newLockedError(kind Kind, scope string, wait time.Duration) *LockedError {
	what := "too many failed login attempts"
	if kind == Link {
		what = "too many wrong passwords for this link"
	}
	msg := fmt.Sprintf("%s: try again in %d s", what, seconds(wait))
	return &LockedError{Wait: wait, Scope: scope, coded: &apierror.Coded{Code: apierror.CodeRateLimited, Message: msg}}
}

func (e *LockedError) Error() string { return e.coded.Error() }

// Unwrap returns the coded error the API answers.
func (e *LockedError) Unwrap() error { return e.coded }

// RetryAfter is Wait, for apierror.Retryer.
func (e *LockedError) RetryAfter() time.Duration { return e.Wait }

// IsLocked reports whether err is (or wraps) a *LockedError.
func IsLocked(err error) bool {
	_, ok := errors.AsType[*LockedError](err)
	return ok
}

// seconds rounds d up to whole seconds, at least 1: a client that waits that long finds the
// lock gone.
func seconds(d time.Duration) int64 {
	return max(1, int64(math.Ceil(d.Seconds())))
}

// Check reads the attempt's counters in tx (whose tenant is set) at now: a *LockedError if
// one is locked, else nil. It writes nothing: Reserve starts with it, so that attempts at a
// locked counter are turned away with one read.
func (l *Limiter) Check(ctx context.Context, tx pgx.Tx, tenant string, a Attempt, now time.Time) error {
	cs := l.counters(a)
	scopes, keys := make([]string, len(cs)), make([][]byte, len(cs))
	limits := map[string]int{}
	for i, c := range cs {
		scopes[i], keys[i], limits[c.scope] = c.scope, c.key, c.limit
	}
	// The keys hash their scope, so matching scope and key separately finds only the pairs.
	rows, err := tx.Query(ctx, `SELECT scope, failures, expires_at FROM rate_limits
WHERE tenant_id = $1 AND scope = ANY ($2) AND key = ANY ($3) AND expires_at > $4`, tenant, scopes, keys, now)
	if err != nil {
		return fmt.Errorf("rate limits: check: %w", err)
	}
	defer rows.Close()
	var (
		lockedScope string
		until       time.Time
	)
	for rows.Next() {
		var scope string
		var failures int
		var expires time.Time
		if err := rows.Scan(&scope, &failures, &expires); err != nil {
			return fmt.Errorf("rate limits: check: %w", err)
		}
		if failures >= limits[scope] && expires.After(until) {
			lockedScope, until = scope, expires
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rate limits: check: %w", err)
	}
	if lockedScope != "" {
		return newLockedError(a.Kind, lockedScope, until.Sub(now))
	}
	return nil
}

// Lock is a counter that an attempt has just locked.
type Lock struct {
	// Scope is the counter's: login.target_ip, login.target, login.ip, link.….
	Scope    string
	Failures int
	// Until is when the lock ends: one Window after the attempt that engaged it.
	Until time.Time
}

// upsertSQL counts an attempt at $4 on one counter: a counter whose window has passed starts
// again at 1; the attempt that reaches the limit ($6) locks the counter for a whole window
// from now ($5 = now + Window). Concurrent attempts of one counter serialize on its row, so
// each sees the count its own attempt made, and exactly one of them sees failures = limit.
const upsertSQL = `INSERT INTO rate_limits AS r (tenant_id, scope, key, failures, window_start, expires_at)
VALUES ($1, $2, $3, 1, $4, $5)
ON CONFLICT (tenant_id, scope, key) DO UPDATE SET
	failures     = CASE WHEN r.expires_at <= $4 THEN 1 ELSE r.failures + 1 END,
	window_start = CASE WHEN r.expires_at <= $4 THEN $4 ELSE r.window_start END,
	expires_at   = CASE WHEN r.expires_at <= $4 OR r.failures + 1 = $6 THEN $5 ELSE r.expires_at END
RETURNING failures, expires_at`

// Reserve counts an attempt in tx (whose tenant is set) at now, before its password is
// checked: the attempt is a failure until Release takes it back. Counting first is what
// bounds concurrent guesses: attempts that all passed a Check would otherwise all be hashed
// before any of them counted. A *LockedError refuses the attempt, either from Check (a
// locked counter, nothing written) or because attempts reserved concurrently have used up a
// limit; then tx holds the refused attempt's counts and the caller must roll it back (return
// the error from the transaction), so that a refused attempt is not counted.
//
// The returned Locks are the counters this attempt has locked: the caller audits them unless
// the password turns out right (once per lockout, since one attempt reaches each limit). It
// also sweeps some stale rows of the tenant.
func (l *Limiter) Reserve(ctx context.Context, tx pgx.Tx, tenant string, a Attempt, now time.Time) ([]Lock, error) {
	if err := l.Check(ctx, tx, tenant, a, now); err != nil {
		return nil, err
	}
	var locks []Lock
	var refused *LockedError
	// Always in the order of counters(), so that concurrent transactions take the row locks
	// they share in the same order (no deadlock; Release locks in that order too).
	for _, c := range l.counters(a) {
		var failures int
		var expires time.Time
		if err := tx.QueryRow(ctx, upsertSQL, tenant, c.scope, c.key, now, now.Add(l.cfg.Window), c.limit).Scan(&failures, &expires); err != nil {
			return nil, fmt.Errorf("rate limits: count attempt: %w", err)
		}
		switch {
		case failures > c.limit:
			if refused == nil || expires.Sub(now) > refused.Wait {
				refused = newLockedError(a.Kind, c.scope, expires.Sub(now))
			}
		case failures == c.limit:
			locks = append(locks, Lock{Scope: c.scope, Failures: failures, Until: expires})
		}
	}
	if refused != nil {
		return nil, refused
	}
	if err := sweep(ctx, tx, tenant, now); err != nil {
		return nil, err
	}
	return locks, nil
}

// releaseSQL takes back a reserved attempt: it deletes the target and target+IP counters
// and takes one count off the IP counter ($4), deleting it at one. The counters are locked
// first, in the order of their scopes, which is the order of counters() and so of Reserve's
// upserts (no deadlock); the row locks also make the IP counter's count exact under
// concurrent attempts.
const releaseSQL = `WITH held AS MATERIALIZED (
	SELECT scope, key, failures FROM rate_limits
	WHERE tenant_id = $1 AND scope = ANY ($2) AND key = ANY ($3) AND expires_at > $5
	ORDER BY scope COLLATE "C" FOR UPDATE
), cleared AS (
	DELETE FROM rate_limits r USING held h
	WHERE r.tenant_id = $1 AND r.scope = h.scope AND r.key = h.key AND (h.scope <> $4 OR h.failures <= 1)
)
UPDATE rate_limits r SET failures = h.failures - 1 FROM held h
WHERE r.tenant_id = $1 AND r.scope = h.scope AND r.key = h.key AND h.scope = $4 AND h.failures > 1`

// Release takes back in tx (whose tenant is set) an attempt that Reserve counted and whose
// password was right: the target and target+IP counters are deleted, failures included
// (success resets the account), and the IP counter only loses this attempt's count
// (succeeding on one account of its own must not reset a sprayer's budget).
func (l *Limiter) Release(ctx context.Context, tx pgx.Tx, tenant string, a Attempt, now time.Time) error {
	cs := l.counters(a)
	scopes, keys := make([]string, len(cs)), make([][]byte, len(cs))
	for i, c := range cs {
		scopes[i], keys[i] = c.scope, c.key
	}
	if _, err := tx.Exec(ctx, releaseSQL, tenant, scopes, keys, string(a.Kind)+"."+scopeIP, now); err != nil {
		return fmt.Errorf("rate limits: release: %w", err)
	}
	return nil
}

// sweepBatch bounds the stale rows one call deletes, so that no request pays for a backlog.
const sweepBatch = 100

// sweep deletes up to sweepBatch of the tenant's counters that expired by now. Rows another
// transaction holds are skipped rather than waited for (no lock waits, hence no deadlock
// with a concurrent Fail), and the outer expiry condition is re-checked on the row's latest
// version, so a counter another transaction has just restarted is kept.
func sweep(ctx context.Context, tx pgx.Tx, tenant string, now time.Time) error {
	// The batch is a CTE, evaluated once: as an IN (subquery) the planner may rescan it per
	// row, and each rescan would find the next rows, deleting past the limit.
	_, err := tx.Exec(ctx, `WITH batch AS MATERIALIZED (
	SELECT scope, key FROM rate_limits WHERE tenant_id = $1 AND expires_at <= $2 LIMIT $3 FOR UPDATE SKIP LOCKED)
DELETE FROM rate_limits r USING batch b
WHERE r.tenant_id = $1 AND r.scope = b.scope AND r.key = b.key AND r.expires_at <= $2`,
		tenant, now, sweepBatch)
	if err != nil {
		return fmt.Errorf("rate limits: sweep: %w", err)
	}
	return nil
}
