// Package retention keeps the event tables bounded: it deletes, in small batches, the outbox
// rows already sent, the processed-event ledger rows whose event can no longer come back, and
// the settled webhook deliveries, each once older than its retention. It never deletes an
// unsent outbox row or a pending delivery.
//
// # Access
//
// The tables are under row-level security and bitvault_app sees one tenant at a time (and may
// not delete outbox rows at all). The sweep deletes across tenants only through three
// SECURITY DEFINER functions of migration 0010 (retention_purge_outbox,
// retention_purge_ledger, retention_purge_webhook_deliveries), owned by the NOLOGIN role
// bitvault_retention, whose only privileges are SELECT on the columns it tests and DELETE,
// through its own policies; restrictive policies bar it from unsent outbox rows and pending
// deliveries whatever a function's query says. The functions take no tenant, return only a
// count and refuse a retention below a floor (10 minutes, 7 days, 1 day), so the app role
// that calls them can delete nothing but expired rows.
//
// # Why the horizons are safe
//
// Outbox (BITVAULT_OUTBOX_RETENTION, default 7 days, at least the bus's duplicate window).
// The relay only ever claims unsent rows (outbox_claim: published_at IS NULL), and only rows
// with published_at set are deleted, so a deletion never changes what the relay sends or in
// which order: per-tenant order is id order among unsent rows, and ids come from an identity
// sequence that a DELETE does not rewind, so no id (and no event id, a random UUID) is ever
// reused. A row that was published but not yet marked (relay crash) is still unsent here, so
// its re-send with the same message id keeps working. Keeping sent rows at least the
// duplicate window (bus.DedupeWindow, JetStream's Duplicates) is therefore a margin rather
// than a necessity: for as long as the bus may still be de-duplicating an id, the row it came
// from is still there to look at.
//
// Ledger (BITVAULT_LEDGER_RETENTION, default 14 days, more than the stream's MaxAge plus a
// day). A ledger row must outlive every possible redelivery of its event, and JetStream can
// deliver a message again as long as the stream holds it, i.e. up to MaxAge (7 days) after it
// was published: after a lost ack (AckWait), after a nak, or because a durable consumer was
// lost and recreated (DeliverAll replays the whole stream). A ledger row is written when the
// event is first processed, at or after its first publication. One more case stretches the
// horizon: a relay that published and died before marking the row re-publishes it when it
// comes back, and past the duplicate window that is a new stream message with the same id,
// living MaxAge from that re-send. Retention = MaxAge + margin covers it as long as the relay
// came back within the margin (the outbox lag readiness check fires after minutes), and the
// margin also absorbs clock skew between the NATS server (stream ages) and PostgreSQL
// (processed_at). The default 14 days leaves a 7-day margin; validation demands at least a
// day. Dead-lettered events have no ledger row (the handler failed, its transaction rolled
// back), so replaying a dead letter later is not affected. With a stream without MaxAge no
// finite ledger retention would be safe, and Validate refuses it.
//
// Webhook deliveries (BITVAULT_WEBHOOK_RETENTION, default 30 days). Only delivered and dead
// deliveries go, by creation time. The fan-out's exactly-once rests on its ledger row (and on
// the deliveries' unique (endpoint, event) key as a second guard), so removing a settled
// delivery cannot cause a second one; the retention is how long the delivery log stays
// visible to tenants.
//
// # Batches
//
// Each function call is one statement in its own transaction deleting at most Config.Batch
// rows (default 1000), oldest first through a partial index, so no lock is held for long;
// Sweep repeats a call until it deletes less than a batch. Several sweepers (bitvaultd
// replicas) do not queue on each other's locks: a call that finds another holding the table
// returns 0 and leaves the table to it.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier runs a query (a pool of the app role, or a connection).
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Result counts the rows a sweep deleted, per table.
type Result struct {
	Outbox, Ledger, Webhooks int64
	// Statements is the number of purge calls (batches) made.
	Statements int
}

// Total is the number of rows deleted.
func (r Result) Total() int64 { return r.Outbox + r.Ledger + r.Webhooks }

// table is one purged table.
type table struct {
	name      string // as logged
	fn        string // its purge function (migration 0010)
	retention time.Duration
	deleted   *int64 // its count in the Result
}

// tables lists the purged tables, in sweep order, counting into res.
func (s *Sweeper) tables(res *Result) []table {
	return []table{
		{name: "outbox", fn: "retention_purge_outbox", retention: s.cfg.Outbox, deleted: &res.Outbox},
		{name: "processed_events", fn: "retention_purge_ledger", retention: s.cfg.Ledger, deleted: &res.Ledger},
		{name: "webhook_deliveries", fn: "retention_purge_webhook_deliveries", retention: s.cfg.Webhooks, deleted: &res.Webhooks},
	}
}

// Sweeper runs the retention sweeps.
type Sweeper struct {
	q      Querier
	cfg    Config
	logger *slog.Logger

	// Cumulative counts since New, for a metric (Totals).
	outbox, ledger, webhooks, sweeps, failed atomic.Int64
}

// New returns a Sweeper purging through q (the app role's pool) with cfg, which it validates
// first; logger may be nil.
func New(q Querier, cfg Config, logger *slog.Logger) (*Sweeper, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{q: q, cfg: cfg, logger: logger}, nil
}

// Config returns the configuration in force (defaults applied).
func (s *Sweeper) Config() Config { return s.cfg }

// Sweep purges every table once, until a batch comes back short, and logs a summary. An
// error on one table does not stop the others; the errors are joined.
func (s *Sweeper) Sweep(ctx context.Context) (Result, error) {
	start := time.Now()
	var res Result
	var errs []error
	for _, t := range s.tables(&res) {
		if err := s.purge(ctx, t, &res); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	s.record(res, err)
	attrs := []any{slog.Int64("outbox", res.Outbox), slog.Int64("processed_events", res.Ledger),
		slog.Int64("webhook_deliveries", res.Webhooks), slog.Int("statements", res.Statements),
		slog.Duration("duration", time.Since(start))}
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: not worth a warning.
	case err != nil:
		s.logger.WarnContext(ctx, "retention sweep", append(attrs, slog.String("error", err.Error()))...)
	default:
		s.logger.InfoContext(ctx, "retention sweep", attrs...)
	}
	return res, err
}

// purge deletes t's expired rows a batch at a time.
func (s *Sweeper) purge(ctx context.Context, t table, res *Result) error {
	// The interval goes as seconds: pgx would send a time.Duration as a bigint.
	sql := fmt.Sprintf("SELECT %s(make_interval(secs => $1), $2)", t.fn)
	secs := t.retention.Seconds()
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("retention: %s: %w", t.name, err)
		}
		var n int64
		if err := s.q.QueryRow(ctx, sql, secs, s.cfg.Batch).Scan(&n); err != nil {
			return fmt.Errorf("retention: %s: %w", t.name, err)
		}
		res.Statements++
		*t.deleted += n
		if n < int64(s.cfg.Batch) {
			return nil
		}
	}
}

func (s *Sweeper) record(r Result, err error) {
	s.outbox.Add(r.Outbox)
	s.ledger.Add(r.Ledger)
	s.webhooks.Add(r.Webhooks)
	s.sweeps.Add(1)
	if err != nil {
		s.failed.Add(1)
	}
}

// Totals are cumulative counts since the Sweeper was made, for metrics (counters).
type Totals struct {
	// Rows deleted per table.
	Outbox, Ledger, Webhooks int64
	// Sweeps run, and those that failed (on at least one table).
	Sweeps, Failed int64
}

// Totals returns the counts so far.
func (s *Sweeper) Totals() Totals {
	return Totals{Outbox: s.outbox.Load(), Ledger: s.ledger.Load(), Webhooks: s.webhooks.Load(),
		Sweeps: s.sweeps.Load(), Failed: s.failed.Load()}
}

// Run sweeps at once and then every Config.Interval until ctx ends, then returns nil. A
// failed sweep is logged (by Sweep) and retried at the next tick.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		_, _ = s.Sweep(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
