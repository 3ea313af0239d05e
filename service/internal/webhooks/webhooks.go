// Package webhooks is the notification dispatch of signed HTTP webhooks: per-tenant
// endpoints (admin API), a delivery row per (endpoint, event) written by the webhooks
// consumer, and a dispatcher that POSTs the due deliveries, retrying on a schedule.
//
// # Endpoints
//
// POST /v1/webhooks {url, events?} (owner and admin: identity.PermTenantAdmin) creates an
// endpoint and answers its secret, once: it is never shown again. The secret must sign, so
// it cannot be hashed: it is stored as is in webhook_endpoints, under row-level security
// like every tenant row (it is not encrypted at rest: a database-level key would be the next
// step). GET /v1/webhooks lists the endpoints (without secrets), DELETE /v1/webhooks/{id}
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
// listed). A delivery row is locked (FOR UPDATE SKIP LOCKED) while it is being sent, so
// several dispatchers never send it concurrently; delivery is at least once (a crash after
// the POST, before the update, sends it again: receivers de-duplicate by X-BitVault-Delivery
// or the event id).
//
// # Signature
//
// The body is {"id", "type", "tenant_id", "data"}. X-BitVault-Signature is
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>"; receivers recompute it
// (Verify) and refuse a timestamp older than their tolerance (default 5 minutes), which
// makes a replayed request detectable.
package webhooks

import (
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
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
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
	// Client sends the POSTs (nil: a client with Timeout, not following redirects).
	Client *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Service is the webhooks module.
type Service struct {
	pool   *pgxpool.Pool
	cfg    Config
	logger *slog.Logger
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
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{pool: pool, cfg: cfg, logger: logger}, nil
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
	u, err := url.Parse(in.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(in.URL) > 2048 {
		return Endpoint{}, invalid("url: want an absolute http or https URL")
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
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	ep := Endpoint{URL: in.URL, Events: events, Secret: "whsec_" + hex.EncodeToString(raw)}
	err = db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO webhook_endpoints (tenant_id, url, secret, events, created_by, created_at)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id::text, created_at`, p.TenantID, ep.URL, ep.Secret, ep.Events, p.UserID, s.now()).Scan(&ep.ID, &ep.CreatedAt)
	})
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhooks: create: %w", err)
	}
	return ep, nil
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
	id, eventID, eventType, url, secret string
	payload                             json.RawMessage
	attempts                            int
}

// DispatchOnce sends the deliveries due now, tenant by tenant (webhook_due_tenants), each
// in its own transaction holding the row lock while it is sent. It returns the number of
// attempts made.
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
		var d due
		err := tx.QueryRow(ctx, `SELECT d.id::text, d.event_id, d.event_type, d.payload, d.attempts, w.url, w.secret
FROM webhook_deliveries d JOIN webhook_endpoints w ON w.tenant_id = d.tenant_id AND w.id = d.endpoint_id
WHERE d.tenant_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= $2
ORDER BY d.next_attempt_at, d.id LIMIT 1 FOR UPDATE OF d SKIP LOCKED`, tenant, s.now()).
			Scan(&d.id, &d.eventID, &d.eventType, &d.payload, &d.attempts, &d.url, &d.secret)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		sent = true
		code, sendErr := s.post(ctx, tenant, d)
		now := s.now()
		attempts := d.attempts + 1
		var lastStatus *int
		if code != 0 {
			lastStatus = &code
		}
		if sendErr == nil {
			_, err = tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'delivered', attempts = $3, next_attempt_at = NULL,
	last_attempt_at = $4, last_status = $5, last_error = NULL WHERE tenant_id = $1 AND id = $2`, tenant, d.id, attempts, now, lastStatus)
			return err
		}
		msg := sendErr.Error()
		if len(msg) > 500 {
			msg = msg[:500]
		}
		if attempts-1 < len(s.cfg.Schedule) {
			_, err = tx.Exec(ctx, `UPDATE webhook_deliveries SET attempts = $3, next_attempt_at = $4, last_attempt_at = $5,
	last_status = $6, last_error = $7 WHERE tenant_id = $1 AND id = $2`, tenant, d.id, attempts, now.Add(s.cfg.Schedule[attempts-1]), now, lastStatus, msg)
			return err
		}
		s.logger.WarnContext(ctx, "webhook delivery dead", slog.String("delivery", d.id), slog.String("event", d.eventID), slog.String("error", msg))
		_, err = tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'dead', attempts = $3, next_attempt_at = NULL, last_attempt_at = $4,
	last_status = $5, last_error = $6 WHERE tenant_id = $1 AND id = $2`, tenant, d.id, attempts, now, lastStatus, msg)
		return err
	})
	return sent, err
}

// post sends one delivery; a non-2xx answer is an error.
func (s *Service) post(ctx context.Context, tenant string, d due) (int, error) {
	body, err := json.Marshal(map[string]any{"id": d.eventID, "type": d.eventType, "tenant_id": tenant, "data": d.payload})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, strings.NewReader(string(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "BitVault-Webhooks/1")
	req.Header.Set(HeaderEvent, d.eventType)
	req.Header.Set(HeaderDelivery, d.id)
	req.Header.Set(HeaderSignature, Sign(d.secret, s.cfg.Now(), body))
	resp, err := s.cfg.Client.Do(req)
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

// RunDispatcher dispatches every Config.Interval until ctx ends.
func (s *Service) RunDispatcher(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := s.DispatchOnce(ctx); err != nil && ctx.Err() == nil {
			s.logger.WarnContext(ctx, "webhook dispatch failed", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
