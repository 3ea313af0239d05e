package consumers

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/bus"
	"github.com/bitvault/bitvault/service/internal/files"
)

// GC consumer names and filters.
const (
	GCName   = "gc"
	GCFilter = "bitvault.files.node.purged.*"
	// DefaultGCInterval is the period of the GC sweep.
	DefaultGCInterval = time.Minute
)

// GC is the garbage collector / finalizer. Blobs whose refcount reached 0 (a purge) wait
// files.Config.BlobGrace; then GC deletes the object and the row, re-checking refcount = 0
// (and that nothing took the blob back since) under the row lock in the deleting
// transaction (files.CollectGarbage). A commit of the same content during the grace period
// turns the blob 'committed' again, so it is never deleted. Pending uploads past their
// expiry are expired and their staging objects deleted.
//
// It runs on files.node.purged events (a tenant's sweep: blobs already past their grace, or
// all of them without one) and on a periodic sweep over the tenants with garbage (Sweep),
// which is what deletes blobs once their grace has passed. Both are idempotent (re-checks
// under locks), so no ledger is needed.
type GC struct {
	Pool  *pgxpool.Pool
	Files *files.Service
	// Logger, if set, logs the sweeps that removed something.
	Logger *slog.Logger
}

// Handle is the GC's bus.Handler.
func (g GC) Handle(ctx context.Context, msg bus.Message) error {
	if msg.Type != files.TopicNodePurged {
		return nil
	}
	if _, err := g.Files.CollectGarbage(ctx, msg.Tenant); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	return nil
}

// SweepReport sums a sweep's per-tenant reports.
type SweepReport struct {
	Tenants int
	files.GarbageReport
}

// Sweep collects the garbage of every tenant that has some (gc_tenants, a SECURITY DEFINER
// function returning tenant ids only).
func (g GC) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	rows, err := g.Pool.Query(ctx, "SELECT tenant_id::text FROM gc_tenants($1)", g.Files.Now())
	if err != nil {
		return rep, fmt.Errorf("gc: tenants: %w", err)
	}
	tenants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return rep, fmt.Errorf("gc: tenants: %w", err)
	}
	var first error
	for _, t := range tenants {
		r, err := g.Files.CollectGarbage(ctx, t)
		rep.Tenants++
		rep.Blobs += r.Blobs
		rep.Uploads += r.Uploads
		rep.Pending += r.Pending
		if err != nil && first == nil {
			first = fmt.Errorf("gc: tenant %s: %w", t, err)
		}
	}
	if g.Logger != nil && (rep.Blobs > 0 || rep.Uploads > 0) {
		g.Logger.InfoContext(ctx, "gc sweep", slog.Int("tenants", rep.Tenants), slog.Int("blobs", rep.Blobs),
			slog.Int("uploads", rep.Uploads), slog.Int("pending", rep.Pending))
	}
	return rep, first
}

// RunSweeper sweeps every interval (DefaultGCInterval if <= 0) until ctx ends. Errors are
// logged and retried at the next tick.
func (g GC) RunSweeper(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultGCInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := g.Sweep(ctx); err != nil && ctx.Err() == nil && g.Logger != nil {
			g.Logger.WarnContext(ctx, "gc sweep failed", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
