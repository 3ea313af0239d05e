package bus

import (
	"context"
	"sync"
	"time"
)

// Mem is the in-process bus of the lite profile: an in-memory stream with durable consumer
// cursors, the same de-duplication, retry with backoff and dead letters as JetStream. It
// keeps nothing across restarts: the outbox is the durable copy (the relay marks rows only
// once published, and in lite the consumers run in the same process). Memory stays bounded:
// events every known consumer has taken are dropped (a consumer first subscribing later
// starts from the oldest event kept), and ids are remembered for DedupeWindow.
type Mem struct {
	opts Options

	mu        sync.Mutex
	events    []Event
	base      int // stream position of events[0]
	seen      map[string]time.Time
	seenOrder []seenID
	consumers map[string]*memConsumer
	dead      map[string][]Event
	wake      chan struct{} // closed and replaced on every publish
	closed    bool
}

type seenID struct {
	id string
	at time.Time
}

type memConsumer struct {
	next    int // stream position of the next new event
	retries []memRetry
	busy    bool
}

type memRetry struct {
	e       Event
	attempt int // deliveries so far
	due     time.Time
}

// NewMem returns an empty in-process bus.
func NewMem(opts Options) *Mem {
	return &Mem{opts: opts.withDefaults(), seen: map[string]time.Time{}, consumers: map[string]*memConsumer{},
		dead: map[string][]Event{}, wake: make(chan struct{})}
}

// Publish implements Bus.
func (b *Mem) Publish(ctx context.Context, e Event) error {
	if err := Validate(e); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	for len(b.seenOrder) > 0 && now.Sub(b.seenOrder[0].at) > DedupeWindow {
		delete(b.seen, b.seenOrder[0].id)
		b.seenOrder = b.seenOrder[1:]
	}
	if _, ok := b.seen[e.ID]; ok {
		return nil
	}
	b.seen[e.ID] = now
	b.seenOrder = append(b.seenOrder, seenID{e.ID, now})
	b.trim()
	b.events = append(b.events, e)
	close(b.wake)
	b.wake = make(chan struct{})
	return nil
}

// Subscribe implements Bus. One subscription of a name runs at a time; another waits.
func (b *Mem) Subscribe(ctx context.Context, name, filter string, h Handler) error {
	for {
		b.mu.Lock()
		c := b.consumers[name]
		if c == nil {
			c = &memConsumer{next: b.base}
			b.consumers[name] = c
		}
		if !c.busy {
			c.busy = true
			b.mu.Unlock()
			break
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer func() {
		b.mu.Lock()
		b.consumers[name].busy = false
		b.mu.Unlock()
	}()
	for {
		m, wait, wake, ok := b.take(name, filter)
		if !ok {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil
			case <-wake:
			case <-timer.C:
			}
			timer.Stop()
			continue
		}
		if ctx.Err() != nil {
			b.requeue(name, m, time.Now(), false)
			return nil
		}
		err := h(ctx, m)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			// The subscriber stopped mid-message: deliver it again to the next one.
			b.requeue(name, m, time.Now(), false)
			return nil
		case IsTerm(err) || m.Attempt >= b.opts.MaxDeliver:
			b.mu.Lock()
			b.dead[name] = append(b.dead[name], m.Event)
			b.mu.Unlock()
		default:
			b.requeue(name, m, time.Now().Add(b.opts.Backoff(m.Attempt)), true)
		}
	}
}

// take returns the next message for the consumer: a due retry first, else the next new
// event matching filter; or how long to wait and a channel closed on the next publish.
func (b *Mem) take(name, filter string) (Message, time.Duration, chan struct{}, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.consumers[name]
	now := time.Now()
	wait := time.Hour
	for i, r := range c.retries {
		if !r.due.After(now) {
			c.retries = append(c.retries[:i], c.retries[i+1:]...)
			return Message{Event: r.e, Attempt: r.attempt + 1}, 0, nil, true
		}
		wait = min(wait, r.due.Sub(now))
	}
	for c.next < b.base+len(b.events) {
		e := b.events[c.next-b.base]
		c.next++
		if Match(filter, Subject(e)) {
			return Message{Event: e, Attempt: 1}, 0, nil, true
		}
	}
	return Message{}, wait, b.wake, false
}

// trim drops the events every consumer has taken, once there are many (b.mu held).
func (b *Mem) trim() {
	if len(b.events) < 1024 || len(b.consumers) == 0 {
		return
	}
	low := b.base + len(b.events)
	for _, c := range b.consumers {
		low = min(low, c.next)
	}
	if drop := low - b.base; drop >= len(b.events)/2 {
		b.events = append([]Event(nil), b.events[drop:]...)
		b.base = low
	}
}

// requeue schedules m again; counted says whether the failed delivery counts.
func (b *Mem) requeue(name string, m Message, due time.Time, counted bool) {
	attempt := m.Attempt
	if !counted {
		attempt--
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.consumers[name]
	c.retries = append(c.retries, memRetry{e: m.Event, attempt: attempt, due: due})
}

// DeadLetters implements Bus.
func (b *Mem) DeadLetters(_ context.Context, name string) ([]Event, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Event(nil), b.dead[name]...), nil
}

// Close implements Bus.
func (b *Mem) Close() {}

// Len returns the number of events kept.
func (b *Mem) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.events)
}
