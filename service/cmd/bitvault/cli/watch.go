package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/bitvault/bitvault/service/internal/client"
)

// Timings of sync --watch.
const (
	// watchWait is how long each long poll waits on the server for a change.
	watchWait = 30 * time.Second
	// watchMinRetry and watchMaxRetry bound the backoff after a failure the server may
	// recover from (unreachable, 5xx, 429).
	watchMinRetry = time.Second
	watchMaxRetry = 30 * time.Second
	// watchPause separates two empty answers that came early (a draining server answers
	// long polls at once): no busy loop.
	watchPause = time.Second
)

// watch runs a sync pass, then long-polls the server for changes after the cursor and runs
// a pass (printing what it applied) whenever there are some, until the context ends
// (Ctrl-C): it then returns nil, the state saved as of the last pass. The long poll only
// says that something changed: the pass pulls the changes from the cursor as a plain sync
// does, so a change is never applied twice nor missed.
func (s *syncer) watch(deviceName string) error {
	ctx := s.a.ctx
	retry := watchMinRetry
	// goOn waits out a transient failure (true); otherwise the watch ends with err, or nil
	// when the context ended.
	goOn := func(err error) (bool, error) {
		if ctx.Err() != nil {
			return false, nil
		}
		if !transient(err) {
			return false, err
		}
		fmt.Fprintf(s.a.stderr, "bitvault sync: warning: %v (retrying in %s)\n", err, retry)
		if !sleep(ctx, retry) {
			return false, nil
		}
		retry = min(2*retry, watchMaxRetry)
		return true, nil
	}
	pass := true
	for {
		if pass {
			if err := s.run(deviceName); err != nil {
				if ok, err := goOn(err); !ok {
					return err
				}
				continue
			}
			pass, retry = false, watchMinRetry
		}
		start := time.Now()
		page, err := s.c.WaitChanges(ctx, s.st.Cursor, 1, watchWait)
		switch {
		case ctx.Err() != nil:
			return nil
		case client.IsCode(err, client.CodeCursorStale):
			pass = true // the pass resyncs fully
		case err != nil:
			if ok, err := goOn(err); !ok {
				return err
			}
		case len(page.Changes) > 0:
			pass, retry = true, watchMinRetry
		case time.Since(start) < watchWait/2:
			if !sleep(ctx, watchPause) {
				return nil
			}
		}
	}
}

// transient reports whether err may go away by itself: the server unreachable (a network
// error, a timeout, a connection cut), or answering 5xx or 429. Anything else (refused
// credentials, a local file error) ends the watch.
func transient(err error) bool {
	if e, ok := errors.AsType[*client.Error](err); ok {
		return e.StatusCode >= http.StatusInternalServerError || e.StatusCode == http.StatusTooManyRequests
	}
	_, isNet := errors.AsType[net.Error](err)
	return isNet || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
