package identity

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/uuid"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, pgtest.Options{Template: func(ctx context.Context, ownerDSN string) error {
		_, err := db.MigrateURL(ctx, ownerDSN, 0, nil)
		return err
	}}))
}

// clock is a settable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

const ownerPassword = "owner-password-1"

type fixture struct {
	s     *Service
	clock *clock
	super *pgxpool.Pool // bypasses RLS: for arranging and inspecting rows only
	db    *pgtest.DB
}

func newFixture(t *testing.T, tweak ...func(*Config)) *fixture {
	t.Helper()
	d := pgtest.New(t)
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	cfg := Config{TokenKey: []byte(strings.Repeat("k", 32)), BootstrapToken: strings.Repeat("b", 32), Password: cheap, Now: c.Now}
	for _, f := range tweak {
		f(&cfg)
	}
	pool, err := db.Open(context.Background(), d.AppDSN, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, err := New(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{s: s, clock: c, super: pgtest.Pool(t, d.SuperDSN), db: d}
}

func (f *fixture) tenant(t *testing.T, slug string) (Tenant, User) {
	t.Helper()
	tn, u, err := f.s.CreateTenant(context.Background(), NewTenant{Slug: slug, Name: "Tenant " + slug, OwnerEmail: "owner@" + slug + ".example", OwnerPassword: ownerPassword})
	if err != nil {
		t.Fatal(err)
	}
	return tn, u
}

func (f *fixture) login(t *testing.T, slug, email, password string) Tokens {
	t.Helper()
	tok, err := f.s.Login(context.Background(), Credentials{Tenant: slug, Email: email, Password: password})
	if err != nil {
		t.Fatalf("login %s/%s: %v", slug, email, err)
	}
	return tok
}

// member adds a user with role to the tenant of owner (an owner's principal).
func (f *fixture) member(t *testing.T, owner Principal, email string, role Role) (User, Principal) {
	t.Helper()
	u, err := f.s.AddUser(context.Background(), owner, NewUser{Email: email, Password: "member-password-1", Role: role})
	if err != nil {
		t.Fatal(err)
	}
	var slug string
	if err := f.super.QueryRow(context.Background(), "SELECT slug FROM tenants WHERE id = $1", u.TenantID).Scan(&slug); err != nil {
		t.Fatal(err)
	}
	return u, f.login(t, slug, email, "member-password-1").Principal
}

func (f *fixture) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := f.super.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	c, ok := errors.AsType[*apierror.Coded](err)
	if !ok || c.Code != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
}

func TestCreateTenant(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tn, owner := f.tenant(t, "acme")
	if tn.Slug != "acme" || tn.Status != "active" || owner.Role != RoleOwner || owner.Email != "owner@acme.example" || owner.TenantID != tn.ID {
		t.Errorf("tenant %+v, owner %+v", tn, owner)
	}
	var stored string
	if err := f.super.QueryRow(ctx, "SELECT password_hash FROM users WHERE id = $1", owner.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored, "$argon2id$") || strings.Contains(stored, ownerPassword) {
		t.Errorf("stored password %q is not an argon2id hash", stored)
	}
	good := NewTenant{Slug: "globex", Name: "Globex", OwnerEmail: "Boss@Globex.Example", OwnerPassword: ownerPassword}
	tests := []struct {
		name     string
		mutate   func(*NewTenant)
		wantCode string
	}{
		{"taken slug", func(n *NewTenant) { n.Slug = "acme" }, apierror.CodeAlreadyExists},
		{"upper-case slug", func(n *NewTenant) { n.Slug = "Acme" }, apierror.CodeInvalidArgument},
		{"slug with trailing hyphen", func(n *NewTenant) { n.Slug = "acme-" }, apierror.CodeInvalidArgument},
		{"no name", func(n *NewTenant) { n.Name = " " }, apierror.CodeInvalidArgument},
		{"bad email", func(n *NewTenant) { n.OwnerEmail = "boss" }, apierror.CodeInvalidArgument},
		{"email with display name", func(n *NewTenant) { n.OwnerEmail = "Boss <boss@globex.example>" }, apierror.CodeInvalidArgument},
		{"short password", func(n *NewTenant) { n.OwnerPassword = "short" }, apierror.CodeInvalidArgument},
		{"ok", func(*NewTenant) {}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := good
			tt.mutate(&in)
			tn, u, err := f.s.CreateTenant(ctx, in)
			if tt.wantCode != "" {
				wantCode(t, err, tt.wantCode)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Email != "boss@globex.example" || tn.Slug != "globex" {
				t.Errorf("tenant %+v, owner %+v: want the email lower-cased", tn, u)
			}
		})
	}
}

func TestAddUser(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.tenant(t, "acme")
	owner := f.login(t, "acme", "owner@acme.example", ownerPassword).Principal
	_, admin := f.member(t, owner, "admin@acme.example", RoleAdmin)
	_, member := f.member(t, owner, "member@acme.example", RoleMember)
	f.tenant(t, "globex")
	tests := []struct {
		name    string
		by      Principal
		in      NewUser
		wantErr error
		code    string
	}{
		{"admin adds a viewer", admin, NewUser{Email: "v@acme.example", Password: "viewer-password", Role: RoleViewer}, nil, ""},
		{"admin cannot make an owner", admin, NewUser{Email: "o2@acme.example", Password: "owner2-password", Role: RoleOwner}, ErrPermissionDenied, ""},
		{"owner makes an owner", owner, NewUser{Email: "o2@acme.example", Password: "owner2-password", Role: RoleOwner}, nil, ""},
		{"member cannot add users", member, NewUser{Email: "x@acme.example", Password: "xxxxxxxxxxxxx", Role: RoleViewer}, ErrPermissionDenied, ""},
		{"email taken in the tenant (any case)", owner, NewUser{Email: "MEMBER@acme.example", Password: "member-password-2", Role: RoleViewer}, nil, apierror.CodeAlreadyExists},
		{"unknown role", owner, NewUser{Email: "r@acme.example", Password: "xxxxxxxxxxxxx", Role: "root"}, nil, apierror.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.s.AddUser(ctx, tt.by, tt.in)
			if tt.code != "" {
				wantCode(t, err, tt.code)
				return
			}
			wantErr(t, err, tt.wantErr)
		})
	}
	// Users are per tenant: the same email in another tenant is another account.
	globexOwner := f.login(t, "globex", "owner@globex.example", ownerPassword).Principal
	if _, err := f.s.AddUser(ctx, globexOwner, NewUser{Email: "member@acme.example", Password: "globex-password", Role: RoleMember}); err != nil {
		t.Fatalf("same email in another tenant: %v", err)
	}
	if _, err := f.s.Login(ctx, Credentials{Tenant: "globex", Email: "member@acme.example", Password: "member-password-1"}); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("acme's password worked for the globex account: %v", err)
	}
	f.login(t, "globex", "member@acme.example", "globex-password")
}

func TestLogin(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	acme, owner := f.tenant(t, "acme")
	f.tenant(t, "globex")
	f.tenant(t, "initech")
	f.exec(t, "UPDATE tenants SET status = 'suspended' WHERE slug = 'initech'")
	ownerP := f.login(t, "acme", "owner@acme.example", ownerPassword).Principal
	disabled, _ := f.member(t, ownerP, "gone@acme.example", RoleMember)
	f.exec(t, "UPDATE users SET status = 'disabled' WHERE id = $1", disabled.ID)
	homeless, _ := f.member(t, ownerP, "homeless@acme.example", RoleMember)
	f.exec(t, "DELETE FROM memberships WHERE user_id = $1", homeless.ID)

	tests := []struct {
		name string
		c    Credentials
		want error
	}{
		{"right credentials", Credentials{Tenant: "acme", Email: "owner@acme.example", Password: ownerPassword}, nil},
		{"email in any case", Credentials{Tenant: " acme ", Email: " Owner@ACME.example ", Password: ownerPassword}, nil},
		{"wrong password", Credentials{Tenant: "acme", Email: "owner@acme.example", Password: ownerPassword + "x"}, ErrInvalidCredentials},
		{"unknown email", Credentials{Tenant: "acme", Email: "nobody@acme.example", Password: ownerPassword}, ErrInvalidCredentials},
		{"unknown tenant", Credentials{Tenant: "umbrella", Email: "owner@acme.example", Password: ownerPassword}, ErrInvalidCredentials},
		{"user of another tenant", Credentials{Tenant: "globex", Email: "owner@acme.example", Password: ownerPassword}, ErrInvalidCredentials},
		{"suspended tenant", Credentials{Tenant: "initech", Email: "owner@initech.example", Password: ownerPassword}, ErrInvalidCredentials},
		{"disabled user", Credentials{Tenant: "acme", Email: "gone@acme.example", Password: "member-password-1"}, ErrInvalidCredentials},
		{"user without membership", Credentials{Tenant: "acme", Email: "homeless@acme.example", Password: "member-password-1"}, ErrInvalidCredentials},
		{"empty", Credentials{}, ErrInvalidCredentials},
		{"huge password", Credentials{Tenant: "acme", Email: "owner@acme.example", Password: strings.Repeat("p", MaxPasswordLen+1)}, ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := f.s.Login(ctx, tt.c)
			wantErr(t, err, tt.want)
			if err != nil {
				return
			}
			p := tok.Principal
			if p.TenantID != acme.ID || p.UserID != owner.ID || p.Role != RoleOwner || p.SessionID == "" {
				t.Errorf("principal = %+v", p)
			}
			if want := f.clock.Now().Add(DefaultAccessTTL); !tok.AccessExpiresAt.Equal(want) {
				t.Errorf("access expires %s, want %s (15 min)", tok.AccessExpiresAt, want)
			}
			got, err := f.s.Authenticate(ctx, tok.AccessToken)
			if err != nil || got.UserID != owner.ID || got.SessionID != p.SessionID || got.Role != RoleOwner {
				t.Errorf("Authenticate(access token) = %+v, %v", got, err)
			}
			if !strings.HasPrefix(tok.RefreshToken, "bvr_") {
				t.Errorf("refresh token %q", tok.RefreshToken)
			}
		})
	}
	// Only hashes are stored.
	var n int
	if err := f.super.QueryRow(ctx, "SELECT count(*) FROM refresh_tokens WHERE octet_length(token_hash) = 32").Scan(&n); err != nil || n < 2 {
		t.Errorf("refresh_tokens with a 32-byte hash: %d (%v)", n, err)
	}
}

func TestRefreshRotation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.tenant(t, "acme")
	first := f.login(t, "acme", "owner@acme.example", ownerPassword)
	f.clock.Advance(time.Minute)
	second, err := f.s.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Error("refresh returned the same tokens")
	}
	if second.Principal.SessionID != first.Principal.SessionID {
		t.Error("refresh started a new session")
	}
	third, err := f.s.Refresh(ctx, second.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	for _, access := range []string{first.AccessToken, second.AccessToken, third.AccessToken} {
		if _, err := f.s.Authenticate(ctx, access); err != nil {
			t.Errorf("access token of the live session refused: %v", err)
		}
	}
	var used, total int
	if err := f.super.QueryRow(ctx, "SELECT count(*) FILTER (WHERE used_at IS NOT NULL), count(*) FROM refresh_tokens WHERE session_id = $1", first.Principal.SessionID).Scan(&used, &total); err != nil {
		t.Fatal(err)
	}
	if used != 2 || total != 3 {
		t.Errorf("refresh tokens of the session: %d used of %d, want 2 of 3", used, total)
	}
}

// TestRefreshReuseRevokesSession: presenting an already-rotated refresh token revokes the
// whole session: the newest refresh token and every access token of it stop working, other
// sessions of the user are untouched.
func TestRefreshReuseRevokesSession(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.tenant(t, "acme")
	stolen := f.login(t, "acme", "owner@acme.example", ownerPassword)
	other := f.login(t, "acme", "owner@acme.example", ownerPassword)
	current, err := f.s.Refresh(ctx, stolen.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.s.Refresh(ctx, stolen.RefreshToken)
	wantErr(t, err, ErrRefreshReused)

	var reason string
	if err := f.super.QueryRow(ctx, "SELECT revoked_reason FROM sessions WHERE id = $1", stolen.Principal.SessionID).Scan(&reason); err != nil || reason != "refresh_token_reuse" {
		t.Errorf("session revoked_reason = %q (%v), want refresh_token_reuse", reason, err)
	}
	_, err = f.s.Refresh(ctx, current.RefreshToken)
	wantErr(t, err, ErrSessionEnded)
	for _, access := range []string{stolen.AccessToken, current.AccessToken} {
		_, err := f.s.Authenticate(ctx, access)
		wantErr(t, err, ErrSessionEnded)
	}
	if _, err := f.s.Authenticate(ctx, other.AccessToken); err != nil {
		t.Errorf("another session of the user was affected: %v", err)
	}
	if _, err := f.s.Refresh(ctx, other.RefreshToken); err != nil {
		t.Errorf("another session of the user was affected: %v", err)
	}
}

// TestRefreshConcurrentUse: the same refresh token presented twice at once succeeds at most
// once, and the other use is detected as reuse.
func TestRefreshConcurrentUse(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.tenant(t, "acme")
	tok := f.login(t, "acme", "owner@acme.example", ownerPassword)
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = f.s.Refresh(ctx, tok.RefreshToken) })
	}
	wg.Wait()
	ok, reused := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrRefreshReused):
			reused++
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 || reused != n-1 {
		t.Errorf("%d succeeded and %d were reuse, want 1 and %d", ok, reused, n-1)
	}
}

func TestExpiry(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(c *Config) { c.AccessTTL = time.Minute; c.RefreshTTL = 30 * time.Minute; c.SessionTTL = time.Hour })
	f.tenant(t, "acme")

	t.Run("access token", func(t *testing.T) {
		tok := f.login(t, "acme", "owner@acme.example", ownerPassword)
		f.clock.Advance(time.Minute)
		_, err := f.s.Authenticate(ctx, tok.AccessToken)
		wantErr(t, err, ErrTokenExpired)
		if _, err := f.s.Refresh(ctx, tok.RefreshToken); err != nil {
			t.Fatalf("refresh after the access token expired: %v", err)
		}
	})
	t.Run("idle refresh token", func(t *testing.T) {
		tok := f.login(t, "acme", "owner@acme.example", ownerPassword)
		f.clock.Advance(30 * time.Minute)
		_, err := f.s.Refresh(ctx, tok.RefreshToken)
		wantErr(t, err, ErrRefreshExpired)
	})
	t.Run("session end", func(t *testing.T) {
		tok := f.login(t, "acme", "owner@acme.example", ownerPassword)
		var err error
		for range 3 { // refreshed every 20 minutes: never idle
			f.clock.Advance(20 * time.Minute)
			if tok, err = f.s.Refresh(ctx, tok.RefreshToken); err != nil {
				break
			}
			if tok.RefreshExpiresAt.After(f.clock.Now().Add(time.Hour)) || tok.AccessExpiresAt.After(tok.RefreshExpiresAt) {
				t.Errorf("tokens outlive the session: access %s, refresh %s", tok.AccessExpiresAt, tok.RefreshExpiresAt)
			}
		}
		// At +60 min the session has ended whatever the refreshes.
		if err == nil {
			t.Fatal("session lived past SessionTTL")
		}
		if !errors.Is(err, ErrRefreshExpired) && !errors.Is(err, ErrSessionEnded) {
			t.Fatalf("err = %v, want the refresh refused", err)
		}
	})
}

func TestLogout(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.tenant(t, "acme")

	tok := f.login(t, "acme", "owner@acme.example", ownerPassword)
	if err := f.s.Logout(ctx, tok.Principal); err != nil {
		t.Fatal(err)
	}
	_, err := f.s.Authenticate(ctx, tok.AccessToken)
	wantErr(t, err, ErrSessionEnded)
	_, err = f.s.Refresh(ctx, tok.RefreshToken)
	wantErr(t, err, ErrSessionEnded)
	wantErr(t, f.s.Logout(ctx, tok.Principal), nil) // idempotent

	byRefresh := f.login(t, "acme", "owner@acme.example", ownerPassword)
	wantErr(t, f.s.LogoutRefresh(ctx, byRefresh.RefreshToken), nil)
	_, err = f.s.Authenticate(ctx, byRefresh.AccessToken)
	wantErr(t, err, ErrSessionEnded)
	wantErr(t, f.s.LogoutRefresh(ctx, "bvr_nonsense"), ErrRefreshInvalid)

	tk, secret, err := f.s.CreateAPIToken(ctx, f.login(t, "acme", "owner@acme.example", ownerPassword).Principal, NewAPIToken{Name: "ci", Scopes: []string{"files:read"}, ExpiresAt: f.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.s.Authenticate(ctx, secret)
	if err != nil || p.APITokenID != tk.ID {
		t.Fatalf("Authenticate(API token) = %+v, %v", p, err)
	}
	wantCode(t, f.s.Logout(ctx, p), apierror.CodeInvalidArgument)
}

// TestAuthenticateUsesCurrentState: the role comes from memberships at each request, and a
// disabled user or a removed membership ends access at once, for sessions and API tokens.
func TestAuthenticateUsesCurrentState(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.tenant(t, "acme")
	owner := f.login(t, "acme", "owner@acme.example", ownerPassword).Principal
	u, _ := f.member(t, owner, "admin@acme.example", RoleAdmin)
	tok := f.login(t, "acme", "admin@acme.example", "member-password-1")
	_, apiToken, err := f.s.CreateAPIToken(ctx, tok.Principal, NewAPIToken{Name: "ci", Scopes: []string{"files:read"}, ExpiresAt: f.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	f.exec(t, "UPDATE memberships SET role = 'viewer' WHERE user_id = $1", u.ID)
	for _, cred := range []string{tok.AccessToken, apiToken} {
		p, err := f.s.Authenticate(ctx, cred)
		if err != nil || p.Role != RoleViewer {
			t.Errorf("after demotion: %+v, %v; want role viewer", p, err)
		}
		wantErr(t, Authorize(p, PermMembersManage), ErrPermissionDenied)
	}
	f.exec(t, "UPDATE users SET status = 'disabled' WHERE id = $1", u.ID)
	_, err = f.s.Authenticate(ctx, tok.AccessToken)
	wantErr(t, err, ErrSessionEnded)
	_, err = f.s.Authenticate(ctx, apiToken)
	wantErr(t, err, ErrUnauthenticated)
	f.exec(t, "UPDATE users SET status = 'active' WHERE id = $1", u.ID)
	f.exec(t, "DELETE FROM memberships WHERE user_id = $1", u.ID)
	_, err = f.s.Authenticate(ctx, tok.AccessToken)
	wantErr(t, err, ErrSessionEnded)
	_, err = f.s.Authenticate(ctx, apiToken)
	wantErr(t, err, ErrUnauthenticated)
}

func TestAPITokens(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.tenant(t, "acme")
	owner := f.login(t, "acme", "owner@acme.example", ownerPassword).Principal
	_, member := f.member(t, owner, "member@acme.example", RoleMember)

	tk, secret, err := f.s.CreateAPIToken(ctx, member, NewAPIToken{Name: " laptop ", Scopes: []string{"files:write", "files:read", "files:read"}, ExpiresAt: f.clock.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if tk.Name != "laptop" || strings.Join(scopeStrings(tk.Scopes), ",") != "files:read,files:write" || !strings.HasPrefix(secret, "bvt_") || !strings.HasPrefix(tk.Prefix, "bvt_…") {
		t.Errorf("token %+v, secret %q", tk, secret)
	}
	var stored []byte
	if err := f.super.QueryRow(ctx, "SELECT token_hash FROM api_tokens WHERE id = $1", tk.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if string(stored) != string(hashToken(secret)) || strings.Contains(string(stored), secret) {
		t.Error("the stored value is not the SHA-256 of the token")
	}

	p, err := f.s.Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if p.APITokenID != tk.ID || p.UserID != member.UserID || p.Role != RoleMember || len(p.Scopes) != 2 {
		t.Errorf("principal = %+v", p)
	}
	wantErr(t, Authorize(p, PermFilesWrite), nil)
	wantErr(t, Authorize(p, PermAPITokensManage), ErrInsufficientScope)
	var lastUsed *time.Time
	if err := f.super.QueryRow(ctx, "SELECT last_used_at FROM api_tokens WHERE id = $1", tk.ID).Scan(&lastUsed); err != nil || lastUsed == nil {
		t.Errorf("last_used_at = %v (%v), want set", lastUsed, err)
	}

	list, err := f.s.ListAPITokens(ctx, member)
	if err != nil || len(list) != 1 || list[0].ID != tk.ID || list[0].LastUsedAt == nil {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if ownerList, _ := f.s.ListAPITokens(ctx, owner); len(ownerList) != 0 {
		t.Errorf("owner lists the member's tokens: %+v", ownerList)
	}

	// Forging: the same secret with another tenant's id, a flipped character.
	other, _ := f.tenant(t, "globex")
	forged := "bvt_" + strings.ReplaceAll(other.ID, "-", "") + secret[4+32:]
	for _, bad := range []string{forged, secret[:40] + flip(secret[40]) + secret[41:], "bvt_", "Bearer " + secret} {
		_, err := f.s.Authenticate(ctx, bad)
		wantErr(t, err, ErrUnauthenticated)
	}

	// Expired.
	short, shortSecret, err := f.s.CreateAPIToken(ctx, member, NewAPIToken{Name: "short", Scopes: []string{"files:read"}, ExpiresAt: f.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	_, err = f.s.Authenticate(ctx, shortSecret)
	wantErr(t, err, ErrTokenExpired)
	wantErr(t, f.s.RevokeAPIToken(ctx, member, short.ID), nil)

	// Revocation: others' tokens are invisible to a member, an admin (owner) may revoke any.
	wantErr(t, f.s.RevokeAPIToken(ctx, member, uuid.New()), ErrNotFound)
	wantErr(t, f.s.RevokeAPIToken(ctx, member, "not-a-uuid"), ErrNotFound)
	_, viewer := f.member(t, owner, "viewer@acme.example", RoleViewer)
	wantErr(t, f.s.RevokeAPIToken(ctx, viewer, tk.ID), ErrNotFound)
	if _, err := f.s.Authenticate(ctx, secret); err != nil {
		t.Fatalf("token revoked by someone not allowed to: %v", err)
	}
	otherOwner := f.login(t, "globex", "owner@globex.example", ownerPassword).Principal
	wantErr(t, f.s.RevokeAPIToken(ctx, otherOwner, tk.ID), ErrNotFound)
	wantErr(t, f.s.RevokeAPIToken(ctx, owner, tk.ID), nil)
	_, err = f.s.Authenticate(ctx, secret)
	wantErr(t, err, ErrAPITokenRevoked)
	wantErr(t, f.s.RevokeAPIToken(ctx, member, tk.ID), nil) // idempotent
	list, _ = f.s.ListAPITokens(ctx, member)
	if len(list) != 2 || list[0].RevokedAt == nil || list[1].RevokedAt == nil {
		t.Errorf("list after revocation = %+v, want both tokens, revoked", list)
	}
}

// TestCreateAPITokenRules: scopes never exceed the creator, the expiry is mandatory and
// bounded, the input is validated.
func TestCreateAPITokenRules(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.tenant(t, "acme")
	owner := f.login(t, "acme", "owner@acme.example", ownerPassword).Principal
	_, member := f.member(t, owner, "member@acme.example", RoleMember)
	_, viewer := f.member(t, owner, "viewer@acme.example", RoleViewer)
	token := func(from Principal, scopes ...string) Principal {
		_, secret, err := f.s.CreateAPIToken(ctx, from, NewAPIToken{Name: "t", Scopes: scopes, ExpiresAt: f.clock.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		p, err := f.s.Authenticate(ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	adminToken := token(owner, "admin")
	readToken := token(owner, "files:read")
	day := f.clock.Now().Add(24 * time.Hour)
	tests := []struct {
		name string
		by   Principal
		in   NewAPIToken
		err  error
		code string
	}{
		{"viewer, read scope", viewer, NewAPIToken{Name: "r", Scopes: []string{"files:read"}, ExpiresAt: day}, nil, ""},
		{"viewer, write scope", viewer, NewAPIToken{Name: "w", Scopes: []string{"files:write"}, ExpiresAt: day}, ErrPermissionDenied, ""},
		{"member, admin scope", member, NewAPIToken{Name: "a", Scopes: []string{"admin"}, ExpiresAt: day}, ErrPermissionDenied, ""},
		{"owner, every scope", owner, NewAPIToken{Name: "all", Scopes: []string{"admin", "files:read", "files:write"}, ExpiresAt: day}, nil, ""},
		{"admin-scope token mints an admin token", adminToken, NewAPIToken{Name: "a2", Scopes: []string{"admin"}, ExpiresAt: day}, nil, ""},
		{"admin-scope token cannot mint file scopes", adminToken, NewAPIToken{Name: "f", Scopes: []string{"files:read"}, ExpiresAt: day}, ErrPermissionDenied, ""},
		{"read-scope token cannot mint tokens", readToken, NewAPIToken{Name: "r2", Scopes: []string{"files:read"}, ExpiresAt: day}, ErrInsufficientScope, ""},
		{"no expiry", owner, NewAPIToken{Name: "n", Scopes: []string{"files:read"}}, nil, apierror.CodeInvalidArgument},
		{"past expiry", owner, NewAPIToken{Name: "n", Scopes: []string{"files:read"}, ExpiresAt: f.clock.Now().Add(-time.Second)}, nil, apierror.CodeInvalidArgument},
		{"expiry over a year", owner, NewAPIToken{Name: "n", Scopes: []string{"files:read"}, ExpiresAt: f.clock.Now().Add(367 * 24 * time.Hour)}, nil, apierror.CodeInvalidArgument},
		{"no scopes", owner, NewAPIToken{Name: "n", ExpiresAt: day}, nil, apierror.CodeInvalidArgument},
		{"unknown scope", owner, NewAPIToken{Name: "n", Scopes: []string{"root"}, ExpiresAt: day}, nil, apierror.CodeInvalidArgument},
		{"no name", owner, NewAPIToken{Name: "  ", Scopes: []string{"files:read"}, ExpiresAt: day}, nil, apierror.CodeInvalidArgument},
		{"no principal", Principal{}, NewAPIToken{Name: "n", Scopes: []string{"files:read"}, ExpiresAt: day}, ErrUnauthenticated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.s.CreateAPIToken(ctx, tt.by, tt.in)
			if tt.code != "" {
				wantCode(t, err, tt.code)
				return
			}
			wantErr(t, err, tt.err)
		})
	}
}

// flip returns another base64url character than c.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}
