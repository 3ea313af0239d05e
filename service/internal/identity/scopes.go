package identity

// ScopeAllows reports whether p's credential lets it use perm at all, whatever its role:
// always for a session, and for an API token only when one of its scopes unlocks perm.
// Modules granting access through resources (shares) rather than roles combine it with their
// grants, so that a token never exceeds its scopes.
func ScopeAllows(p Principal, perm Permission) bool {
	if p.UserID == "" || p.TenantID == "" {
		return false
	}
	if !p.IsAPIToken() {
		return true
	}
	for _, sc := range p.Scopes {
		if scopePermissions[sc][perm] {
			return true
		}
	}
	return false
}
