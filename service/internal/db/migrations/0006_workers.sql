-- 0006_workers: the GC sweep's cross-tenant view and the indexer's extracted content.
--
-- Forward-only: never edit this file once released; add a new migration instead.

-- The GC sweep must find the tenants with garbage (unreferenced blobs, pending uploads past
-- their expiry) while bitvault_app sees one tenant's rows at a time. As for the outbox relay
-- (0005), the cross-tenant read is confined to one SECURITY DEFINER function owned by a
-- NOLOGIN role, bitvault_gc, neither superuser nor BYPASSRLS, whose only privilege is SELECT
-- on the two tables through its own policies. It returns tenant ids only: the sweep then
-- works inside each tenant's transaction, under RLS, like everything else.
DO $$
BEGIN
	CREATE ROLE bitvault_gc NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
	NULL;
END
$$;

DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bitvault_gc' AND (rolsuper OR rolbypassrls OR rolcanlogin)) THEN
		RAISE EXCEPTION 'role bitvault_gc must be NOLOGIN and neither a superuser nor BYPASSRLS';
	END IF;
END
$$;

GRANT bitvault_gc TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO bitvault_gc;
GRANT SELECT (tenant_id, refcount, state, updated_at) ON blobs TO bitvault_gc;
GRANT SELECT (tenant_id, status, expires_at) ON uploads TO bitvault_gc;
CREATE POLICY gc_read ON blobs FOR SELECT TO bitvault_gc USING (true);
CREATE POLICY gc_read ON uploads FOR SELECT TO bitvault_gc USING (true);

-- gc_tenants: the tenants with unreferenced blobs or with pending uploads expired at p_now.
CREATE FUNCTION gc_tenants(p_now timestamptz)
RETURNS TABLE (tenant_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
	SELECT b.tenant_id FROM blobs b WHERE b.refcount = 0 AND b.state <> 'committed'
	UNION
	SELECT u.tenant_id FROM uploads u WHERE u.status = 'pending' AND u.expires_at <= p_now
$$;

GRANT CREATE ON SCHEMA public TO bitvault_gc;
ALTER FUNCTION gc_tenants(timestamptz) OWNER TO bitvault_gc;
REVOKE CREATE ON SCHEMA public FROM bitvault_gc;
REVOKE ALL ON FUNCTION gc_tenants(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gc_tenants(timestamptz) TO bitvault_app;
REVOKE bitvault_gc FROM CURRENT_USER;

-- Extracted text of small text-like files, kept by the indexer consumer from the files
-- events (one row per file node: its current version's text). Searched with the node's name
-- (weighted below it).
CREATE TABLE node_content (
	tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	node_id       uuid NOT NULL,
	version_id    uuid NOT NULL,
	content       text NOT NULL,
	-- The content's document at weight D (below the name's A), written by the indexer.
	search_vector tsvector NOT NULL,
	indexed_at    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, node_id),
	FOREIGN KEY (tenant_id, node_id) REFERENCES nodes (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX node_content_search ON node_content USING gin (search_vector);

ALTER TABLE node_content ENABLE ROW LEVEL SECURITY;
ALTER TABLE node_content FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON node_content
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON node_content TO bitvault_app;

-- Webhooks: per-tenant endpoints and their deliveries. The secret signs the payloads
-- (HMAC-SHA256), so it is stored as is (it cannot be hashed), protected like every tenant row
-- by row-level security and shown to the caller only once, when the endpoint is created.
-- events: the event types delivered (empty: all).
CREATE TABLE webhook_endpoints (
	tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id         uuid NOT NULL DEFAULT gen_random_uuid(),
	url        text NOT NULL CHECK (url ~ '^https?://' AND octet_length(url) <= 2048),
	secret     text NOT NULL,
	events     text[] NOT NULL DEFAULT '{}',
	created_by uuid NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id)
);

-- One delivery per (endpoint, event): pending until delivered, or dead after the last retry.
CREATE TABLE webhook_deliveries (
	tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id              uuid NOT NULL DEFAULT gen_random_uuid(),
	endpoint_id     uuid NOT NULL,
	event_id        text NOT NULL,
	event_type      text NOT NULL,
	payload         jsonb NOT NULL,
	status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
	attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	next_attempt_at timestamptz,
	last_attempt_at timestamptz,
	last_status     integer,
	last_error      text,
	created_at      timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, endpoint_id, event_id),
	FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE,
	CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (tenant_id, endpoint_id, created_at DESC);

ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_endpoints
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints TO bitvault_app;

ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_deliveries
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_deliveries TO bitvault_app;

-- webhook_due_tenants: the tenants with deliveries due at p_now, for the dispatcher (which
-- then works inside each tenant's transaction). Owned by bitvault_gc, the NOLOGIN
-- cross-tenant reader above, given SELECT on the two columns it needs.
GRANT bitvault_gc TO CURRENT_USER;
GRANT SELECT (tenant_id, status, next_attempt_at) ON webhook_deliveries TO bitvault_gc;
CREATE POLICY gc_read ON webhook_deliveries FOR SELECT TO bitvault_gc USING (true);
CREATE FUNCTION webhook_due_tenants(p_now timestamptz)
RETURNS TABLE (tenant_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
	SELECT DISTINCT d.tenant_id FROM webhook_deliveries d WHERE d.status = 'pending' AND d.next_attempt_at <= p_now
$$;
GRANT CREATE ON SCHEMA public TO bitvault_gc;
ALTER FUNCTION webhook_due_tenants(timestamptz) OWNER TO bitvault_gc;
REVOKE CREATE ON SCHEMA public FROM bitvault_gc;
REVOKE ALL ON FUNCTION webhook_due_tenants(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook_due_tenants(timestamptz) TO bitvault_app;
REVOKE bitvault_gc FROM CURRENT_USER;
