package identity

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/platform/uuid"
)

// cheap keeps password hashing fast in tests; DefaultPasswordParams is checked separately.
var cheap = PasswordParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestPasswordHash(t *testing.T) {
	enc, err := hashPassword("correct horse battery", DefaultPasswordParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q does not record the default parameters", enc)
	}
	again, _ := hashPassword("correct horse battery", DefaultPasswordParams)
	if again == enc {
		t.Error("two hashes of one password are equal: no random salt")
	}
	parts := strings.Split(enc, "$")
	tamperedHash := strings.Join(append(parts[:5:5], base64.RawStdEncoding.EncodeToString(make([]byte, 32))), "$")
	tests := []struct {
		name, password, encoded string
		want                    bool
		wantErr                 bool
	}{
		{"right password", "correct horse battery", enc, true, false},
		{"wrong password", "correct horse batterY", enc, false, false},
		{"empty password", "", enc, false, false},
		{"other parameters still verify", "pw", mustHash(t, "pw", cheap), true, false},
		{"tampered hash", "correct horse battery", tamperedHash, false, false},
		{"not argon2id", "x", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA", false, true},
		{"bad version", "x", strings.Replace(enc, "v=19", "v=16", 1), false, true},
		{"truncated", "x", "$argon2id$v=19$m=64", false, true},
		{"absurd memory", "x", strings.Replace(enc, "m=19456", "m=99999999", 1), false, true},
		{"weak parameters", "x", strings.Replace(enc, "t=2", "t=0", 1), false, true},
		{"empty", "x", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := verifyPassword(tt.password, tt.encoded)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("verify = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func mustHash(t *testing.T, pw string, p PasswordParams) string {
	t.Helper()
	h, err := hashPassword(pw, p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestAccessToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := signer{key: []byte(strings.Repeat("k", 32))}
	claims := accessClaims{Issuer: tokenIssuer, Audience: tokenAudience, Subject: "u", TenantID: "t", Role: RoleAdmin, SessionID: "s", IssuedAt: now.Unix(), ExpiresAt: now.Add(15 * time.Minute).Unix()}
	tok := s.sign(claims)
	header, rest, _ := strings.Cut(tok, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	enc := func(c accessClaims) string {
		other := s.sign(c)
		_, rest, _ := strings.Cut(other, ".")
		p, _, _ := strings.Cut(rest, ".")
		return p
	}
	elevated := claims
	elevated.Role = RoleOwner
	wrongAud := claims
	wrongAud.Audience = "other"
	tests := []struct {
		name  string
		token string
		at    time.Time
		s     signer
		want  error
	}{
		{"valid", tok, now, s, nil},
		{"one second before expiry", tok, now.Add(15*time.Minute - time.Second), s, nil},
		{"expired", tok, now.Add(15 * time.Minute), s, ErrTokenExpired},
		{"other key", tok, now, signer{key: []byte(strings.Repeat("x", 32))}, ErrUnauthenticated},
		{"payload swapped (role raised)", header + "." + enc(elevated) + "." + sig, now, s, ErrUnauthenticated},
		{"alg none", b64url.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payload + ".", now, s, ErrUnauthenticated},
		{"no signature", header + "." + payload, now, s, ErrUnauthenticated},
		{"wrong audience", s.sign(wrongAud), now, s, ErrUnauthenticated},
		{"garbage", "not.a.token", now, s, ErrUnauthenticated},
		{"empty", "", now, s, ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.verify(tt.token, tt.at)
			if !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && got != claims {
				t.Errorf("claims = %+v, want %+v", got, claims)
			}
		})
	}
}

func TestOpaqueToken(t *testing.T) {
	tenant := uuid.New()
	tok, hash := newOpaqueToken(prefixAPIToken, tenant)
	gotTenant, gotHash, err := parseOpaqueToken(prefixAPIToken, tok)
	if err != nil || gotTenant != tenant || string(gotHash) != string(hash) {
		t.Fatalf("parse(%q) = %s, %x, %v; want %s, %x", tok, gotTenant, gotHash, err, tenant, hash)
	}
	if p := displayPrefix(tok); !strings.HasPrefix(p, "bvt_…") || len(p) > 16 || strings.Contains(tok, p[len("bvt_…"):]) == false {
		t.Errorf("displayPrefix = %q", p)
	}
	for _, bad := range []string{"", "bvt_", prefixRefresh + tok[4:], tok[:len(tok)-1], tok + "A", "bvt_zz" + tok[6:], tok[:36] + "-" + tok[37:], tok[:40] + "!" + tok[41:]} {
		if _, _, err := parseOpaqueToken(prefixAPIToken, bad); err == nil {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

func TestUUID(t *testing.T) {
	id := uuid.New()
	if got, ok := parseUUID(strings.ToUpper(id)); !ok || got != id {
		t.Errorf("parseUUID(upper %s) = %s, %v", id, got, ok)
	}
	if id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
		t.Errorf("%s is not a version 4 UUID", id)
	}
	for _, bad := range []string{"", "x", id[:35], strings.ReplaceAll(id, "-", ""), "zzzzzzzz-0000-4000-8000-000000000000"} {
		if _, ok := parseUUID(bad); ok {
			t.Errorf("parseUUID(%q) accepted", bad)
		}
	}
}

// TestAuthorize is the RBAC table: every role against every permission, for sessions and
// for API tokens with various scopes. Anything not explicitly allowed is denied.
func TestAuthorize(t *testing.T) {
	session := func(r Role) Principal { return Principal{TenantID: "t", UserID: "u", Role: r, SessionID: "s"} }
	token := func(r Role, scopes ...Scope) Principal {
		return Principal{TenantID: "t", UserID: "u", Role: r, APITokenID: "k", Scopes: scopes}
	}
	tests := []struct {
		name string
		p    Principal
		perm Permission
		want error
	}{
		{"owner manages tenant", session(RoleOwner), PermTenantManage, nil},
		{"admin cannot manage tenant", session(RoleAdmin), PermTenantManage, ErrPermissionDenied},
		{"admin manages members", session(RoleAdmin), PermMembersManage, nil},
		{"owner administers tenant", session(RoleOwner), PermTenantAdmin, nil},
		{"admin administers tenant", session(RoleAdmin), PermTenantAdmin, nil},
		{"member cannot administer tenant", session(RoleMember), PermTenantAdmin, ErrPermissionDenied},
		{"viewer cannot administer tenant", session(RoleViewer), PermTenantAdmin, ErrPermissionDenied},
		{"admin scope administers tenant", token(RoleAdmin, ScopeAdmin), PermTenantAdmin, nil},
		{"files scopes cannot administer tenant", token(RoleOwner, ScopeFilesRead, ScopeFilesWrite), PermTenantAdmin, ErrInsufficientScope},
		{"member cannot manage members", session(RoleMember), PermMembersManage, ErrPermissionDenied},
		{"member writes files", session(RoleMember), PermFilesWrite, nil},
		{"viewer reads files", session(RoleViewer), PermFilesRead, nil},
		{"viewer cannot write files", session(RoleViewer), PermFilesWrite, ErrPermissionDenied},
		{"viewer manages own tokens", session(RoleViewer), PermAPITokensManage, nil},
		{"viewer cannot revoke others' tokens", session(RoleViewer), PermAPITokensAdmin, ErrPermissionDenied},
		{"unknown permission", session(RoleOwner), Permission("files:delete-everything"), ErrPermissionDenied},
		{"unknown role", session(Role("root")), PermFilesRead, ErrPermissionDenied},
		{"empty role", session(""), PermFilesRead, ErrPermissionDenied},
		{"no principal", Principal{}, PermFilesRead, ErrUnauthenticated},
		{"token read scope reads", token(RoleOwner, ScopeFilesRead), PermFilesRead, nil},
		{"token read scope cannot write", token(RoleOwner, ScopeFilesRead), PermFilesWrite, ErrInsufficientScope},
		{"token write scope reads too", token(RoleMember, ScopeFilesWrite), PermFilesRead, nil},
		{"token scope cannot exceed role", token(RoleViewer, ScopeFilesWrite), PermFilesWrite, ErrPermissionDenied},
		{"token without admin scope cannot manage tokens", token(RoleOwner, ScopeFilesRead, ScopeFilesWrite), PermAPITokensManage, ErrInsufficientScope},
		{"token with admin scope manages tokens", token(RoleOwner, ScopeAdmin), PermAPITokensManage, nil},
		{"no scope unlocks tenant management", token(RoleOwner, ScopeAdmin, ScopeFilesRead, ScopeFilesWrite), PermTenantManage, ErrInsufficientScope},
		{"token without scopes", token(RoleOwner), PermFilesRead, ErrInsufficientScope},
		{"unknown scope", token(RoleOwner, Scope("everything")), PermFilesRead, ErrInsufficientScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Authorize(tt.p, tt.perm); !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
				t.Errorf("Authorize = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	boot := strings.Repeat("b", 32)
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"key only", map[string]string{EnvTokenKey: key}, ""},
		{"key url-safe unpadded", map[string]string{EnvTokenKey: base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("\xff", 40)))}, ""},
		{"key and bootstrap", map[string]string{EnvTokenKey: key, EnvBootstrapToken: boot}, ""},
		{"no key", map[string]string{}, EnvTokenKey + " is required"},
		{"short key", map[string]string{EnvTokenKey: base64.StdEncoding.EncodeToString([]byte("short"))}, "5 bytes"},
		{"key not base64", map[string]string{EnvTokenKey: "not base64!"}, "not base64"},
		{"short bootstrap", map[string]string{EnvTokenKey: key, EnvBootstrapToken: "letmein"}, EnvBootstrapToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(cfg.TokenKey) < MinTokenKeyLen || cfg.BootstrapToken != tt.env[EnvBootstrapToken] {
					t.Errorf("cfg = %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if v := tt.env[EnvBootstrapToken]; v != "" && strings.Contains(err.Error(), v) {
				t.Errorf("error %q echoes the secret", err)
			}
		})
	}
}
