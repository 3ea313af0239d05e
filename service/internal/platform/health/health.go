// Package health serves liveness (/healthz) and readiness (/readyz) with named checks and a draining switch.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Paths of the probe endpoints.
const (
	PathLiveness  = "/healthz"
	PathReadiness = "/readyz"
)

// Status values used in the JSON bodies.
const (
	StatusOK       = "ok"
	StatusFail     = "fail"
	StatusDraining = "draining"
	// StatusNotConfigured marks a dependency deliberately switched off by configuration: it
	// does not make the process unready.
	StatusNotConfigured = "not_configured"
)

// DefaultCheckTimeout bounds each readiness check when New is given zero.
const DefaultCheckTimeout = 2 * time.Second

// Check reports whether one dependency is usable; a nil error means ready.
type Check func(ctx context.Context) error

// Report is the JSON body of /readyz (and, without checks, of /healthz).
type Report struct {
	Status string                 `json:"status"`
	Checks map[string]CheckResult `json:"checks"`
}

// CheckResult is the outcome of one named check.
type CheckResult struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Detail says why a dependency is not configured, or what a passing check reports.
	Detail string `json:"detail,omitempty"`
}

// notConfigured is the error of a NotConfigured check.
type notConfigured struct{ reason string }

func (e *notConfigured) Error() string { return "not configured: " + e.reason }

// NotConfigured is a check for a dependency that configuration switched off on purpose: it is
// reported as "not_configured" with reason and does not fail readiness.
func NotConfigured(reason string) Check {
	return func(context.Context) error { return &notConfigured{reason: reason} }
}

// okDetail is the error of a passing check that reports a detail (see OK).
type okDetail struct{ detail string }

func (e *okDetail) Error() string { return "ok: " + e.detail }

// OK is what a check returns to pass with a detail shown in the report (e.g. a backlog).
func OK(detail string) error { return &okDetail{detail: detail} }

// Checker holds the readiness checks and the draining state. The zero value is not usable;
// use New.
type Checker struct {
	timeout  time.Duration
	draining atomic.Bool

	mu     sync.RWMutex
	checks map[string]Check
}

// New returns a Checker whose checks each get at most timeout (DefaultCheckTimeout if zero).
func New(timeout time.Duration) *Checker {
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	return &Checker{timeout: timeout, checks: map[string]Check{}}
}

// Add registers a named readiness check, replacing one with the same name.
func (c *Checker) Add(name string, check Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks[name] = check
}

// StartDraining makes /readyz answer 503 from now on; it is called on SIGTERM so that traffic
// stops arriving before the server closes. /healthz is not affected.
func (c *Checker) StartDraining() { c.draining.Store(true) }

// Draining reports whether StartDraining was called.
func (c *Checker) Draining() bool { return c.draining.Load() }

// Ready runs every check concurrently and returns the report and whether the process is ready.
// A draining Checker is never ready and does not run its checks.
func (c *Checker) Ready(ctx context.Context) (Report, bool) {
	if c.Draining() {
		return Report{Status: StatusDraining, Checks: map[string]CheckResult{}}, false
	}
	c.mu.RLock()
	names := make([]string, 0, len(c.checks))
	for name := range c.checks {
		names = append(names, name)
	}
	sort.Strings(names)
	checks := make([]Check, len(names))
	for i, name := range names {
		checks[i] = c.checks[name]
	}
	c.mu.RUnlock()

	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, check := range checks {
		wg.Go(func() { errs[i] = c.run(ctx, check) })
	}
	wg.Wait()

	rep := Report{Status: StatusOK, Checks: make(map[string]CheckResult, len(names))}
	for i, name := range names {
		if nc, ok := errors.AsType[*notConfigured](errs[i]); ok {
			rep.Checks[name] = CheckResult{Status: StatusNotConfigured, Detail: nc.reason}
			continue
		}
		if ok, isOK := errors.AsType[*okDetail](errs[i]); isOK {
			rep.Checks[name] = CheckResult{Status: StatusOK, Detail: ok.detail}
			continue
		}
		if errs[i] != nil {
			rep.Status = StatusFail
			rep.Checks[name] = CheckResult{Status: StatusFail, Error: errs[i].Error()}
			continue
		}
		rep.Checks[name] = CheckResult{Status: StatusOK}
	}
	// Draining may have started while the checks ran.
	if c.Draining() {
		rep.Status = StatusDraining
	}
	return rep, rep.Status == StatusOK
}

// run calls one check with the per-check timeout; a check that ignores its context is
// abandoned (and reported as failed) when the timeout expires.
func (c *Checker) run(ctx context.Context, check Check) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- check(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Liveness answers 200 {"status":"ok"} as long as the process serves HTTP.
func (c *Checker) Liveness() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, Report{Status: StatusOK, Checks: map[string]CheckResult{}})
	})
}

// Readiness answers 200 with the check report when every check passes, 503 otherwise or while
// draining.
func (c *Checker) Readiness() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep, ok := c.Ready(r.Context())
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, rep)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
