// Package outbox relays committed outbox rows to the event bus.
//
// The outbox table is under row-level security like every tenant table, and the relay must
// read across tenants. It does so only through the SECURITY DEFINER functions of migration
// 0005 (outbox_claim, outbox_mark_published, outbox_lag), owned by the NOLOGIN role
// bitvault_relay whose policy lets it see every outbox row; the relay itself connects as
// bitvault_app, which has no other way to another tenant's rows.
//
// One relay pass (RunOnce) is one transaction: outbox_claim locks up to Batch unpublished rows,
// whole tenants at a time (a transaction-scoped advisory lock per tenant, plus FOR UPDATE SKIP
// LOCKED on the rows), in id order; the relay publishes them in that order with the row's
// event_id as message id, marks the published prefix and commits. So any number of relays run
// at once without sending a row twice (a row is claimed by one transaction at a time and
// marked before the locks go) and without reordering a tenant's events (one relay holds a
// tenant at a time). A relay that dies after publishing but before committing leaves the rows
// unpublished: the next pass publishes them again with the same message ids, which the bus
// drops (JetStream's duplicate window) and the consumers' ledgers would absorb anyway.
//
// Order caveat: ids come from an identity sequence, so two transactions of one tenant could
// commit in the opposite order of their ids. The files module takes the tenant's journal
// counter lock before inserting its outbox rows, which serializes them in commit order; other
// writers (sharing) are not serialized against files events, and a consumer must not assume
// a total order across topics.
package outbox

import (
	"context"

	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/bus"
	"github.com/bitvault/bitvault/service/internal/platform/health"
)

// Relay publishes the outbox to a bus.
type Relay struct {
	Pool *pgxpool.Pool
	Bus  bus.Bus
	// Batch is the most rows one pass claims (default 256).
	Batch int
	// Interval is the longest pause after a pass that found less than a full batch (default
	// 1 s): the relay wakes up earlier when the outbox notifies new rows (NotifyChannel), so
	// events go out within milliseconds of their commit and the interval only bounds the
	// delay when a notification is lost (the listening connection down).
	Interval time.Duration
	// NoNotify makes the relay only poll, every Interval.
	NoNotify bool
	Logger   *slog.Logger

	published atomic.Int64
}

// Published returns how many rows this relay has marked published.
func (r *Relay) Published() int64 { return r.published.Load() }

// Row is a claimed outbox row.
type Row struct {
	ID        int64
	Tenant    string
	EventID   string
	Topic     string
	Payload   []byte
	CreatedAt time.Time
}

// Event is the bus event of the row.
func (row Row) Event() bus.Event {
	return bus.Event{ID: row.EventID, Tenant: row.Tenant, Type: row.Topic, Payload: row.Payload}
}

// RunOnce runs one pass and returns how many rows it published.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	batch := r.Batch
	if batch <= 0 {
		batch = 256
	}
	tx, err := r.Pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("outbox: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, "SELECT id, tenant_id::text, event_id::text, topic, payload::text, created_at FROM outbox_claim($1)", batch)
	if err != nil {
		return 0, fmt.Errorf("outbox: claim: %w", err)
	}
	claimed, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Row, error) {
		var o Row
		var payload string
		err := row.Scan(&o.ID, &o.Tenant, &o.EventID, &o.Topic, &payload, &o.CreatedAt)
		o.Payload = []byte(payload)
		return o, err
	})
	if err != nil {
		return 0, fmt.Errorf("outbox: claim: %w", err)
	}
	if len(claimed) == 0 {
		return 0, nil
	}
	ids := make([]int64, 0, len(claimed))
	var pubErr error
	for _, row := range claimed {
		if pubErr = r.Bus.Publish(ctx, row.Event()); pubErr != nil {
			// Mark the published prefix only: the rest, the failed row first, stays in order
			// for the next pass.
			break
		}
		ids = append(ids, row.ID)
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, "SELECT outbox_mark_published($1)", ids); err != nil {
			return 0, fmt.Errorf("outbox: mark published: %w", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, fmt.Errorf("outbox: commit: %w", err)
		}
		r.published.Add(int64(len(ids)))
	}
	if pubErr != nil {
		return len(ids), fmt.Errorf("outbox: %w", pubErr)
	}
	return len(ids), nil
}

// Run relays until ctx ends, then returns nil: a pass whenever the outbox notifies new rows,
// and at least every Interval. Errors (database or bus down) are logged and retried with a
// backoff up to 5 s.
func (r *Relay) Run(ctx context.Context) error {
	interval := r.Interval
	if interval <= 0 {
		interval = time.Second
	}
	wake := make(chan struct{}, 1)
	if !r.NoNotify {
		lctx, stop := context.WithCancel(ctx)
		var listener sync.WaitGroup
		listener.Go(func() { r.listen(lctx, wake) })
		// Run returns only once the listener (and its connection) is gone.
		defer listener.Wait()
		defer stop()
	}
	batch := r.Batch
	if batch <= 0 {
		batch = 256
	}
	backoff := interval
	for ctx.Err() == nil {
		n, err := r.RunOnce(ctx)
		wait := interval
		switch {
		case err != nil && ctx.Err() == nil:
			if r.Logger != nil {
				r.Logger.Warn("outbox relay", slog.String("error", err.Error()), slog.Duration("retry_in", backoff))
			}
			wait = backoff
			backoff = min(2*backoff, 5*time.Second)
		case err == nil:
			backoff = interval
			if n >= batch {
				continue
			}
		}
		woken := wake
		if err != nil {
			woken = nil // the database or the bus is failing: wait out the backoff
		}
		select {
		case <-ctx.Done():
		case <-woken:
		case <-time.After(wait):
		}
	}
	return nil
}

// Lag is the relay's backlog.
type Lag struct {
	Unpublished int64
	OldestAge   time.Duration
}

// Querier runs a query (pool, conn or tx).
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ReadLag reads the backlog of every tenant (outbox_lag).
func ReadLag(ctx context.Context, q Querier) (Lag, error) {
	var l Lag
	var age float64
	if err := q.QueryRow(ctx, "SELECT unpublished, oldest_age_seconds FROM outbox_lag()").Scan(&l.Unpublished, &age); err != nil {
		return Lag{}, fmt.Errorf("outbox: lag: %w", err)
	}
	l.OldestAge = time.Duration(age * float64(time.Second))
	return l, nil
}

// LagCheck is a readiness check failing when the oldest unpublished event is older than max;
// either way the /readyz report shows the backlog (as the detail when it passes).
func LagCheck(q Querier, max time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		l, err := ReadLag(ctx, q)
		if err != nil {
			return err
		}
		if l.OldestAge > max {
			return fmt.Errorf("outbox lag: %d unpublished, oldest %s (limit %s)", l.Unpublished, l.OldestAge.Round(time.Millisecond), max)
		}
		return health.OK(fmt.Sprintf("%d unpublished, oldest %s", l.Unpublished, l.OldestAge.Round(time.Millisecond)))
	}
}
