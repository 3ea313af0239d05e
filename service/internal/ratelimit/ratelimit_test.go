package ratelimit

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, pgtest.Options{Template: func(ctx context.Context, ownerDSN string) error {
		_, err := db.MigrateURL(ctx, ownerDSN, 0, nil)
		return err
	}}))
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{"defaults", nil, Config{Window: 15 * time.Minute, PerAccountIP: 5, PerAccount: 50, PerIP: 50}, ""},
		{"all set", map[string]string{EnvWindow: "1h", EnvPerAccountIP: "3", EnvPerAccount: "30", EnvPerIP: "200"}, Config{Window: time.Hour, PerAccountIP: 3, PerAccount: 30, PerIP: 200}, ""},
		{"window too short", map[string]string{EnvWindow: "1s"}, Config{}, EnvWindow},
		{"window not a duration", map[string]string{EnvWindow: "15"}, Config{}, EnvWindow},
		{"limit zero", map[string]string{EnvPerIP: "0"}, Config{}, EnvPerIP},
		{"limit not a number", map[string]string{EnvPerAccountIP: "five"}, Config{}, EnvPerAccountIP},
		{"ceiling below the per-address limit", map[string]string{EnvPerAccountIP: "10", EnvPerAccount: "5"}, Config{}, "below"},
		{"trusted proxies", map[string]string{EnvTrustedProxies: "10.0.0.0/8, 192.0.2.1,fd00::/8"}, Config{Window: 15 * time.Minute, PerAccountIP: 5, PerAccount: 50, PerIP: 50,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("fd00::/8")}}, ""},
		{"trusted proxy not a CIDR", map[string]string{EnvTrustedProxies: "10.0.0.0/8,ingress"}, Config{}, EnvTrustedProxies},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadConfig(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("LoadConfig = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	tests := []struct{ remote, want, normalized string }{
		{"203.0.113.7:51234", "203.0.113.7", "203.0.113.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"[::ffff:198.51.100.1]:80", "::ffff:198.51.100.1", "198.51.100.1"},
		{"[fe80::1%eth0]:80", "fe80::1%eth0", "fe80::/64"},
		{"pipe", "pipe", "pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.remote, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/auth/login", nil)
			r.RemoteAddr = tt.remote
			r.Header.Set("X-Forwarded-For", "192.0.2.99") // not trusted: ignored
			got := Config{}.ClientIP(r)
			if got != tt.want {
				t.Errorf("ClientIP = %q, want %q", got, tt.want)
			}
			if n := normalizeIP(got); n != tt.normalized {
				t.Errorf("normalizeIP(%q) = %q, want %q", got, n, tt.normalized)
			}
		})
	}
}

// TestClientIPBehindProxies: X-Forwarded-For is believed only from a trusted peer, read from
// the right up to the first address that is not a trusted proxy.
func TestClientIPBehindProxies(t *testing.T) {
	cfg := Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	tests := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"untrusted peer: header ignored", "203.0.113.7:1", []string{"198.51.100.1"}, "203.0.113.7"},
		{"trusted peer, one hop", "10.1.2.3:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client-written entries left of the proxy are ignored", "10.1.2.3:1", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:1", []string{"198.51.100.1, 10.9.9.9", "10.8.8.8"}, "198.51.100.1"},
		{"IPv6 proxy, IPv4-mapped client", "[fd00::5]:1", []string{"::ffff:198.51.100.2"}, "198.51.100.2"},
		{"trusted peer without header", "10.1.2.3:1", nil, "10.1.2.3"},
		{"only proxies in the header", "10.1.2.3:1", []string{"10.4.4.4"}, "10.4.4.4"},
		{"garbage hop: the last trusted hop", "10.1.2.3:1", []string{"198.51.100.1, nonsense"}, "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/auth/login", nil)
			r.RemoteAddr = tt.remote
			for _, h := range tt.xff {
				r.Header.Add("X-Forwarded-For", h)
			}
			if got := cfg.ClientIP(r); got != tt.want {
				t.Errorf("ClientIP = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLockedError(t *testing.T) {
	err := error(newLockedError(Link, "link.target", 1500*time.Millisecond))
	wrapped := errors.Join(errors.New("context"), err)
	c, ok := errors.AsType[*apierror.Coded](wrapped)
	if !ok || c.Code != apierror.CodeRateLimited || c.Message != "too many wrong passwords for this link: try again in 2 s" {
		t.Errorf("coded = %+v, %v", c, ok)
	}
	if r, ok := errors.AsType[apierror.Retryer](wrapped); !ok || r.RetryAfter() != 1500*time.Millisecond {
		t.Errorf("not a Retryer with the wait: %v", ok)
	}
	if !IsLocked(wrapped) || IsLocked(errors.New("x")) {
		t.Error("IsLocked")
	}
}

// env is a tenant on a fresh database, the app role's pool (row-level security applies) and
// the superuser's, for inspection.
type env struct {
	pool, super *pgxpool.Pool
	tenant      string
}

const (
	tenantA = "aaaaaaaa-0000-4000-8000-000000000001"
	tenantB = "bbbbbbbb-0000-4000-8000-000000000002"
)

func newEnv(t *testing.T) *env {
	t.Helper()
	d := pgtest.New(t)
	e := &env{pool: pgtest.Pool(t, d.AppDSN), super: pgtest.Pool(t, d.SuperDSN), tenant: tenantA}
	for _, id := range []string{tenantA, tenantB} {
		if _, err := e.super.Exec(context.Background(), "INSERT INTO tenants (id, slug, name) VALUES ($1::uuid, 'slug-' || left($1::uuid::text, 8), 'T')", id); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) check(t *testing.T, l *Limiter, tenant string, a Attempt, now time.Time) error {
	t.Helper()
	var out error
	err := db.WithTenant(context.Background(), e.pool, tenant, func(tx pgx.Tx) error {
		out = l.Check(context.Background(), tx, tenant, a, now)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && !IsLocked(out) {
		t.Fatalf("check: %v", out)
	}
	return out
}

// fail is an attempt whose password is wrong: reserved, and left counted.
func (e *env) fail(t *testing.T, l *Limiter, tenant string, a Attempt, now time.Time) []Lock {
	t.Helper()
	var locks []Lock
	err := db.WithTenant(context.Background(), e.pool, tenant, func(tx pgx.Tx) error {
		var err error
		locks, err = l.Reserve(context.Background(), tx, tenant, a, now)
		return err
	})
	if err != nil {
		t.Fatalf("fail: %v", err)
	}
	return locks
}

// succeed is an attempt whose password is right: reserved, then released.
func (e *env) succeed(t *testing.T, l *Limiter, tenant string, a Attempt, now time.Time) {
	t.Helper()
	e.fail(t, l, tenant, a, now)
	err := db.WithTenant(context.Background(), e.pool, tenant, func(tx pgx.Tx) error {
		return l.Release(context.Background(), tx, tenant, a, now)
	})
	if err != nil {
		t.Fatalf("release: %v", err)
	}
}

func (e *env) rows(t *testing.T, where string) int {
	t.Helper()
	var n int
	if err := e.super.QueryRow(context.Background(), "SELECT count(*) FROM rate_limits WHERE "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// lockedScope is the scope of a *LockedError, or "" for nil.
func lockedScope(err error) string {
	if le, ok := errors.AsType[*LockedError](err); ok {
		return le.Scope
	}
	return ""
}

// TestLimiter plays sequences of failures, successes and clock moves against one limiter
// (window 1 min; 3 per account and address, 5 per account, 4 per address) and checks, after
// each step, the locks it engaged and what a check then says for several attempts.
func TestLimiter(t *testing.T) {
	l, err := New(Config{Window: time.Minute, PerAccountIP: 3, PerAccount: 5, PerIP: 4})
	if err != nil {
		t.Fatal(err)
	}
	alice := func(ip string) Attempt { return Attempt{Kind: Login, Target: "alice@acme.example", IP: ip} }
	type step struct {
		do      string // "fail", "succeed" or "wait"
		a       Attempt
		n       int           // fail: how many times
		d       time.Duration // wait
		locks   []string      // scopes locked by the last failure
		checks  map[Attempt]string
		tenantB bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"per account and address first", []step{
			{do: "fail", a: alice("10.0.0.1"), n: 2, checks: map[Attempt]string{alice("10.0.0.1"): ""}},
			{do: "fail", a: alice("10.0.0.1"), n: 1, locks: []string{"login.target_ip"}, checks: map[Attempt]string{
				alice("10.0.0.1"): "login.target_ip",
				alice("10.0.0.2"): "", // the user, elsewhere, is not locked out
				{Kind: Login, Target: "bob@acme.example", IP: "10.0.0.1"}:  "",
				{Kind: Link, Target: "alice@acme.example", IP: "10.0.0.1"}: "", // kinds do not mix
			}},
			{do: "wait", d: time.Minute, checks: map[Attempt]string{alice("10.0.0.1"): ""}},
			// The window passed: counting starts again at 1.
			{do: "fail", a: alice("10.0.0.1"), n: 2, checks: map[Attempt]string{alice("10.0.0.1"): ""}},
		}},
		{"per account ceiling across addresses", []step{
			{do: "fail", a: alice("10.0.0.1"), n: 2},
			{do: "fail", a: alice("10.0.0.2"), n: 2},
			{do: "fail", a: alice("10.0.0.3"), n: 1, locks: []string{"login.target"}, checks: map[Attempt]string{
				alice("10.0.0.9"): "login.target",
				alice(""):         "login.target",
				{Kind: Login, Target: "bob@acme.example", IP: "10.0.0.9"}: "",
			}},
			{do: "wait", d: 59 * time.Second, checks: map[Attempt]string{alice("10.0.0.9"): "login.target"}},
			{do: "wait", d: time.Second, checks: map[Attempt]string{alice("10.0.0.9"): ""}},
		}},
		{"per address across accounts", []step{
			{do: "fail", a: Attempt{Kind: Login, Target: "a@x", IP: "2001:db8::1"}, n: 1},
			{do: "fail", a: Attempt{Kind: Login, Target: "b@x", IP: "2001:db8::2"}, n: 1},
			{do: "fail", a: Attempt{Kind: Login, Target: "c@x", IP: "2001:db8::3"}, n: 1},
			// Same /64: the fourth failure of the block.
			{do: "fail", a: Attempt{Kind: Login, Target: "d@x", IP: "2001:db8::4"}, n: 1, locks: []string{"login.ip"}, checks: map[Attempt]string{
				{Kind: Login, Target: "e@x", IP: "2001:db8::ffff"}:  "login.ip",
				{Kind: Login, Target: "e@x", IP: "2001:db8:0:1::1"}: "",
				{Kind: Login, Target: "e@x", IP: ""}:                "",
				{Kind: Login, Target: "a@x", IP: "2001:db8:0:1::1"}: "",
			}},
		}},
		{"success resets the account but not the address", []step{
			{do: "fail", a: alice("10.0.0.1"), n: 2},
			{do: "fail", a: Attempt{Kind: Login, Target: "bob@acme.example", IP: "10.0.0.1"}, n: 1},
			{do: "succeed", a: alice("10.0.0.1")},
			// alice starts from 0 on both of her counters; the address keeps its 3.
			{do: "fail", a: alice("10.0.0.1"), n: 1, locks: []string{"login.ip"}, checks: map[Attempt]string{
				alice("10.0.0.1"): "login.ip",
				alice("10.0.0.2"): "",
			}},
		}},
		{"tenants have their own counters", []step{
			{do: "fail", a: alice("10.0.0.1"), n: 3, locks: []string{"login.target_ip"}},
			{tenantB: true, checks: map[Attempt]string{alice("10.0.0.1"): ""}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			for i, st := range tt.steps {
				tenant := tenantA
				if st.tenantB {
					tenant = tenantB
				}
				var locks []Lock
				switch st.do {
				case "fail":
					for range st.n {
						locks = e.fail(t, l, tenant, st.a, now)
					}
				case "succeed":
					e.succeed(t, l, tenant, st.a, now)
				case "wait":
					now = now.Add(st.d)
				}
				var got []string
				for _, lk := range locks {
					got = append(got, lk.Scope)
					if !lk.Until.Equal(now.Add(time.Minute)) {
						t.Errorf("step %d: lock %s until %s, want a whole window from now", i, lk.Scope, lk.Until)
					}
				}
				if strings.Join(got, ",") != strings.Join(st.locks, ",") {
					t.Errorf("step %d: locks %v, want %v", i, got, st.locks)
				}
				for a, want := range st.checks {
					err := e.check(t, l, tenant, a, now)
					if got := lockedScope(err); got != want {
						t.Errorf("step %d: check %+v: locked %q, want %q", i, a, got, want)
					}
					if le, ok := errors.AsType[*LockedError](err); ok && (le.Wait <= 0 || le.Wait > time.Minute) {
						t.Errorf("step %d: wait %s", i, le.Wait)
					}
				}
			}
		})
	}
}

// TestReserveConcurrent: concurrent attempts of one client at one account (several
// replicas) serialize on the counters' rows: exactly PerAccountIP of them are granted, the
// rest refused without being counted, and exactly one reports each lock, which is what
// makes the lockout's audit row unique.
func TestReserveConcurrent(t *testing.T) {
	e := newEnv(t)
	l, err := New(Config{Window: time.Minute, PerAccountIP: 3, PerAccount: 5, PerIP: 50})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := Attempt{Kind: Login, Target: "alice@acme.example", IP: "10.0.0.1"}
	var mu sync.Mutex
	engaged := map[string]int{}
	granted, refused := 0, 0
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			err := db.WithTenant(context.Background(), e.pool, tenantA, func(tx pgx.Tx) error {
				locks, err := l.Reserve(context.Background(), tx, tenantA, a, now)
				mu.Lock()
				defer mu.Unlock()
				for _, lk := range locks {
					engaged[lk.Scope]++
				}
				switch {
				case err == nil:
					granted++
				case IsLocked(err):
					refused++
				}
				return err
			})
			if err != nil && !IsLocked(err) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if granted != 3 || refused != 9 {
		t.Errorf("%d granted, %d refused; want 3 and 9", granted, refused)
	}
	if engaged["login.target_ip"] != 1 || len(engaged) != 1 {
		t.Errorf("locks engaged %v, want target_ip once", engaged)
	}
	for _, scope := range []string{"login.target_ip", "login.target", "login.ip"} {
		var failures int
		if err := e.super.QueryRow(context.Background(), "SELECT failures FROM rate_limits WHERE scope = $1", scope).Scan(&failures); err != nil || failures != 3 {
			t.Errorf("%s: failures = %d (%v), want 3 (refused attempts are not counted)", scope, failures, err)
		}
	}
}

// TestReleaseConcurrent: attempts of one address at several accounts, reserved and released
// concurrently, neither deadlock (Reserve and Release lock the counters in one order) nor
// lose or leave counts: once all have succeeded, no live counter is left, and a failure
// among them is still counted on the address.
func TestReleaseConcurrent(t *testing.T) {
	e := newEnv(t)
	l, err := New(Config{Window: time.Minute, PerAccountIP: 1000, PerAccount: 1000, PerIP: 1000})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e.fail(t, l, tenantA, Attempt{Kind: Login, Target: "mallory@acme.example", IP: "10.0.0.1"}, now)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			a := Attempt{Kind: Login, Target: []string{"alice@acme.example", "bob@acme.example"}[i%2], IP: "10.0.0.1"}
			for range 10 {
				err := db.WithTenant(context.Background(), e.pool, tenantA, func(tx pgx.Tx) error {
					_, err := l.Reserve(context.Background(), tx, tenantA, a, now)
					return err
				})
				if err == nil {
					err = db.WithTenant(context.Background(), e.pool, tenantA, func(tx pgx.Tx) error {
						return l.Release(context.Background(), tx, tenantA, a, now)
					})
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var scopes []string
	rows, err := e.super.Query(context.Background(), "SELECT scope || '=' || failures FROM rate_limits ORDER BY scope")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		scopes = append(scopes, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(scopes, ","), "login.ip=1,login.target=1,login.target_ip=1"; got != want {
		t.Errorf("counters %s, want %s (mallory's failure alone)", got, want)
	}
}

// TestSweep: the writers delete expired rows of their tenant, sweepBatch at a time, and no
// other tenant's.
func TestSweep(t *testing.T) {
	e := newEnv(t)
	l, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tenant := range []string{tenantA, tenantB} {
		if _, err := e.super.Exec(context.Background(), `INSERT INTO rate_limits (tenant_id, scope, key, failures, window_start, expires_at)
SELECT $1::uuid, 'login.target', sha256(($1::uuid::text || i)::bytea), 1, $2::timestamptz - interval '1 hour', $2::timestamptz - interval '1 minute'
FROM generate_series(1, 150) i`, tenant, now); err != nil {
			t.Fatal(err)
		}
	}
	a := Attempt{Kind: Login, Target: "alice@acme.example", IP: "10.0.0.1"}
	e.fail(t, l, tenantA, a, now)
	if n := e.rows(t, "tenant_id = '"+tenantA+"' AND expires_at <= '"+now.Format(time.RFC3339)+"'"); n != 150-sweepBatch {
		t.Errorf("after one failure: %d expired rows of A, want %d", n, 150-sweepBatch)
	}
	e.succeed(t, l, tenantA, a, now)
	if n := e.rows(t, "tenant_id = '"+tenantA+"'"); n != 1 {
		t.Errorf("after a success: %d rows of A, want 1 (the address's live counter)", n)
	}
	if n := e.rows(t, "tenant_id = '"+tenantB+"'"); n != 150 {
		t.Errorf("tenant B: %d rows, want its 150 untouched", n)
	}
}

// TestRowLevelSecurity: the app role sees no counters without a tenant and cannot write
// another tenant's.
func TestRowLevelSecurity(t *testing.T) {
	e := newEnv(t)
	l, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	e.fail(t, l, tenantA, Attempt{Kind: Login, Target: "alice@acme.example"}, now)
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM rate_limits").Scan(&n); err != nil || n != 0 {
		t.Errorf("no tenant set: %d rows visible (%v), want 0", n, err)
	}
	err = db.WithTenant(context.Background(), e.pool, tenantB, func(tx pgx.Tx) error {
		_, err := l.Reserve(context.Background(), tx, tenantA, Attempt{Kind: Login, Target: "x"}, now)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("writing A's counter with B set: %v, want a row-level security violation", err)
	}
}
