// Package webhooks is the notification dispatch of signed HTTP webhooks: per-tenant
// endpoints (admin API), a delivery row per (endpoint, event) written by the webhooks
// consumer, and a dispatcher that POSTs the due deliveries, retrying on a schedule.
//
// # Endpoints
//
// POST /v1/webhooks {url, events?} (owner and admin: identity.PermTenantAdmin) creates an
// endpoint and answers its secret, once: it is never shown again. The secret must sign, so
// it cannot be hashed: it is encrypted at rest (AES-256-GCM, bound to its row; see
// secretbox.go for the keys, their rotation and the legacy plaintext rows), under row-level
// security like every tenant row. The URL must pass the destination Policy (https, no
// credentials, no fragment, no literal internal address; see destination.go).
// GET /v1/webhooks lists the endpoints (without secrets), DELETE /v1/webhooks/{id}
// removes one (and its deliveries), GET /v1/webhooks/{id}/deliveries lists its deliveries,
// newest first, with their state (pending, delivered, dead), attempts and last answer.
//
// # Deliveries
//
// Each event (every bus event of the tenant; an endpoint's events list, if not empty,
// filters by type) becomes a delivery per endpoint (Enqueue, idempotent: unique per endpoint
// and event). The dispatcher POSTs it at once, then, after failed attempts (a transport
// error or a non-2xx answer), after each delay of Config.Schedule in turn (default 1m, 5m,
// 30m, 2h, 24h); after the last one the delivery is dead (the dead letter, kept and
// listed). A destination refused by the Policy at delivery (the URL no longer passes, or its
// host resolves to a refused address) makes the delivery dead at once, with the rule in
// last_error: retrying a policy decision would only repeat it, and the reason is what the
// admin needs. A secret that cannot be decrypted is an ordinary failed attempt, retried: it
// is typically a replica not yet configured with a new key during a rotation.
//
// A delivery row is locked (FOR UPDATE SKIP LOCKED) while it is being sent, so several
// dispatchers never send it concurrently; delivery is at least once (a crash after the
// POST, before the update, sends it again: receivers de-duplicate by X-BitVault-Delivery or
// the event id).
//
// # Signature
//
// The body is {"id", "type", "tenant_id", "data"}. X-BitVault-Signature is
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>"; receivers recompute it
// (Verify) and refuse a timestamp older than their tolerance (default 5 minutes), which
// makes a replayed request detectable.
package webhooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/uuid"
)

// Headers of a delivery.
const (
	HeaderSignature = "X-BitVault-Signature"
	HeaderEvent     = "X-BitVault-Event"
	HeaderDelivery  = "X-BitVault-Delivery"
	// DefaultTolerance is Verify's default maximum age of a signature.
	DefaultTolerance = 5 * time.Minute
)

// DefaultSchedule is the delays before the retries.
var DefaultSchedule = []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 24 * time.Hour}

// Config tunes the service.
type Config struct {
	// Schedule is the delays before retry 1, 2, … (nil: DefaultSchedule).
	Schedule []time.Duration
	// Interval is the dispatcher's polling period (0: 1s).
	Interval time.Duration
	// Timeout bounds one POST (0: 10s).
	Timeout time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Destinations is the destination policy, applied to URLs at registration and to every
	// address dialed at delivery (the POSTs always go through its guarded client).
	Destinations Policy
	// SecretKey is the master key of the signing secrets at rest (required, at least
	// MinSecretKeyLen bytes; LoadConfig: BITVAULT_SECRET_KEY, else BITVAULT_TOKEN_KEY).
	SecretKey []byte
	// OldSecretKeys are previous master keys, to decrypt (and re-encrypt) older rows.
	OldSecretKeys [][]byte
}

// Service is the webhooks module.
type Service struct {
	pool   *pgxpool.Pool
	cfg    Config
	keys   *keyring
	client *http.Client
	logger *slog.Logger
	// unreadable holds the endpoints ("tenant/id") whose unreadable secret this process
	// has logged.
	unreadable sync.Map
}

// New returns a Service on the app role's pool.
func New(pool *pgxpool.Pool, cfg Config, logger *slog.Logger) (*Service, error) {
	if pool == nil {
		return nil, errors.New("webhooks: pool is required")
	}
	if cfg.Schedule == nil {
		cfg.Schedule = DefaultSchedule
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.SecretKey) == 0 {
		return nil, errors.New("webhooks: SecretKey is required (" + EnvSecretKey + " or BITVAULT_TOKEN_KEY): the signing secrets are encrypted at rest")
	}
	keys, err := newKeyring(cfg.SecretKey, cfg.OldSecretKeys)
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	if d := cfg.Destinations; d.AllowHTTP || d.AllowPrivate || len(d.AllowedCIDRs) > 0 {
		// Worth a line at every start: these settings widen what a tenant admin can reach.
		logger.Warn("webhook destination policy relaxed", slog.Bool("allow_http", d.AllowHTTP),
			slog.Bool("allow_private", d.AllowPrivate), slog.Any("allowed_cidrs", d.AllowedCIDRs))
	}
	return &Service{pool: pool, cfg: cfg, keys: keys, client: cfg.Destinations.client(cfg.Timeout), logger: logger}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Endpoint is a webhook endpoint; Secret is set only in the answer to its creation.
type Endpoint struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
	Secret    string    `json:"secret,omitempty"`
}

// NewEndpoint is the input of Create.
type NewEndpoint struct {
	URL    string   `json:"url"`
	Events []string `json:"events,omitempty"`
}

// Delivery is one event's delivery to one endpoint.
type Delivery struct {
	ID            string     `json:"id"`
	EndpointID    string     `json:"endpoint_id"`
	EventID       string     `json:"event_id"`
	EventType     string     `json:"event_type"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
	LastStatus    *int       `json:"last_status"`
	LastError     *string    `json:"last_error"`
	CreatedAt     time.Time  `json:"created_at"`
}

func invalid(format string, args ...any) error {
	return apierror.New(apierror.CodeInvalidArgument, fmt.Sprintf(format, args...))
}

func authorize(p identity.Principal) error {
	if p.TenantID == "" {
		return identity.ErrUnauthenticated
	}
	return identity.Authorize(p, identity.PermTenantAdmin)
}

// Create adds an endpoint and returns it with its secret (shown this once).
func (s *Service) Create(ctx context.Context, p identity.Principal, in NewEndpoint) (Endpoint, error) {
	if err := authorize(p); err != nil {
		return Endpoint{}, err
	}
	if err := s.cfg.Destinations.CheckURL(in.URL); err != nil {
		return Endpoint{}, invalid("%s", err.Error())
	}
	events := in.Events
	if events == nil {
		events = []string{}
	}
	for _, e := range events {
		if e == "" || strings.ContainsAny(e, " \t*>") {
			return Endpoint{}, invalid("events: bad event type %q", e)
		}
	}
	// The id is chosen here, not by the database, because it is part of the secret's
	// associated data.
	ep := Endpoint{ID: uuid.New(), URL: in.URL, Events: events, Secret: newSecret()}
	sealed, err := s.keys.seal(p.TenantID, ep.ID, ep.Secret)
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhooks: create: %w", err)
	}
	err = db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO webhook_endpoints (tenant_id, id, url, secret, events, created_by, created_at)
VALUES ($1, $2::uuid, $3, $4, $5, $6, $7) RETURNING created_at`, p.TenantID, ep.ID, ep.URL, sealed, ep.Events, p.UserID, s.now()).Scan(&ep.CreatedAt)
	})
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhooks: create: %w", err)
	}
	return ep, nil
}

// newSecret returns a fresh signing secret (the form legacySecret matches).
func newSecret() string {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // never fails (crypto/rand)
	return "whsec_" + hex.EncodeToString(raw)
}

// List returns the tenant's endpoints, oldest first, without secrets.
func (s *Service) List(ctx context.Context, p identity.Principal) ([]Endpoint, error) {
	if err := authorize(p); err != nil {
		return nil, err
	}
	eps := []Endpoint{}
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT id::text, url, events, created_at FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id", p.TenantID)
		if err != nil {
			return err
		}
		eps, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Endpoint, error) {
			var e Endpoint
			err := r.Scan(&e.ID, &e.URL, &e.Events, &e.CreatedAt)
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("webhooks: list: %w", err)
	}
	if eps == nil {
		eps = []Endpoint{}
	}
	return eps, nil
}

func endpointID(id string) error {
	if len(id) != 36 || strings.Count(id, "-") != 4 {
		return apierror.New(apierror.CodeNotFound, "webhook not found")
	}
	return nil
}

// Delete removes an endpoint and its deliveries.
func (s *Service) Delete(ctx context.Context, p identity.Principal, id string) error {
	if err := authorize(p); err != nil {
		return err
	}
	if err := endpointID(id); err != nil {
		return err
	}
	var n int64
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2::uuid", p.TenantID, id)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("webhooks: delete: %w", err)
	}
	if n == 0 {
		return apierror.New(apierror.CodeNotFound, "webhook not found")
	}
	return nil
}

// Deliveries lists an endpoint's deliveries, newest first (at most limit, 1–500, 0: 100).
func (s *Service) Deliveries(ctx context.Context, p identity.Principal, id string, limit int) ([]Delivery, error) {
	if err := authorize(p); err != nil {
		return nil, err
	}
	if err := endpointID(id); err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > 500 {
		return nil, invalid("limit: want 1 to 500")
	}
	out := []Delivery{}
	err := db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2::uuid)", p.TenantID, id).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return apierror.New(apierror.CodeNotFound, "webhook not found")
		}
		rows, err := tx.Query(ctx, `SELECT id::text, endpoint_id::text, event_id, event_type, status, attempts, next_attempt_at, last_attempt_at, last_status, last_error, created_at
FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2::uuid ORDER BY created_at DESC, id LIMIT $3`, p.TenantID, id, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) {
			var d Delivery
			err := r.Scan(&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.Status, &d.Attempts, &d.NextAttemptAt, &d.LastAttemptAt, &d.LastStatus, &d.LastError, &d.CreatedAt)
			return d, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("webhooks: deliveries: %w", err)
	}
	if out == nil {
		out = []Delivery{}
	}
	return out, nil
}

// Event is what Enqueue delivers.
type Event struct {
	ID, Tenant, Type string
	Payload          []byte
}

// Enqueue writes, in tx (the tenant's, with the consumer's ledger row), a pending delivery
// of e to each of the tenant's endpoints that wants its type. It returns the number written.
func (s *Service) Enqueue(ctx context.Context, tx pgx.Tx, e Event) (int64, error) {
	payload := e.Payload
	if !json.Valid(payload) {
		payload = []byte("null")
	}
	tag, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_id, event_type, payload, next_attempt_at, created_at)
SELECT $1, w.id, $2, $3, $4, $5, $5 FROM webhook_endpoints w
WHERE w.tenant_id = $1 AND (cardinality(w.events) = 0 OR $3 = ANY (w.events))
ON CONFLICT (tenant_id, endpoint_id, event_id) DO NOTHING`, e.Tenant, e.ID, e.Type, payload, s.now())
	if err != nil {
		return 0, fmt.Errorf("webhooks: enqueue: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Sign returns the X-BitVault-Signature value of body at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhooks: signature does not match")
	ErrTooOld       = errors.New("webhooks: signature timestamp outside the tolerance (replay?)")
)

// Verify checks header (X-BitVault-Signature) against body and secret, and that its
// timestamp is within tolerance of now (0: DefaultTolerance); a receiver's check.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrBadSignature
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrTooOld
	}
	return nil
}

// due is a delivery being sent.
type due struct {
	id, endpointID, eventID, eventType, url string
	stored                                  string // the endpoint's secret as stored (sealed or legacy)
	payload                                 json.RawMessage
	attempts                                int
}

// outcome is the result of one attempt.
type outcome struct {
	status int   // the answer's HTTP status; 0 without an answer
	err    error // nil: delivered
	final  bool  // no retry: dead at once (a destination refused by the policy)
}

// DispatchOnce sends the deliveries due now, tenant by tenant (webhook_due_tenants), each
// in its own transaction holding the row lock while it is sent. It returns the number of
// attempts made. It writes nothing but the deliveries: the secrets are re-encrypted by
// RunDispatcher's sweeps (ReencryptAll), not on this path, which runs every Config.Interval.
func (s *Service) DispatchOnce(ctx context.Context) (int, error) {
	rows, err := s.pool.Query(ctx, "SELECT tenant_id::text FROM webhook_due_tenants($1)", s.now())
	if err != nil {
		return 0, fmt.Errorf("webhooks: due tenants: %w", err)
	}
	tenants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("webhooks: due tenants: %w", err)
	}
	n := 0
	for _, t := range tenants {
		for ctx.Err() == nil {
			sent, err := s.sendOne(ctx, t)
			if err != nil {
				return n, err
			}
			if !sent {
				break
			}
			n++
		}
	}
	return n, nil
}

// sendOne sends one due delivery of tenant, if any.
func (s *Service) sendOne(ctx context.Context, tenant string) (bool, error) {
	sent := false
	err := db.WithTenant(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		d, ok, err := nextDue(ctx, tx, tenant, s.now())
		if err != nil || !ok {
			return err
		}
		sent = true
		return s.record(ctx, tx, tenant, d, s.attempt(ctx, tenant, d))
	})
	return sent, err
}

// nextDue locks the tenant's next due delivery (ok false: none).
func nextDue(ctx context.Context, tx pgx.Tx, tenant string, now time.Time) (d due, ok bool, err error) {
	err = tx.QueryRow(ctx, `SELECT d.id::text, d.endpoint_id::text, d.event_id, d.event_type, d.payload, d.attempts, w.url, w.secret
FROM webhook_deliveries d JOIN webhook_endpoints w ON w.tenant_id = d.tenant_id AND w.id = d.endpoint_id
WHERE d.tenant_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= $2
ORDER BY d.next_attempt_at, d.id LIMIT 1 FOR UPDATE OF d SKIP LOCKED`, tenant, now).
		Scan(&d.id, &d.endpointID, &d.eventID, &d.eventType, &d.payload, &d.attempts, &d.url, &d.stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return due{}, false, nil
	}
	if err != nil {
		return due{}, false, fmt.Errorf("webhooks: next delivery: %w", err)
	}
	return d, true, nil
}

// attempt checks the destination, decrypts the secret and POSTs the delivery.
func (s *Service) attempt(ctx context.Context, tenant string, d due) outcome {
	// The stored URL passed the policy when it was registered, but the policy may have been
	// tightened since: judge it again under the current one.
	if err := s.cfg.Destinations.CheckURL(d.url); err != nil {
		refused, ok := errors.AsType[*DestinationError](err)
		if !ok {
			refused = &DestinationError{Reason: err.Error()}
		}
		return outcome{err: refused, final: true}
	}
	secret, _, err := s.keys.open(tenant, d.endpointID, d.stored)
	if err != nil {
		return outcome{err: err}
	}
	code, err := s.post(ctx, tenant, d, secret)
	if refused, ok := errors.AsType[*DestinationError](err); ok {
		// The refusal itself is the reason, without the transport's wrapping.
		return outcome{err: refused, final: true}
	}
	return outcome{status: code, err: err}
}

// record writes the outcome of an attempt: delivered, pending until the next retry of the
// schedule, or dead (after the last retry, or at once for a final outcome).
func (s *Service) record(ctx context.Context, tx pgx.Tx, tenant string, d due, o outcome) error {
	now := s.now()
	attempts := d.attempts + 1
	var lastStatus *int
	if o.status != 0 {
		lastStatus = &o.status
	}
	if o.err == nil {
		_, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'delivered', attempts = $3, next_attempt_at = NULL,
	last_attempt_at = $4, last_status = $5, last_error = NULL WHERE tenant_id = $1 AND id = $2`, tenant, d.id, attempts, now, lastStatus)
		return err
	}
	msg := o.err.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	if !o.final && attempts-1 < len(s.cfg.Schedule) {
		_, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET attempts = $3, next_attempt_at = $4, last_attempt_at = $5,
	last_status = $6, last_error = $7 WHERE tenant_id = $1 AND id = $2`, tenant, d.id, attempts, now.Add(s.cfg.Schedule[attempts-1]), now, lastStatus, msg)
		return err
	}
	s.logger.WarnContext(ctx, "webhook delivery dead", slog.String("delivery", d.id), slog.String("event", d.eventID), slog.String("error", msg))
	_, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'dead', attempts = $3, next_attempt_at = NULL, last_attempt_at = $4,
	last_status = $5, last_error = $6 WHERE tenant_id = $1 AND id = $2`, tenant, d.id, attempts, now, lastStatus, msg)
	return err
}

// post sends one delivery signed with secret; a non-2xx answer is an error.
func (s *Service) post(ctx context.Context, tenant string, d due, secret string) (int, error) {
	body, err := json.Marshal(map[string]any{"id": d.eventID, "type": d.eventType, "tenant_id": tenant, "data": d.payload})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "BitVault-Webhooks/1")
	req.Header.Set(HeaderEvent, d.eventType)
	req.Header.Set(HeaderDelivery, d.id)
	req.Header.Set(HeaderSignature, Sign(secret, s.cfg.Now(), body))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("endpoint answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// resealInterval is the period of RunDispatcher's re-encryption sweeps after the one at
// start. Keys only change when a process restarts, so the sweep at start does the work; the
// later ones (one cross-tenant query when nothing is stale) catch the rows that replicas not
// yet restarted with the new key sealed under the old one during a rolling rotation, before
// that key is retired.
const resealInterval = time.Hour

// ReencryptAll re-encrypts the secrets of every tenant that has some not sealed under the
// active key (webhook_secret_stale_tenants), and returns how many it rewrote. The dispatcher
// runs it at start (and every resealInterval), never on the delivery or API paths.
func (s *Service) ReencryptAll(ctx context.Context) (int, error) {
	rows, err := s.pool.Query(ctx, "SELECT tenant_id::text FROM webhook_secret_stale_tenants($1)", s.keys.active.id)
	if err != nil {
		return 0, fmt.Errorf("webhooks: stale secrets: %w", err)
	}
	tenants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("webhooks: stale secrets: %w", err)
	}
	total := 0
	for _, t := range tenants {
		n, err := s.ReencryptTenant(ctx, t)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// ReencryptTenant seals under the active key every secret of tenant that is not (legacy
// plaintext, or sealed under an old key) and returns how many it rewrote. Unreadable values
// are left as they are (and logged once per endpoint by this process): their deliveries
// fail with the reason and are retried.
func (s *Service) ReencryptTenant(ctx context.Context, tenant string) (int, error) {
	n := 0
	err := db.WithTenant(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		// FOR NO KEY UPDATE does not conflict with the key-share locks of deliveries being
		// inserted; SKIP LOCKED leaves a row being rewritten elsewhere to that writer.
		rows, err := tx.Query(ctx, `SELECT id::text, secret FROM webhook_endpoints
WHERE tenant_id = $1 AND secret_key_id IS DISTINCT FROM $2 FOR NO KEY UPDATE SKIP LOCKED`, tenant, s.keys.active.id)
		if err != nil {
			return err
		}
		stale, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
			var v [2]string
			err := r.Scan(&v[0], &v[1])
			return v, err
		})
		if err != nil {
			return err
		}
		for _, row := range stale {
			ok, err := s.reencrypt(ctx, tx, tenant, row[0], row[1])
			if err != nil {
				return err
			}
			if ok {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("webhooks: re-encrypt secrets: %w", err)
	}
	return n, nil
}

// reencrypt rewrites one endpoint's stored secret under the active key (ok false: unreadable,
// left as is).
func (s *Service) reencrypt(ctx context.Context, tx pgx.Tx, tenant, id, stored string) (bool, error) {
	secret, _, err := s.keys.open(tenant, id, stored)
	if err != nil {
		// Every later sweep finds the row stale again: say it once, not every sweep.
		if _, seen := s.unreadable.LoadOrStore(tenant+"/"+id, struct{}{}); !seen {
			s.logger.WarnContext(ctx, "webhook secret unreadable, left as is", slog.String("tenant", tenant), slog.String("endpoint", id), slog.String("error", err.Error()))
		}
		return false, nil
	}
	sealed, err := s.keys.seal(tenant, id, secret)
	if err != nil {
		return false, err
	}
	_, err = tx.Exec(ctx, "UPDATE webhook_endpoints SET secret = $3 WHERE tenant_id = $1 AND id = $2::uuid", tenant, id, sealed)
	return err == nil, err
}

// RunDispatcher re-encrypts the stale secrets (ReencryptAll: at start, then every
// resealInterval) and dispatches every Config.Interval until ctx ends.
func (s *Service) RunDispatcher(ctx context.Context) error {
	s.reseal(ctx)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	reseal := time.NewTicker(resealInterval)
	defer reseal.Stop()
	for {
		if _, err := s.DispatchOnce(ctx); err != nil && ctx.Err() == nil {
			s.logger.WarnContext(ctx, "webhook dispatch failed", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-reseal.C:
			s.reseal(ctx)
		case <-t.C:
		}
	}
}

// reseal is ReencryptAll for the dispatcher, which must not stop because of it.
func (s *Service) reseal(ctx context.Context) {
	n, err := s.ReencryptAll(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		s.logger.WarnContext(ctx, "webhook secrets re-encryption failed", slog.String("error", err.Error()))
	case n > 0:
		s.logger.InfoContext(ctx, "webhook secrets re-encrypted", slog.Int("endpoints", n), slog.String("key_id", s.keys.active.id))
	}
}
