-- 0003_sync_sharing_search: the Sync tables (devices and their cursors, the journal's
-- retained horizon), the Sharing tables (shares with users, public links), node metadata and
-- the search vector of nodes, all under row-level security like 0001's and 0002's.
--
-- Forward-only: never edit this file once released; add a new migration instead.

-- Devices: a user's sync clients, each with the journal position (seq) it has applied and
-- acknowledged. The id may be chosen by the client (registering again is idempotent).
CREATE TABLE devices (
	tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id                uuid NOT NULL DEFAULT gen_random_uuid(),
	user_id           uuid NOT NULL,
	name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	sync_cursor       bigint NOT NULL DEFAULT 0 CHECK (sync_cursor >= 0),
	cursor_updated_at timestamptz,
	created_at        timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX devices_user ON devices (tenant_id, user_id, created_at);

-- The journal's retained horizon: every change_journal row with seq <= horizon may have been
-- compacted away, so a cursor below it cannot be resumed (409 cursor_stale: full resync). No
-- row: nothing was ever compacted (horizon 0).
CREATE TABLE journal_horizons (
	tenant_id  uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
	horizon    bigint NOT NULL CHECK (horizon >= 0),
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- Shares: a node (and its subtree) granted to a user of the same tenant as viewer (read) or
-- editor (read and write). Revoking keeps the row (revoked_at); at most one active share per
-- node and user. Purging the node removes its shares.
CREATE TABLE shares (
	tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id         uuid NOT NULL DEFAULT gen_random_uuid(),
	node_id    uuid NOT NULL,
	user_id    uuid NOT NULL,
	role       text NOT NULL CHECK (role IN ('viewer', 'editor')),
	created_by uuid NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	revoked_at timestamptz,
	revoked_by uuid,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, node_id) REFERENCES nodes (tenant_id, id) ON DELETE CASCADE,
	FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
	CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE UNIQUE INDEX shares_active ON shares (tenant_id, node_id, user_id) WHERE revoked_at IS NULL;
CREATE INDEX shares_grantee ON shares (tenant_id, user_id) WHERE revoked_at IS NULL;

-- Public links: an anonymous capability to download one file. The token is stored as its
-- SHA-256 (like API tokens); the optional password as an argon2id PHC string; no expiry
-- (NULL) means until revoked.
CREATE TABLE share_links (
	tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id            uuid NOT NULL DEFAULT gen_random_uuid(),
	node_id       uuid NOT NULL,
	token_hash    bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
	prefix        text NOT NULL, -- the token's first characters, to recognise it in a list
	password_hash text,
	download_only boolean NOT NULL DEFAULT true,
	expires_at    timestamptz,
	created_by    uuid NOT NULL,
	created_at    timestamptz NOT NULL DEFAULT now(),
	revoked_at    timestamptz,
	revoked_by    uuid,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, node_id) REFERENCES nodes (tenant_id, id) ON DELETE CASCADE,
	CHECK (expires_at IS NULL OR expires_at > created_at),
	CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE INDEX share_links_node ON share_links (tenant_id, node_id, created_at);

-- Node metadata: key/value pairs per node (the digest's NODE_METADATA), searched with the
-- names.
CREATE TABLE node_metadata (
	tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	node_id    uuid NOT NULL,
	key        text NOT NULL CHECK (length(key) BETWEEN 1 AND 100),
	value      text NOT NULL CHECK (length(value) <= 1000),
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, node_id, key),
	FOREIGN KEY (tenant_id, node_id) REFERENCES nodes (tenant_id, id) ON DELETE CASCADE
);

-- Search: nodes.search_vector is the node's full-text document in the 'simple' configuration
-- (no stemming, no stop words: names are not prose): its name with punctuation turned into
-- spaces (so "q3-report_final.pdf" is q3, report, final, pdf) at weight A, and its metadata
-- keys and values at weight C. It is a column maintained by triggers rather than a generated
-- column, because it reads node_metadata too (and a generated column would refuse the
-- INSERT … SELECT * copies the row-level security tests make). Searching a name is prefix
-- matching on these lexemes, ranked by ts_rank (see package search).
CREATE FUNCTION node_search_document(p_tenant uuid, p_node uuid, p_name text) RETURNS tsvector
LANGUAGE sql STABLE AS $$
	SELECT setweight(to_tsvector('simple', regexp_replace(p_name, '[[:punct:][:space:]]+', ' ', 'g')), 'A')
		|| setweight(to_tsvector('simple', coalesce((
			SELECT string_agg(regexp_replace(m.key || ' ' || m.value, '[[:punct:][:space:]]+', ' ', 'g'), ' ' ORDER BY m.key)
			FROM node_metadata m WHERE m.tenant_id = p_tenant AND m.node_id = p_node), '')), 'C')
$$;

ALTER TABLE nodes ADD COLUMN search_vector tsvector;

CREATE FUNCTION nodes_search_vector_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	NEW.search_vector := node_search_document(NEW.tenant_id, NEW.id, NEW.name);
	RETURN NEW;
END
$$;
-- On every insert, on renames, and when node_metadata's trigger asks for a refresh (by
-- setting search_vector).
CREATE TRIGGER nodes_search_vector BEFORE INSERT OR UPDATE OF name, search_vector ON nodes
	FOR EACH ROW EXECUTE FUNCTION nodes_search_vector_trigger();

CREATE FUNCTION node_metadata_refresh_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP IN ('UPDATE', 'DELETE') THEN
		UPDATE nodes SET search_vector = NULL WHERE tenant_id = OLD.tenant_id AND id = OLD.node_id;
	END IF;
	IF TG_OP IN ('INSERT', 'UPDATE') THEN
		UPDATE nodes SET search_vector = NULL WHERE tenant_id = NEW.tenant_id AND id = NEW.node_id;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER node_metadata_refresh AFTER INSERT OR UPDATE OR DELETE ON node_metadata
	FOR EACH ROW EXECUTE FUNCTION node_metadata_refresh_trigger();

-- The nodes that exist already.
UPDATE nodes SET search_vector = node_search_document(tenant_id, id, name);

CREATE INDEX nodes_search ON nodes USING gin (search_vector);

-- Row-level security, as in 0001: rows of the tenant set for the transaction, none without.

ALTER TABLE devices ENABLE ROW LEVEL SECURITY;
ALTER TABLE devices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON devices
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON devices TO bitvault_app;

ALTER TABLE journal_horizons ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal_horizons FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON journal_horizons
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE ON journal_horizons TO bitvault_app;

ALTER TABLE shares ENABLE ROW LEVEL SECURITY;
ALTER TABLE shares FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON shares
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON shares TO bitvault_app;

ALTER TABLE share_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE share_links FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON share_links
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON share_links TO bitvault_app;

ALTER TABLE node_metadata ENABLE ROW LEVEL SECURITY;
ALTER TABLE node_metadata FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON node_metadata
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON node_metadata TO bitvault_app;
