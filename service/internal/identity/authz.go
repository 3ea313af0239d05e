package identity

import (
	"slices"
	"sort"
)

// Permission is an action a principal may be allowed.
type Permission string

// Permissions. Later modules add theirs here, in rolePermissions and (if API tokens may use
// them) in scopePermissions; anything not listed is denied.
const (
	PermFilesRead  Permission = "files:read"
	PermFilesWrite Permission = "files:write"
	// PermAPITokensManage: create, list and revoke one's own API tokens.
	PermAPITokensManage Permission = "api_tokens:manage"
	// PermAPITokensAdmin: revoke any API token of the tenant.
	PermAPITokensAdmin Permission = "api_tokens:admin"
	// PermMembersManage: add users and change roles (an admin cannot make owners).
	PermMembersManage Permission = "members:manage"
	// PermTenantManage: billing, suspending or deleting the tenant. No scope unlocks it:
	// interactive sessions only.
	PermTenantManage Permission = "tenant:manage"
	// PermTenantAdmin: the tenant administration API (/v1/admin: quotas, usage, feature
	// flags, users, the audit log).
	PermTenantAdmin Permission = "tenant:admin"
)

// Scope limits what an API token may do.
type Scope string

// Scopes an API token may carry.
const (
	ScopeFilesRead  Scope = "files:read"
	ScopeFilesWrite Scope = "files:write"
	ScopeAdmin      Scope = "admin"
)

func set[T comparable](vs ...T) map[T]bool {
	m := make(map[T]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

// rolePermissions is the RBAC table.
var rolePermissions = map[Role]map[Permission]bool{
	RoleOwner:  set(PermFilesRead, PermFilesWrite, PermAPITokensManage, PermAPITokensAdmin, PermMembersManage, PermTenantManage, PermTenantAdmin),
	RoleAdmin:  set(PermFilesRead, PermFilesWrite, PermAPITokensManage, PermAPITokensAdmin, PermMembersManage, PermTenantAdmin),
	RoleMember: set(PermFilesRead, PermFilesWrite, PermAPITokensManage),
	RoleViewer: set(PermFilesRead, PermAPITokensManage),
}

// scopePermissions says which permissions each scope unlocks for an API token.
var scopePermissions = map[Scope]map[Permission]bool{
	ScopeFilesRead:  set(PermFilesRead),
	ScopeFilesWrite: set(PermFilesRead, PermFilesWrite),
	ScopeAdmin:      set(PermAPITokensManage, PermAPITokensAdmin, PermMembersManage, PermTenantAdmin),
}

// Authorize allows perm to p only if p's role has it and, for an API token, one of its scopes
// unlocks it. Everything else is denied: unknown roles, unknown permissions, permissions no
// scope unlocks.
func Authorize(p Principal, perm Permission) error {
	if p.UserID == "" || p.TenantID == "" {
		return ErrUnauthenticated
	}
	if !rolePermissions[p.Role][perm] {
		return ErrPermissionDenied
	}
	if p.IsAPIToken() {
		for _, sc := range p.Scopes {
			if scopePermissions[sc][perm] {
				return nil
			}
		}
		return ErrInsufficientScope
	}
	return nil
}

// canGrantScope reports whether p itself is allowed every permission scope unlocks, so that
// a token never exceeds its user's role, nor the token it was created with.
func canGrantScope(p Principal, scope Scope) bool {
	perms, ok := scopePermissions[scope]
	if !ok {
		return false
	}
	for perm := range perms {
		if Authorize(p, perm) != nil {
			return false
		}
	}
	return true
}

// normalizeScopes validates, de-duplicates and sorts scopes.
func normalizeScopes(in []string) ([]Scope, error) {
	if len(in) == 0 {
		return nil, invalid("scopes: at least one of files:read, files:write, admin")
	}
	var out []Scope
	for _, s := range in {
		sc := Scope(s)
		if _, ok := scopePermissions[sc]; !ok {
			return nil, invalid("scopes: unknown scope %q (want files:read, files:write or admin)", s)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}
