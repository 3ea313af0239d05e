package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/audit"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/ratelimit"
)

// testLimits: a one-minute window, 3 failures per email and address, 5 per email, 8 per
// address.
var testLimits = ratelimit.Config{Window: time.Minute, PerAccountIP: 3, PerAccount: 5, PerIP: 8}

func limited(c *Config) { c.Limits = testLimits }

// attempt is one login of a rate-limit scenario.
type attempt struct {
	email, password, ip string
	// want: "ok", "invalid" (401) or "locked" (429).
	want string
}

const (
	owner  = "owner@acme.example"
	nobody = "nobody@acme.example"
	wrong  = "wrong-password-1"
)

func (f *fixture) try(t *testing.T, s *Service, a attempt) error {
	t.Helper()
	_, err := s.Login(context.Background(), Credentials{Tenant: "acme", Email: a.email, Password: a.password, ClientIP: a.ip})
	var got string
	switch {
	case err == nil:
		got = "ok"
	case errors.Is(err, ErrInvalidCredentials):
		got = "invalid"
	case ratelimit.IsLocked(err):
		got = "locked"
	default:
		t.Fatalf("login %+v: %v", a, err)
	}
	if got != a.want {
		t.Fatalf("login %s from %q: %s (%v), want %s", a.email, a.ip, got, err, a.want)
	}
	return err
}

func (f *fixture) auditCount(t *testing.T, eventType string) int {
	t.Helper()
	var n int
	if err := f.super.QueryRow(context.Background(), "SELECT count(*) FROM audit_log WHERE event_type = $1", eventType).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// fails is n wrong-password attempts of email from ip, each answered want.
func fails(n int, email, ip, want string) []attempt {
	out := make([]attempt, n)
	for i := range out {
		out[i] = attempt{email, wrong, ip, want}
	}
	return out
}

func seq(parts ...[]attempt) []attempt {
	var out []attempt
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestLoginRateLimit plays login sequences against the limits (testLimits) on a fresh
// tenant each: the answers, the argon2id verifications (none while locked), and the
// lockout audit rows (one per engaged lock, however many rejections follow).
func TestLoginRateLimit(t *testing.T) {
	tests := []struct {
		name string
		// before runs first, then the clock moves by wait, then after.
		before []attempt
		wait   time.Duration
		after  []attempt
		// wantLocks is the number of auth.login.locked rows at the end.
		wantLocks int
	}{
		{
			name:      "locked after 3 failures, even with the right password",
			before:    fails(3, owner, "10.0.0.1", "invalid"),
			after:     seq(fails(2, owner, "10.0.0.1", "locked"), []attempt{{owner, ownerPassword, "10.0.0.1", "locked"}}),
			wantLocks: 1,
		},
		{
			name:      "an unknown email is locked alike",
			before:    fails(3, nobody, "10.0.0.1", "invalid"),
			after:     []attempt{{nobody, wrong, "10.0.0.1", "locked"}, {nobody, ownerPassword, "10.0.0.1", "locked"}},
			wantLocks: 1,
		},
		{
			name:      "the user from another address is not locked out",
			before:    fails(3, owner, "10.0.0.1", "invalid"),
			after:     []attempt{{owner, wrong, "10.0.0.1", "locked"}, {owner, ownerPassword, "10.0.0.2", "ok"}},
			wantLocks: 1,
		},
		{
			name:   "a success resets the email's counters",
			before: seq(fails(2, owner, "10.0.0.1", "invalid"), []attempt{{owner, ownerPassword, "10.0.0.1", "ok"}}),
			after:  seq(fails(2, owner, "10.0.0.1", "invalid"), []attempt{{owner, ownerPassword, "10.0.0.1", "ok"}}),
		},
		{
			name:      "the lock ends with the window",
			before:    seq(fails(3, owner, "10.0.0.1", "invalid"), fails(1, owner, "10.0.0.1", "locked")),
			wait:      time.Minute,
			after:     []attempt{{owner, ownerPassword, "10.0.0.1", "ok"}},
			wantLocks: 1,
		},
		{
			name:      "still locked just before the window ends",
			before:    fails(3, owner, "10.0.0.1", "invalid"),
			wait:      time.Minute - time.Second,
			after:     []attempt{{owner, ownerPassword, "10.0.0.1", "locked"}},
			wantLocks: 1,
		},
		{
			name: "the per-email ceiling locks every address",
			before: seq(fails(2, owner, "10.0.0.1", "invalid"), fails(2, owner, "10.0.0.2", "invalid"),
				fails(1, owner, "10.0.0.3", "invalid")),
			after:     []attempt{{owner, ownerPassword, "10.0.0.4", "locked"}, {owner, ownerPassword, "", "locked"}},
			wantLocks: 1,
		},
		{
			name: "the per-address limit spans emails",
			before: seq(fails(2, "a@acme.example", "10.0.0.9", "invalid"), fails(2, "b@acme.example", "10.0.0.9", "invalid"),
				fails(2, "c@acme.example", "10.0.0.9", "invalid"), fails(2, "d@acme.example", "10.0.0.9", "invalid")),
			after:     []attempt{{owner, ownerPassword, "10.0.0.9", "locked"}, {owner, ownerPassword, "10.0.0.10", "ok"}},
			wantLocks: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, limited)
			f.tenant(t, "acme")
			for _, a := range tt.before {
				f.try(t, f.s, a)
			}
			f.clock.Advance(tt.wait)
			for _, a := range tt.after {
				before := f.s.verifies.Load()
				err := f.try(t, f.s, a)
				if n := f.s.verifies.Load() - before; a.want == "locked" && n != 0 {
					t.Errorf("a locked login computed %d hashes, want none", n)
				}
				if le, ok := errors.AsType[*ratelimit.LockedError](err); ok {
					if le.Wait <= 0 || le.Wait > time.Minute-tt.wait {
						t.Errorf("retry after %s, want within the window's rest %s", le.Wait, time.Minute-tt.wait)
					}
					if c, _ := errors.AsType[*apierror.Coded](err); c == nil || c.Code != apierror.CodeRateLimited || !strings.Contains(c.Message, "try again in") {
						t.Errorf("coded error %+v, want rate_limited with the wait", c)
					}
				}
			}
			if n := f.auditCount(t, audit.LoginLocked); n != tt.wantLocks {
				t.Errorf("%d %s audit rows, want %d", n, audit.LoginLocked, tt.wantLocks)
			}
		})
	}
}

// TestLoginLockedAnswersAlike: once locked, a real email and an unknown one get the same
// error, and neither computes a hash.
func TestLoginLockedAnswersAlike(t *testing.T) {
	f := newFixture(t, limited)
	f.tenant(t, "acme")
	var errs []error
	for _, email := range []string{owner, nobody} {
		for _, a := range fails(3, email, "10.0.0.1", "invalid") {
			f.try(t, f.s, a)
		}
		before := f.s.verifies.Load()
		errs = append(errs, f.try(t, f.s, attempt{email, wrong, "10.0.0.1", "locked"}))
		if n := f.s.verifies.Load() - before; n != 0 {
			t.Errorf("%s: %d hashes while locked", email, n)
		}
	}
	if errs[0].Error() != errs[1].Error() {
		t.Errorf("locked answers differ: %q vs %q", errs[0], errs[1])
	}
}

// TestLoginRateLimitConcurrent: wrong passwords sent all at once, more than the limit, are
// counted before their hashes: at most PerAccountIP of them are hashed (401), the others
// are refused (429) without a hash, and the lockout is audited once.
func TestLoginRateLimitConcurrent(t *testing.T) {
	f := newFixture(t, limited)
	f.tenant(t, "acme")
	before := f.s.verifies.Load()
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = f.s.Login(context.Background(), Credentials{Tenant: "acme", Email: owner, Password: wrong, ClientIP: "10.0.0.1"})
		})
	}
	wg.Wait()
	invalid, locked := 0, 0
	for _, err := range errs {
		switch {
		case errors.Is(err, ErrInvalidCredentials):
			invalid++
		case ratelimit.IsLocked(err):
			locked++
		default:
			t.Errorf("login: %v", err)
		}
	}
	if invalid != testLimits.PerAccountIP || locked != n-testLimits.PerAccountIP {
		t.Errorf("%d invalid, %d locked; want %d and %d", invalid, locked, testLimits.PerAccountIP, n-testLimits.PerAccountIP)
	}
	if h := f.s.verifies.Load() - before; h > int64(testLimits.PerAccountIP) {
		t.Errorf("%d hashes computed, want at most %d", h, testLimits.PerAccountIP)
	}
	if got := f.auditCount(t, audit.LoginLocked); got != 1 {
		t.Errorf("%d lockout audit rows, want 1", got)
	}
	f.try(t, f.s, attempt{owner, ownerPassword, "10.0.0.1", "locked"})
}

// TestLoginRateLimitAcrossReplicas: two Services on the same database (two bitvaultd
// replicas) share the counters: failures on either add up, the lock holds on both, and the
// lockout is audited once.
func TestLoginRateLimitAcrossReplicas(t *testing.T) {
	f := newFixture(t, limited)
	f.tenant(t, "acme")
	pool, err := db.Open(context.Background(), f.db.AppDSN, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	replica, err := New(pool, f.s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	replicas := []*Service{f.s, replica}
	for i, a := range fails(3, owner, "10.0.0.1", "invalid") {
		f.try(t, replicas[i%2], a)
	}
	for _, s := range replicas {
		before := s.verifies.Load()
		f.try(t, s, attempt{owner, ownerPassword, "10.0.0.1", "locked"})
		if s.verifies.Load() != before {
			t.Error("a locked login computed a hash")
		}
	}
	if n := f.auditCount(t, audit.LoginLocked); n != 1 {
		t.Errorf("%d lockout audit rows, want 1", n)
	}
	f.clock.Advance(time.Minute)
	f.try(t, replica, attempt{owner, ownerPassword, "10.0.0.1", "ok"})
}

// TestHTTPLoginRateLimit: over HTTP the lock is a 429 rate_limited with Retry-After and the
// wait in the message; the client address is the connection's, so X-Forwarded-For does not
// buy fresh attempts.
func TestHTTPLoginRateLimit(t *testing.T) {
	f := newFixture(t, limited)
	f.tenant(t, "acme")
	a := newAPI(t, f)
	login := func(password, forwardedFor string) response {
		t.Helper()
		b, _ := json.Marshal(jsonObj{"tenant": "acme", "email": owner, "password": password})
		req, err := http.NewRequest("POST", a.url+"/v1/auth/login", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", forwardedFor)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, header: resp.Header, body: body}
	}
	for i := range 3 {
		if r := login(wrong, "192.0.2."+string(rune('1'+i))); r.status != 401 || r.header.Get("Retry-After") != "" {
			t.Fatalf("failure %d = %d (Retry-After %q), want 401", i, r.status, r.header.Get("Retry-After"))
		}
	}
	f.clock.Advance(15 * time.Second)
	r := login(ownerPassword, "192.0.2.200")
	if r.status != 429 || r.errorCode(t) != apierror.CodeRateLimited || r.header.Get("Retry-After") != "45" {
		t.Fatalf("locked login = %d %s (Retry-After %q), want 429 rate_limited, Retry-After 45", r.status, r.body, r.header.Get("Retry-After"))
	}
	var e apierror.Error
	r.decode(t, &e)
	if e.Message != "too many failed login attempts: try again in 45 s" {
		t.Errorf("message %q", e.Message)
	}
	f.clock.Advance(45 * time.Second)
	if r := login(ownerPassword, ""); r.status != 200 {
		t.Errorf("after the window: %d %s, want 200", r.status, r.body)
	}
}

// TestLoadConfigLimits: the brute-force variables are read and validated with the identity
// settings.
func TestLoadConfigLimits(t *testing.T) {
	key := "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="
	tests := []struct {
		name    string
		env     map[string]string
		want    ratelimit.Config
		wantErr string
	}{
		{"defaults", map[string]string{EnvTokenKey: key}, ratelimit.Config{Window: ratelimit.DefaultWindow, PerAccountIP: 5, PerAccount: 50, PerIP: 50}, ""},
		{"set", map[string]string{EnvTokenKey: key, ratelimit.EnvWindow: "5m", ratelimit.EnvPerAccountIP: "10", ratelimit.EnvPerAccount: "100", ratelimit.EnvPerIP: "20"},
			ratelimit.Config{Window: 5 * time.Minute, PerAccountIP: 10, PerAccount: 100, PerIP: 20}, ""},
		{"invalid", map[string]string{EnvTokenKey: key, ratelimit.EnvPerAccount: "-1"}, ratelimit.Config{}, ratelimit.EnvPerAccount},
		{"invalid with a missing key", map[string]string{ratelimit.EnvWindow: "forever"}, ratelimit.Config{}, ratelimit.EnvWindow},
		{"ceiling below the per-address limit", map[string]string{EnvTokenKey: key, ratelimit.EnvPerAccountIP: "60"}, ratelimit.Config{}, ratelimit.EnvPerAccountIP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to name %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(cfg.Limits, tt.want) {
				t.Fatalf("limits = %+v, %v; want %+v", cfg.Limits, err, tt.want)
			}
		})
	}
}
