-- 0005_events: the outbox relay's cross-tenant access, the consumers' processed-event
-- ledger and the meter's usage counters.
--
-- Forward-only: never edit this file once released; add a new migration instead.

-- The relay reads and marks outbox rows of every tenant, while bitvault_app sees only the
-- rows of the tenant set for its transaction (FORCE ROW LEVEL SECURITY, which binds the table
-- owner too). Rather than give any login role BYPASSRLS, the cross-tenant access is confined
-- to three SECURITY DEFINER functions owned by bitvault_relay: a NOLOGIN role, neither
-- superuser nor BYPASSRLS, whose only privileges are SELECT and UPDATE on outbox through its
-- own policy (relay_all). bitvault_app may EXECUTE the functions but has no other path to
-- other tenants' rows: a policy TO bitvault_relay does not apply to bitvault_app, which is not
-- a member of it.
DO $$
BEGIN
	CREATE ROLE bitvault_relay NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
	NULL;
END
$$;

DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bitvault_relay' AND (rolsuper OR rolbypassrls OR rolcanlogin)) THEN
		RAISE EXCEPTION 'role bitvault_relay must be NOLOGIN and neither a superuser nor BYPASSRLS';
	END IF;
END
$$;

-- The owner (CREATEROLE) makes itself a member so that it may hand the functions over.
GRANT bitvault_relay TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO bitvault_relay;
GRANT SELECT, UPDATE (published_at) ON outbox TO bitvault_relay;
CREATE POLICY relay_all ON outbox TO bitvault_relay USING (true) WITH CHECK (true);

-- outbox_claim claims up to p_limit unpublished rows for the calling transaction, in id order
-- per tenant. A tenant is claimed whole: its transaction-scoped advisory lock (class
-- 0x62760001, key hashtext(tenant)) is taken with pg_try_advisory_xact_lock, so while one
-- relay publishes a tenant's events no other relay touches that tenant, and a tenant's events
-- go out in id order whatever the number of relays. The rows are locked FOR UPDATE SKIP
-- LOCKED as well. The caller publishes them, calls outbox_mark_published and commits; a
-- rollback (crash) releases everything for the next claim. Tenants are served oldest event
-- first.
CREATE FUNCTION outbox_claim(p_limit integer)
RETURNS TABLE (id bigint, tenant_id uuid, event_id uuid, topic text, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
	t uuid;
	left_ integer := p_limit;
	n integer;
BEGIN
	FOR t IN SELECT o.tenant_id FROM outbox o WHERE o.published_at IS NULL
	         GROUP BY o.tenant_id ORDER BY min(o.id) LOOP
		EXIT WHEN left_ <= 0;
		CONTINUE WHEN NOT pg_try_advisory_xact_lock(1651900417, hashtext(t::text));
		-- A new statement, a new snapshot: rows a previous holder of the lock published are
		-- seen as published.
		RETURN QUERY SELECT o.id, o.tenant_id, o.event_id, o.topic, o.payload, o.created_at
			FROM outbox o WHERE o.tenant_id = t AND o.published_at IS NULL
			ORDER BY o.id LIMIT left_ FOR UPDATE SKIP LOCKED;
		GET DIAGNOSTICS n = ROW_COUNT;
		left_ := left_ - n;
	END LOOP;
END
$$;

-- outbox_mark_published sets published_at on the given rows (claimed by the caller).
CREATE FUNCTION outbox_mark_published(p_ids bigint[])
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
	WITH u AS (UPDATE outbox SET published_at = now() WHERE id = ANY (p_ids) AND published_at IS NULL RETURNING 1)
	SELECT count(*)::integer FROM u
$$;

-- outbox_lag: the number of unpublished rows and the age of the oldest one (0 without any).
CREATE FUNCTION outbox_lag(OUT unpublished bigint, OUT oldest_age_seconds double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
	SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::double precision
	FROM outbox WHERE published_at IS NULL
$$;

-- Taking ownership needs CREATE on the schema, which the role keeps only for the hand-over.
GRANT CREATE ON SCHEMA public TO bitvault_relay;
ALTER FUNCTION outbox_claim(integer) OWNER TO bitvault_relay;
ALTER FUNCTION outbox_mark_published(bigint[]) OWNER TO bitvault_relay;
ALTER FUNCTION outbox_lag() OWNER TO bitvault_relay;
REVOKE CREATE ON SCHEMA public FROM bitvault_relay;
REVOKE ALL ON FUNCTION outbox_claim(integer), outbox_mark_published(bigint[]), outbox_lag() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION outbox_claim(integer), outbox_mark_published(bigint[]), outbox_lag() TO bitvault_app;
-- The owner leaves the role again: the relay_all policy must apply to nobody but the functions.
REVOKE bitvault_relay FROM CURRENT_USER;

-- The processed-event ledger: a consumer records the event it applies in the transaction of
-- the effect, so that a redelivered event finds its row and changes nothing.
CREATE TABLE processed_events (
	tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	consumer     text NOT NULL CHECK (consumer ~ '^[a-z0-9_-]+$'),
	event_id     text NOT NULL,
	processed_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, consumer, event_id)
);

-- Usage counters kept by the meter consumer from the files events.
CREATE TABLE usage_counters (
	tenant_id        uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
	versions_created bigint NOT NULL DEFAULT 0,
	bytes_written    bigint NOT NULL DEFAULT 0,
	nodes_purged     bigint NOT NULL DEFAULT 0,
	blobs_released   bigint NOT NULL DEFAULT 0,
	events           bigint NOT NULL DEFAULT 0,
	updated_at       timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE processed_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE processed_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON processed_events
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, DELETE ON processed_events TO bitvault_app;

ALTER TABLE usage_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_counters
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE ON usage_counters TO bitvault_app;
