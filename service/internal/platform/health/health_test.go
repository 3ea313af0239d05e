package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

func ok(context.Context) error { return nil }

func failing(context.Context) error { return errors.New("db down") }

func hanging(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

func stubborn(context.Context) error { time.Sleep(time.Second); return nil }

func TestReadiness(t *testing.T) {
	tests := []struct {
		name     string
		checks   map[string]Check
		draining bool
		wantCode int
		want     Report
	}{
		{
			name:     "no checks",
			wantCode: http.StatusOK,
			want:     Report{Status: StatusOK, Checks: map[string]CheckResult{}},
		},
		{
			name:     "all pass",
			checks:   map[string]Check{"a": ok, "b": ok},
			wantCode: http.StatusOK,
			want:     Report{Status: StatusOK, Checks: map[string]CheckResult{"a": {Status: StatusOK}, "b": {Status: StatusOK}}},
		},
		{
			name:     "one fails",
			checks:   map[string]Check{"a": ok, "db": failing},
			wantCode: http.StatusServiceUnavailable,
			want:     Report{Status: StatusFail, Checks: map[string]CheckResult{"a": {Status: StatusOK}, "db": {Status: StatusFail, Error: "db down"}}},
		},
		{
			name:     "not configured does not fail",
			checks:   map[string]Check{"a": ok, "database": NotConfigured("BITVAULT_DB=none")},
			wantCode: http.StatusOK,
			want:     Report{Status: StatusOK, Checks: map[string]CheckResult{"a": {Status: StatusOK}, "database": {Status: StatusNotConfigured, Detail: "BITVAULT_DB=none"}}},
		},
		{
			name:     "check honouring its timeout",
			checks:   map[string]Check{"slow": hanging},
			wantCode: http.StatusServiceUnavailable,
			want:     Report{Status: StatusFail, Checks: map[string]CheckResult{"slow": {Status: StatusFail, Error: context.DeadlineExceeded.Error()}}},
		},
		{
			name:     "check ignoring its timeout",
			checks:   map[string]Check{"slow": stubborn},
			wantCode: http.StatusServiceUnavailable,
			want:     Report{Status: StatusFail, Checks: map[string]CheckResult{"slow": {Status: StatusFail, Error: context.DeadlineExceeded.Error()}}},
		},
		{
			name:     "draining",
			checks:   map[string]Check{"a": ok},
			draining: true,
			wantCode: http.StatusServiceUnavailable,
			want:     Report{Status: StatusDraining, Checks: map[string]CheckResult{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(50 * time.Millisecond)
			for name, check := range tt.checks {
				c.Add(name, check)
			}
			if tt.draining {
				c.StartDraining()
			}
			rec := httptest.NewRecorder()
			c.Readiness().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathReadiness, nil))
			if rec.Code != tt.wantCode {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantCode)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var got Report
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("body = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLivenessIgnoresChecksAndDraining(t *testing.T) {
	c := New(0)
	c.Add("db", failing)
	c.StartDraining()
	rec := httptest.NewRecorder()
	c.Liveness().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathLiveness, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200", rec.Code)
	}
	if got, want := rec.Body.String(), `{"status":"ok","checks":{}}`+"\n"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
}
