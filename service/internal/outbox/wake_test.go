package outbox_test

import (
	"context"
	"fmt"
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

	listeners := func() int {
		var n int
		_ = e.super.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN "+outbox.NotifyChannel+"'").Scan(&n)
		return n
	}
	// commitOne commits one more event and waits until want events are published.
	seq := 0
	commitOne := func(b *recordingBus, want int, what string) {
		t.Helper()
		e.commit(t, tenant, seq, 1)
		seq++
		waitFor(t, what, 10*time.Second, func() (bool, string) { return published(b) == want, fmt.Sprint(published(b)) })
	}

	// An event from before the start: the first pass publishes it.
	e.commit(t, tenant, seq, 1)
	seq++
	b := &recordingBus{calls: map[string][]int{}}
	stop := run(t, (&outbox.Relay{Pool: e.app, Bus: b, Interval: time.Hour}).Run)
	defer stop()
	waitFor(t, "first pass", 10*time.Second, func() (bool, string) { return published(b) == 1, "" })
	waitFor(t, "listening", 10*time.Second, func() (bool, string) { return listeners() == 1, "" })
	// The listener's start may wake one more pass; the second event after it can only be
	// published because its commit notified the relay (the next poll is an hour away).
	commitOne(b, 2, "an event published")
	commitOne(b, 3, "an event published on notification")

	// Kill the relay's listening connection: it reconnects and is notified again.
	if _, err := e.super.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN "+outbox.NotifyChannel+"'"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "listener gone", 10*time.Second, func() (bool, string) { return listeners() == 0, "" })
	waitFor(t, "listener back", 10*time.Second, func() (bool, string) { return listeners() == 1, "" })
	commitOne(b, 4, "an event published after the listener reconnected")
	commitOne(b, 5, "an event published on notification after the listener reconnected")

	// Polling only (every 3 s): after a pass, nothing is published until the next one.
	stop()
	// A session of the stopped relay whose connection died with its context may hold its
	// tenant's advisory lock a moment longer; a first pass that found the tenant locked
	// would skip it.
	waitFor(t, "the stopped relay's locks released", 10*time.Second, func() (bool, string) {
		var n int
		_ = e.super.QueryRow(context.Background(), "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").Scan(&n)
		return n == 0, fmt.Sprint(n, " advisory locks")
	})
	e.commit(t, tenant, seq, 1)
	seq++
	quiet := &recordingBus{calls: map[string][]int{}}
	stopQuiet := run(t, (&outbox.Relay{Pool: e.app, Bus: quiet, Interval: 3 * time.Second, NoNotify: true}).Run)
	defer stopQuiet()
	waitFor(t, "a pass of the polling relay", 10*time.Second, func() (bool, string) { return published(quiet) == 1, "" })
	e.commit(t, tenant, seq, 1)
	time.Sleep(time.Second)
	if n := published(quiet); n != 1 {
		t.Errorf("NoNotify relay published %d events within 1 s of a commit, want only the one before it (the next poll is 3 s after the last)", n)
	}
}
