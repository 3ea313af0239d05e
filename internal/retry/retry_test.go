package retry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDo(t *testing.T) {
	fast := Policy{Attempts: 3, Base: time.Millisecond, Max: 2 * time.Millisecond}
	boom := errors.New("boom")
	for _, tc := range []struct {
		name      string
		failures  int   // calls that fail before success
		err       error // what a failing call returns
		wantCalls int
		wantErr   string
	}{
		{"first try", 0, boom, 1, ""},
		{"succeeds on the last attempt", 2, boom, 3, ""},
		{"gives up", 5, boom, 3, "gave up after 3 attempts: boom"},
		{"permanent stops at once", 5, Permanent(boom), 1, "boom"},
		{"http 503 retried", 5, HTTPStatus(503, boom), 3, "gave up"},
		{"http 403 not retried", 5, HTTPStatus(403, boom), 1, "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls, notified := 0, 0
			err := Do(context.Background(), fast, "op", func(int, error, time.Duration) { notified++ }, func(context.Context) error {
				calls++
				if calls <= tc.failures {
					return tc.err
				}
				return nil
			})
			if calls != tc.wantCalls {
				t.Errorf("calls = %d, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			if tc.wantErr != "" && !errors.Is(err, boom) {
				t.Errorf("err %v does not wrap the cause", err)
			}
			if notified != calls-1 { // one notice before every wait
				t.Errorf("notified %d times for %d calls", notified, calls)
			}
		})
	}
}

func TestDoStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Do(ctx, Policy{Attempts: 10, Base: time.Hour}, "op", func(int, error, time.Duration) { cancel() }, func(context.Context) error {
		calls++
		return errors.New("down")
	})
	if calls != 1 || !errors.Is(err, context.Canceled) {
		t.Fatalf("calls=%d err=%v, want 1 call and context.Canceled", calls, err)
	}
}
