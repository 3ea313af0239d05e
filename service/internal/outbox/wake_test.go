package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/outbox"
)

// TestRelayWokenByCommit: with a polling interval of an hour, the relay publishes a
// committed event right away because the outbox notifies it (migration 0012), including
// after its listening connection was killed; without notifications (NoNotify) the event
// waits for the next poll.
func TestRelayWokenByCommit(t *testing.T) {
	e := setup(t, 1)
	tenant := e.tenants[0]
	published := func(b *recordingBus) int { return int(b.total.Load()) }

	b := &recordingBus{calls: map[string][]int{}}
	stop := run(t, (&outbox.Relay{Pool: e.app, Bus: b, Interval: time.Hour}).Run)
	defer stop()
	// The first pass happens at start; let it run on the empty outbox.
	time.Sleep(200 * time.Millisecond)
	e.commit(t, tenant, 0, 3)
	waitFor(t, "events published on notification", 10*time.Second, func() (bool, string) {
		return published(b) == 3, ""
	})

	// Kill the relay's listening connection: it reconnects (and runs a pass when it does).
	if _, err := e.super.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN "+outbox.NotifyChannel+"'"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "listener back", 10*time.Second, func() (bool, string) {
		var n int
		_ = e.super.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN "+outbox.NotifyChannel+"'").Scan(&n)
		return n == 1, ""
	})
	e.commit(t, tenant, 3, 2)
	waitFor(t, "events published after the listener reconnected", 10*time.Second, func() (bool, string) {
		return published(b) == 5, ""
	})

	// Polling only: nothing is published until the next pass, an hour away.
	stop()
	quiet := &recordingBus{calls: map[string][]int{}}
	stopQuiet := run(t, (&outbox.Relay{Pool: e.app, Bus: quiet, Interval: time.Hour, NoNotify: true}).Run)
	defer stopQuiet()
	time.Sleep(200 * time.Millisecond)
	e.commit(t, tenant, 5, 1)
	time.Sleep(time.Second)
	if n := published(quiet); n != 0 {
		t.Errorf("NoNotify relay published %d events before its next poll, want 0", n)
	}
}
