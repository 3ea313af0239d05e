package outbox

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// NotifyChannel is the PostgreSQL notification channel on which the outbox announces new
// rows: a statement trigger on outbox (migration 0012) calls pg_notify when a transaction
// inserts rows, and PostgreSQL delivers it when (and only if) that transaction commits, once
// per transaction whatever the number of rows.
const NotifyChannel = "bitvault_outbox"

// listen keeps a connection of its own (not one of the pool's, which the relay passes need)
// LISTENing on NotifyChannel and signals wake (without blocking: one pending wake-up is
// enough) on every notification, and once on each (re)connection, when notifications may have
// been missed. It reconnects with a backoff up to 5 s until ctx ends; meanwhile the relay
// still polls, so a lost connection only delays events by the polling interval.
func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	const firstBackoff = 100 * time.Millisecond
	backoff := firstBackoff
	for ctx.Err() == nil {
		listening, err := r.listenOnce(ctx, signal)
		if ctx.Err() != nil {
			return
		}
		if listening {
			backoff = firstBackoff // it worked for a while: a new failure starts over
		}
		if r.Logger != nil {
			r.Logger.Warn("outbox relay: notifications", slog.String("error", err.Error()), slog.Duration("retry_in", backoff))
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// listenOnce listens until the connection fails or ctx ends; listening reports whether
// LISTEN succeeded.
func (r *Relay) listenOnce(ctx context.Context, signal func()) (listening bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, r.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, err
	}
	defer func() {
		// Bounded: a dead socket must not hold up the relay's shutdown.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return false, err
	}
	signal()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, err
		}
		signal()
	}
}
