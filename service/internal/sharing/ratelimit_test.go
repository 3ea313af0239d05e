package sharing_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/audit"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/ratelimit"
	"github.com/bitvault/bitvault/service/internal/sharing"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
)

// countingHasher counts the password verifications of the identity hasher it wraps.
type countingHasher struct {
	sharing.PasswordHasher
	verifies atomic.Int64
}

func (h *countingHasher) VerifyPassword(ctx context.Context, password, encoded string) (bool, error) {
	h.verifies.Add(1)
	return h.PasswordHasher.VerifyPassword(ctx, password, encoded)
}

// linkLimits: a one-minute window, 3 wrong passwords per link and address, 5 per link, 6
// per address.
var linkLimits = ratelimit.Config{Window: time.Minute, PerAccountIP: 3, PerAccount: 5, PerIP: 6}

const linkPassword = "open sesame"

type limitedEnv struct {
	*apitest.Env
	hasher   *countingHasher
	replicas []*sharing.Service
	tokens   []string // four password-protected links to one file
}

// newLimitedEnv is a tenant with four password-protected links, served by two sharing
// Services on the same database (two replicas), both counting their hashes.
func newLimitedEnv(t *testing.T) *limitedEnv {
	t.Helper()
	e := &limitedEnv{Env: apitest.New(t)}
	e.hasher = &countingHasher{PasswordHasher: e.Identity}
	for range 2 {
		svc, err := sharing.New(e.Pool, e.hasher, e.Store, sharing.Config{Now: e.Clock.Now, Limits: linkLimits}, e.Logger)
		if err != nil {
			t.Fatal(err)
		}
		e.replicas = append(e.replicas, svc)
	}
	e.replicas[0].Routes(e.Mux, e.Auth)
	_, member, _ := e.Tenant("acme")
	f := e.Upload(member, "/a.txt", []byte("a"))
	for range 4 {
		var l createdLink
		e.Want(e.Do("POST", "/v1/nodes/"+f.Node.ID+"/links", member.Token, map[string]any{"password": linkPassword}), 201, "").Decode(t, &l)
		e.tokens = append(e.tokens, l.Token)
	}
	return e
}

// try is one resolution of a rate-limit scenario.
type try struct {
	link     int // index into tokens
	password string
	ip       string
	replica  int
	// want: "ok", "wrong" (401), "required" (401, no password) or "locked" (429).
	want string
}

func (e *limitedEnv) resolve(t *testing.T, tr try) error {
	t.Helper()
	_, err := e.replicas[tr.replica].ResolveLink(context.Background(), e.tokens[tr.link], tr.password, tr.ip)
	var got string
	switch {
	case err == nil:
		got = "ok"
	case errors.Is(err, sharing.ErrWrongPassword):
		got = "wrong"
	case errors.Is(err, sharing.ErrPasswordRequired):
		got = "required"
	case ratelimit.IsLocked(err):
		got = "locked"
	default:
		t.Fatalf("resolve %+v: %v", tr, err)
	}
	if got != tr.want {
		t.Fatalf("resolve %+v: %s (%v), want %s", tr, got, err, tr.want)
	}
	return err
}

func wrongs(n, link int, ip, want string) []try {
	out := make([]try, n)
	for i := range out {
		out[i] = try{link: link, password: "not the password", ip: ip, replica: i % 2, want: want}
	}
	return out
}

func tries(parts ...[]try) []try {
	var out []try
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestLinkPasswordRateLimit plays sequences of link resolutions (alternating between the
// two replicas) against linkLimits: the answers, no hash while locked, and one audit row per
// engaged lock.
func TestLinkPasswordRateLimit(t *testing.T) {
	right := func(link int, ip, want string) []try {
		return []try{{link: link, password: linkPassword, ip: ip, replica: 1, want: want}}
	}
	tests := []struct {
		name      string
		before    []try
		wait      time.Duration
		after     []try
		wantLocks int
	}{
		{"locked after 3 wrong passwords, the right one too", wrongs(3, 0, "10.0.0.1", "wrong"), 0,
			tries(right(0, "10.0.0.1", "locked"), wrongs(2, 0, "10.0.0.1", "locked")), 1},
		{"another address is not locked out", wrongs(3, 0, "10.0.0.1", "wrong"), 0,
			right(0, "10.0.0.2", "ok"), 1},
		{"another link is not locked", wrongs(3, 0, "10.0.0.1", "wrong"), 0,
			right(1, "10.0.0.1", "ok"), 1},
		{"the per-link ceiling locks every address", tries(wrongs(2, 0, "10.0.0.1", "wrong"), wrongs(2, 0, "10.0.0.2", "wrong"), wrongs(1, 0, "10.0.0.3", "wrong")), 0,
			tries(right(0, "10.0.0.4", "locked"), right(0, "", "locked")), 1},
		{"the per-address limit spans links", tries(wrongs(2, 0, "10.0.0.1", "wrong"), wrongs(2, 1, "10.0.0.1", "wrong"), wrongs(2, 2, "10.0.0.1", "wrong")), 0,
			tries(right(3, "10.0.0.1", "locked"), right(3, "10.0.0.2", "ok")), 1},
		{"the lock ends with the window", wrongs(3, 0, "10.0.0.1", "wrong"), time.Minute,
			right(0, "10.0.0.1", "ok"), 1},
		{"a right password resets the link's counters", tries(wrongs(2, 0, "10.0.0.1", "wrong"), right(0, "10.0.0.1", "ok")), 0,
			tries(wrongs(2, 0, "10.0.0.1", "wrong"), right(0, "10.0.0.1", "ok")), 0},
		{"no password is no guess", []try{{0, "", "10.0.0.1", 0, "required"}, {0, "", "10.0.0.1", 1, "required"}, {0, "", "10.0.0.1", 0, "required"}, {0, "", "10.0.0.1", 1, "required"}}, 0,
			right(0, "10.0.0.1", "ok"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLimitedEnv(t)
			for _, tr := range tt.before {
				e.resolve(t, tr)
			}
			e.Clock.Advance(tt.wait)
			for _, tr := range tt.after {
				before := e.hasher.verifies.Load()
				err := e.resolve(t, tr)
				if n := e.hasher.verifies.Load() - before; tr.want == "locked" && n != 0 {
					t.Errorf("a locked link checked the password %d times, want none", n)
				}
				if le, ok := errors.AsType[*ratelimit.LockedError](err); ok && (le.Wait <= 0 || le.Wait > time.Minute) {
					t.Errorf("retry after %s", le.Wait)
				}
			}
			var n int
			if err := e.Super.QueryRow(context.Background(), "SELECT count(*) FROM audit_log WHERE event_type = $1", audit.LinkPasswordLocked).Scan(&n); err != nil || n != tt.wantLocks {
				t.Errorf("%d %s audit rows (%v), want %d", n, audit.LinkPasswordLocked, err, tt.wantLocks)
			}
		})
	}
}

// TestLinkPasswordRateLimitConcurrent: wrong passwords sent all at once, more than the
// limit and spread over both replicas, are counted before their hashes: at most
// PerAccountIP of them are checked (401), the others refused (429) unchecked, and the
// lockout is audited once.
func TestLinkPasswordRateLimitConcurrent(t *testing.T) {
	e := newLimitedEnv(t)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = e.replicas[i%2].ResolveLink(context.Background(), e.tokens[0], "not the password", "10.0.0.1")
		})
	}
	wg.Wait()
	wrong, locked := 0, 0
	for _, err := range errs {
		switch {
		case errors.Is(err, sharing.ErrWrongPassword):
			wrong++
		case ratelimit.IsLocked(err):
			locked++
		default:
			t.Errorf("resolve: %v", err)
		}
	}
	if wrong != linkLimits.PerAccountIP || locked != n-linkLimits.PerAccountIP {
		t.Errorf("%d wrong, %d locked; want %d and %d", wrong, locked, linkLimits.PerAccountIP, n-linkLimits.PerAccountIP)
	}
	if h := e.hasher.verifies.Load(); h > int64(linkLimits.PerAccountIP) {
		t.Errorf("%d password checks, want at most %d", h, linkLimits.PerAccountIP)
	}
	var audits int
	if err := e.Super.QueryRow(context.Background(), "SELECT count(*) FROM audit_log WHERE event_type = $1", audit.LinkPasswordLocked).Scan(&audits); err != nil || audits != 1 {
		t.Errorf("%d %s audit rows (%v), want 1", audits, audit.LinkPasswordLocked, err)
	}
	e.resolve(t, try{link: 0, password: linkPassword, ip: "10.0.0.1", want: "locked"})
}

// TestHTTPLinkPasswordRateLimit: over HTTP a locked link answers 429 rate_limited with
// Retry-After and the wait in the message, for GET and POST alike.
func TestHTTPLinkPasswordRateLimit(t *testing.T) {
	e := newLimitedEnv(t)
	token := e.tokens[0]
	for range 3 {
		e.Want(e.Do("GET", "/v1/links/"+token, "", nil, sharing.HeaderLinkPassword, "not the password"), 401, apierror.CodeUnauthenticated)
	}
	e.Clock.Advance(20 * time.Second)
	for _, r := range []apitest.Response{
		e.Do("GET", "/v1/links/"+token, "", nil, sharing.HeaderLinkPassword, linkPassword),
		e.Do("POST", "/v1/links/"+token, "", map[string]any{"password": linkPassword}),
	} {
		e.Want(r, http.StatusTooManyRequests, apierror.CodeRateLimited)
		var body apierror.Error
		r.Decode(t, &body)
		if r.Header.Get("Retry-After") != "40" || body.Message != "too many wrong passwords for this link: try again in 40 s" {
			t.Errorf("Retry-After %q, message %q; want 40 s", r.Header.Get("Retry-After"), body.Message)
		}
	}
	e.Clock.Advance(40 * time.Second)
	e.Want(e.Do("GET", "/v1/links/"+token, "", nil, sharing.HeaderLinkPassword, linkPassword), http.StatusFound, "")
}
