-- 0008_rate_limits: counters of failed password checks (logins, share-link passwords), the
-- brute-force lockout of package ratelimit. They are in the database rather than in each
-- process so that a lockout holds across bitvaultd replicas.
--
-- Forward-only: never edit this file once released; add a new migration instead.

-- One counter per tenant, scope and key: scope is what is counted (login.target_ip,
-- login.target, login.ip, link.target_ip, ...), key the SHA-256 of the scope and the subject
-- (email, link id, client address), which bounds the row's size whatever a client sends.
-- failures counts the failures since window_start; expires_at ends the window, or the lock
-- once failures reached the limit. Rows past expires_at are dead and swept by the writers.
--
-- An ordinary tenant table under the tenant_isolation policy: login resolves the tenant by
-- slug first (app.tenant_slug, 0001) and then sets app.tenant_id, as for users; no
-- cross-tenant access is needed, so no SECURITY DEFINER function either.
CREATE TABLE rate_limits (
	tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	scope        text NOT NULL CHECK (scope ~ '^[a-z]+\.[a-z_]+$'),
	key          bytea NOT NULL CHECK (octet_length(key) = 32),
	failures     integer NOT NULL CHECK (failures > 0),
	window_start timestamptz NOT NULL,
	expires_at   timestamptz NOT NULL CHECK (expires_at > window_start),
	PRIMARY KEY (tenant_id, scope, key)
);
-- The sweep of expired rows, per tenant.
CREATE INDEX rate_limits_expiry ON rate_limits (tenant_id, expires_at);

ALTER TABLE rate_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE rate_limits FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rate_limits
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limits TO bitvault_app;
