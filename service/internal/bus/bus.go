// Package bus is BitVault's event bus: the outbox relay publishes committed events to it and
// the consumers (meter, sync signal, …) subscribe to it.
//
// Semantics, shared by both implementations and pinned by one contract test suite
// (bustest.Contract):
//
//   - Publish de-duplicates by Event.ID: publishing the same id twice (a relay that crashed
//     after publishing, before marking the row) delivers it once. (JetStream: within the
//     stream's duplicate window, DedupeWindow; consumers stay idempotent through their
//     processed-event ledger for anything older.)
//   - Subscribe runs a durable consumer: its position survives the subscription (and, with
//     JetStream, the process). Delivery is at least once; the handler's result decides:
//     nil acknowledges; Term(err) dead-letters at once; any other error is retried after a
//     backoff (Options.Backoff) until the delivery count reaches Options.MaxDeliver, then the
//     event is dead-lettered. Dead letters are kept per consumer (DeadLetters).
//   - Subjects are bitvault.<type>.<tenant>, e.g. bitvault.files.version.created.<uuid>;
//     a subscription's filter is a NATS subject pattern over them ("bitvault.files.>").
//
// Mem (lite profile) keeps everything in process memory; JetStream (standard profile) uses a
// NATS JetStream stream (StreamName) and durable pull consumers. JetStream.Watch also gives
// every process its own at-most-once copy of the events (no durable consumer): for
// wake-ups that each bitvaultd replica needs, such as the sync signal.
package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Event is one published event.
type Event struct {
	// ID de-duplicates: the outbox row's event_id.
	ID     string
	Tenant string
	// Type is the outbox topic, e.g. files.version.created.
	Type    string
	Payload []byte
}

// Message is a delivery of an event to a handler.
type Message struct {
	Event
	// Attempt counts deliveries from 1.
	Attempt int
}

// Handler processes one message: see the package comment for what its result means.
type Handler func(ctx context.Context, m Message) error

// Bus publishes and subscribes.
type Bus interface {
	Publish(ctx context.Context, e Event) error
	// Subscribe consumes as the durable consumer name the events whose subject matches
	// filter, until ctx ends (then it returns nil) or the bus fails.
	Subscribe(ctx context.Context, name, filter string, h Handler) error
	// DeadLetters returns the events dead-lettered by consumer name, oldest first.
	DeadLetters(ctx context.Context, name string) ([]Event, error)
	Close()
}

// Options tune the delivery.
type Options struct {
	// MaxDeliver bounds the deliveries of one event to one consumer (default 5).
	MaxDeliver int
	// Backoff gives the delay before delivery attempt+1 after a failed attempt (default
	// 100 ms doubling up to 10 s).
	Backoff func(attempt int) time.Duration
	// AckWait is how long a delivery may stay unacknowledged before it is redelivered
	// (JetStream; default 30 s).
	AckWait time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = 5
	}
	if o.Backoff == nil {
		o.Backoff = func(attempt int) time.Duration {
			d := 100 * time.Millisecond << min(attempt-1, 10)
			return min(d, 10*time.Second)
		}
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	return o
}

// Subject is the subject of e: bitvault.<type>.<tenant>.
func Subject(e Event) string { return "bitvault." + e.Type + "." + e.Tenant }

// Validate checks that e can be published.
func Validate(e Event) error {
	switch {
	case e.ID == "":
		return errors.New("bus: event without id")
	case e.Tenant == "" || strings.ContainsAny(e.Tenant, ".*> \t"):
		return fmt.Errorf("bus: bad tenant %q", e.Tenant)
	case e.Type == "" || strings.ContainsAny(e.Type, "*> \t") || strings.HasPrefix(e.Type, ".") || strings.HasSuffix(e.Type, "."):
		return fmt.Errorf("bus: bad type %q", e.Type)
	}
	return nil
}

// termError marks a permanent failure.
type termError struct{ err error }

func (e termError) Error() string { return "permanent: " + e.err.Error() }
func (e termError) Unwrap() error { return e.err }

// Term marks err as permanent: the message is dead-lettered without retry.
func Term(err error) error { return termError{err} }

// IsTerm reports whether err was marked by Term.
func IsTerm(err error) bool {
	var t termError
	return errors.As(err, &t)
}

// Match reports whether subject matches the NATS subject pattern filter ('*' one token,
// '>' the rest).
func Match(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}
