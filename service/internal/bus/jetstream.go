package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream names and subjects of the JetStream bus.
const (
	StreamName     = "BITVAULT_EVENTS"
	DeadStreamName = "BITVAULT_DLQ"
	deadPrefix     = "bitvault_dlq."
	// DedupeWindow is the events stream's duplicate window: a message id seen within it is
	// dropped by the server.
	DedupeWindow = 10 * time.Minute
	// StreamMaxAge is how long the events stream keeps a message: the horizon after which it
	// can no longer be redelivered (package retention keeps the ledger longer).
	StreamMaxAge = 7 * 24 * time.Hour

	hdrTenant = "Bitvault-Tenant"
	hdrType   = "Bitvault-Type"
	hdrID     = "Bitvault-Event-Id"
)

// JetStream is the bus of the standard profile, on NATS JetStream: one file-backed stream of
// events (subjects bitvault.>), durable pull consumers, and a dead-letter stream (subjects
// bitvault_dlq.<consumer>). The streams are created or updated at start (NewJetStream),
// the consumers by Subscribe: both idempotently.
type JetStream struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options
	own  bool
}

// ConnectJetStream connects to url (reconnecting forever) and calls NewJetStream; Close
// closes the connection.
func ConnectJetStream(ctx context.Context, url string, opts Options) (*JetStream, error) {
	nc, err := nats.Connect(url, nats.Name("bitvault"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s: %w", url, err)
	}
	b, err := NewJetStream(ctx, nc, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	b.own = true
	return b, nil
}

// NewJetStream creates or updates the streams on nc.
func NewJetStream(ctx context.Context, nc *nats.Conn, opts Options) (*JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamName, Subjects: []string{"bitvault.>"}, Storage: jetstream.FileStorage,
		Duplicates: DedupeWindow, MaxAge: StreamMaxAge,
	}); err != nil {
		return nil, fmt.Errorf("bus: stream %s: %w", StreamName, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: DeadStreamName, Subjects: []string{deadPrefix + ">"}, Storage: jetstream.FileStorage,
		Duplicates: DedupeWindow,
	}); err != nil {
		return nil, fmt.Errorf("bus: stream %s: %w", DeadStreamName, err)
	}
	return &JetStream{nc: nc, js: js, opts: opts.withDefaults()}, nil
}

// Ping fails unless the connection to NATS is up (readiness).
func (b *JetStream) Ping(context.Context) error {
	if s := b.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("nats: %s", s)
	}
	return nil
}

func toMsg(subject string, e Event) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = e.Payload
	m.Header.Set(hdrTenant, e.Tenant)
	m.Header.Set(hdrType, e.Type)
	m.Header.Set(hdrID, e.ID)
	return m
}

// Publish implements Bus: the event id is the JetStream message id (Nats-Msg-Id), so the
// server drops a repeat within DedupeWindow.
func (b *JetStream) Publish(ctx context.Context, e Event) error {
	if err := Validate(e); err != nil {
		return err
	}
	if _, err := b.js.PublishMsg(ctx, toMsg(Subject(e), e), jetstream.WithMsgID(e.ID)); err != nil {
		return fmt.Errorf("bus: publish %s: %w", e.ID, err)
	}
	return nil
}

func fromMsg(m jetstream.Msg) Event {
	h := m.Headers()
	return Event{ID: h.Get(hdrID), Tenant: h.Get(hdrTenant), Type: h.Get(hdrType), Payload: m.Data()}
}

// Subscribe implements Bus with a durable pull consumer (explicit acks, AckWait, no server
// side MaxDeliver: the dead-lettering is done here, so that an exhausted message is never
// silently dropped).
func (b *JetStream) Subscribe(ctx context.Context, name, filter string, h Handler) error {
	cons, err := b.js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
		Durable: name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: b.opts.AckWait, MaxDeliver: -1, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("bus: consumer %s: %w", name, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		b.handle(ctx, name, msg, h)
	}, jetstream.PullMaxMessages(64))
	if err != nil {
		return fmt.Errorf("bus: consume %s: %w", name, err)
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	return nil
}

func (b *JetStream) handle(ctx context.Context, name string, msg jetstream.Msg, h Handler) {
	if ctx.Err() != nil {
		_ = msg.Nak()
		return
	}
	attempt := 1
	if md, err := msg.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	m := Message{Event: fromMsg(msg), Attempt: attempt}
	err := h(ctx, m)
	switch {
	case err == nil:
		_ = msg.DoubleAck(ctx)
	case ctx.Err() != nil:
		_ = msg.Nak()
	case IsTerm(err) || attempt >= b.opts.MaxDeliver:
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, perr := b.js.PublishMsg(dctx, toMsg(deadPrefix+name, m.Event), jetstream.WithMsgID(name+":"+m.ID)); perr != nil {
			// Not dead-lettered: retry later rather than lose it.
			_ = msg.NakWithDelay(b.opts.Backoff(attempt))
			return
		}
		_ = msg.Term()
	default:
		_ = msg.NakWithDelay(b.opts.Backoff(attempt))
	}
}

// Watch delivers to fn the events published from now on whose subject matches filter, in
// this process: a plain NATS subscription on the stream's subjects, with no consumer, no
// acknowledgement and nothing kept on the server, so that every watcher of every process
// gets every event (a durable consumer shared by the replicas would give each event to one
// of them). Delivery is at most once: events published while the connection is down are
// missed. Watch therefore suits only wake-ups backed by another source of truth (the sync
// signal: the change journal). fn runs on the subscription's goroutine, one event at a
// time: it must not block. The subscription is registered with the server when Watch
// returns; stop ends it.
func (b *JetStream) Watch(filter string, fn func(Event)) (stop func(), err error) {
	sub, err := b.nc.Subscribe(filter, func(m *nats.Msg) {
		fn(Event{ID: m.Header.Get(hdrID), Tenant: m.Header.Get(hdrTenant), Type: m.Header.Get(hdrType), Payload: m.Data})
	})
	if err != nil {
		return nil, fmt.Errorf("bus: watch %s: %w", filter, err)
	}
	// A round trip: the server has the subscription once Flush returns, so an event
	// published after Watch returns reaches it.
	if err := b.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("bus: watch %s: %w", filter, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// DeadLetters implements Bus.
func (b *JetStream) DeadLetters(ctx context.Context, name string) ([]Event, error) {
	s, err := b.js.Stream(ctx, DeadStreamName)
	if err != nil {
		return nil, err
	}
	var out []Event
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(deadPrefix+name))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Event{ID: m.Header.Get(hdrID), Tenant: m.Header.Get(hdrTenant), Type: m.Header.Get(hdrType), Payload: m.Data})
		seq = m.Sequence + 1
	}
}

// Close implements Bus.
func (b *JetStream) Close() {
	if b.own {
		b.nc.Close()
	}
}
