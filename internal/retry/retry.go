// Package retry runs a call again, with exponential backoff, while it fails
// in a way worth retrying (a network error, a 5xx or 429 answer), a bounded
// number of times.
package retry

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Policy bounds the attempts: at most Attempts calls, waiting Base, 2×Base,
// 4×Base… (never more than Max) between them.
type Policy struct {
	Attempts int
	Base     time.Duration
	Max      time.Duration
}

// Default is what the Sigstore clients use: 4 attempts over ~7 s.
var Default = Policy{Attempts: 4, Base: time.Second, Max: 8 * time.Second}

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Do returns it at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Do calls fn until it succeeds, returns a Permanent error, the context ends,
// or the attempts run out; what names the call in the final error. Each
// failed attempt is passed to notify (may be nil) before the wait.
func Do(ctx context.Context, p Policy, what string, notify func(attempt int, err error, wait time.Duration), fn func(context.Context) error) error {
	if p.Attempts < 1 {
		p.Attempts = 1
	}
	wait := p.Base
	var err error
	for attempt := 1; ; attempt++ {
		err = fn(ctx)
		if err == nil {
			return nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return perm.err
		}
		if attempt >= p.Attempts {
			break
		}
		if notify != nil {
			notify(attempt, err, wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(wait):
		}
		wait *= 2
		if p.Max > 0 && wait > p.Max {
			wait = p.Max
		}
	}
	return fmt.Errorf("%s: gave up after %d attempts: %w", what, p.Attempts, err)
}

// HTTPStatus classifies an HTTP status: nil for 2xx, a retryable error for
// 429 and 5xx, a Permanent one otherwise.
func HTTPStatus(code int, err error) error {
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == 429 || code >= 500:
		return err
	default:
		return Permanent(err)
	}
}
