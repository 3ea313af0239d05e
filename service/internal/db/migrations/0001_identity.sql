-- 0001_identity: the application role and the Identity & Access tables (tenants, users,
-- memberships, sessions, refresh_tokens, api_tokens), all under row-level security.
--
-- Runs as the schema owner (a non-superuser with CREATEROLE is enough). Forward-only: never
-- edit this file once released; add a new migration instead.

-- The role bitvaultd connects as: not the owner, no superuser, no BYPASSRLS. Roles are
-- cluster-wide, so it may exist already (another database of the cluster, or created by an
-- operator with a password); concurrent creators in other databases are tolerated.
DO $$
BEGIN
	CREATE ROLE bitvault_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
	NULL;
END
$$;

DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bitvault_app' AND (rolsuper OR rolbypassrls)) THEN
		RAISE EXCEPTION 'role bitvault_app must be neither a superuser nor BYPASSRLS: row-level security would not apply to it';
	END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO bitvault_app;
-- bitvaultd checks at start that the schema is as new as it needs.
GRANT SELECT ON schema_migrations TO bitvault_app;

-- Tenants: the isolation boundary. A tenant sees its own row (app.tenant_id); login, which
-- knows only the slug, may read the one tenant whose slug it sets in app.tenant_slug.
CREATE TABLE tenants (
	id         uuid PRIMARY KEY,
	slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
	name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	plan       text NOT NULL DEFAULT 'free',
	status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
	created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
	USING (id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY tenant_by_slug ON tenants FOR SELECT
	USING (slug = nullif(current_setting('app.tenant_slug', true), ''));
GRANT SELECT, INSERT, UPDATE ON tenants TO bitvault_app;

-- Users belong to one tenant (the digest's USER has tenant_id): the same person in two
-- tenants has two accounts, each with its own password and role. Emails are stored
-- lower-cased and unique per tenant.
CREATE TABLE users (
	tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id            uuid NOT NULL DEFAULT gen_random_uuid(),
	email         text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 320),
	display_name  text NOT NULL DEFAULT '',
	password_hash text, -- argon2id PHC string; NULL: no password login
	status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
	created_at    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, email)
);

-- A user's role in the tenant (tenant-scoped RBAC; no membership, no access).
CREATE TABLE memberships (
	tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	user_id    uuid NOT NULL,
	role       text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, user_id),
	FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

-- A login session: the family of its rotating refresh tokens. Revoking it (logout, reuse of
-- a rotated refresh token) ends every token of the family, access tokens included.
CREATE TABLE sessions (
	tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id                uuid NOT NULL DEFAULT gen_random_uuid(),
	user_id           uuid NOT NULL,
	created_at        timestamptz NOT NULL DEFAULT now(),
	expires_at        timestamptz NOT NULL, -- absolute end, whatever the refreshes
	last_refreshed_at timestamptz,
	revoked_at        timestamptz,
	revoked_reason    text CHECK (revoked_reason IN ('logout', 'refresh_token_reuse', 'admin')),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
	CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);

-- Refresh tokens, stored as SHA-256 of the token. Each is used once: used_at is set when it
-- is rotated, and presenting it again revokes the session.
CREATE TABLE refresh_tokens (
	tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id         uuid NOT NULL DEFAULT gen_random_uuid(),
	session_id uuid NOT NULL,
	token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL,
	used_at    timestamptz,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, id) ON DELETE CASCADE
);

-- Personal API tokens (a credential of a user, not a principal): SHA-256 of the token,
-- scopes, mandatory expiry, soft revocation.
CREATE TABLE api_tokens (
	tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id           uuid NOT NULL DEFAULT gen_random_uuid(),
	user_id      uuid NOT NULL,
	name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
	token_hash   bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
	prefix       text NOT NULL, -- the token's first characters, to recognise it in a list
	scopes       text[] NOT NULL CHECK (cardinality(scopes) > 0),
	created_at   timestamptz NOT NULL DEFAULT now(),
	expires_at   timestamptz NOT NULL CHECK (expires_at > created_at),
	last_used_at timestamptz,
	revoked_at   timestamptz,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX api_tokens_user ON api_tokens (tenant_id, user_id);

-- Row-level security on every tenant-owned table: rows of the tenant set for the
-- transaction (SELECT set_config('app.tenant_id', $1, true)), none without one. The USING
-- expression is also the WITH CHECK one, so a row cannot be written into another tenant.

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON users TO bitvault_app;

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memberships
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON memberships TO bitvault_app;

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sessions
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions TO bitvault_app;

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON refresh_tokens TO bitvault_app;

ALTER TABLE api_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_tokens
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON api_tokens TO bitvault_app;
