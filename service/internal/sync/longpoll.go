package sync

import (
	"context"
	"log/slog"
	"time"

	"github.com/bitvault/bitvault/service/internal/identity"
)

// WaitChanges is Pull as a long poll: when there is no change after cursor, it waits up to
// wait for one, then answers the page (empty when the wait ran out). The journal stays the
// truth: a wake-up (Config.Notifier) only makes it read the journal again, as does every
// Config.Recheck, so that a lost wake-up only delays the answer and a spurious one costs a
// read. When Config.Stop closes (the server shuts down) it answers at once. When ctx ends
// (the client went away) it returns ctx's error. wait is at most MaxWait (the HTTP handler
// validates it; a longer one is cut to MaxWait).
//
// Each time a read found nothing and it starts waiting, it logs "long poll waiting" at debug
// level (reads: the reads so far).
func (s *Service) WaitChanges(ctx context.Context, p identity.Principal, cursor int64, limit int, wait time.Duration) (Changes, error) {
	if wait <= 0 {
		return s.Pull(ctx, p, cursor, limit)
	}
	wait = min(wait, MaxWait)
	expired := time.NewTimer(wait)
	defer expired.Stop()
	recheck := time.NewTicker(s.cfg.Recheck)
	defer recheck.Stop()
	last, reads := false, 0
	for {
		// The wait is registered before the read: a commit landing between the read and the
		// select still wakes it.
		woken, release := s.wake(p.TenantID)
		page, err := s.Pull(ctx, p, cursor, limit)
		if err != nil || len(page.Changes) > 0 || last {
			release()
			return page, err
		}
		reads++
		s.logger.DebugContext(ctx, "long poll waiting", slog.String("tenant_id", p.TenantID), slog.Int64("cursor", cursor), slog.Int("reads", reads))
		select {
		case <-woken:
		case <-recheck.C:
		case <-expired.C:
			last = true // one more read: the answer is as fresh as can be
		case <-s.cfg.Stop:
			last = true
		case <-ctx.Done():
			release()
			return Changes{}, ctx.Err()
		}
		release()
	}
}

// wake registers a wait for the tenant's next change (a nil channel without a Notifier).
func (s *Service) wake(tenant string) (<-chan struct{}, func()) {
	if s.cfg.Notifier == nil {
		return nil, func() {}
	}
	return s.cfg.Notifier.Wait(tenant)
}

// draining reports whether Config.Stop is closed.
func (s *Service) draining() bool {
	select {
	case <-s.cfg.Stop:
		return true
	default:
		return false
	}
}
