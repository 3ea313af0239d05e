-- 0010_retention: bounded growth of the outbox, the processed-event ledger and the webhook
-- deliveries (service/internal/retention runs the sweep; its package doc explains the horizons).
--
-- Forward-only: never edit this file once released; add a new migration instead.

-- The sweep deletes expired rows of every tenant while bitvault_app sees one tenant at a time
-- and may not delete outbox rows at all. As for the relay (0005) and the GC (0006), the
-- cross-tenant access is confined to SECURITY DEFINER functions owned by a NOLOGIN role,
-- neither superuser nor BYPASSRLS. It is a role of its own rather than bitvault_relay or
-- bitvault_gc: those hold no DELETE on anything (the relay only reads and marks the outbox,
-- the GC role only finds tenants), and giving either of them cross-tenant DELETE on three
-- tables would widen every function they already own; bitvault_retention can delete and
-- nothing else.
DO $$
BEGIN
	CREATE ROLE bitvault_retention NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
	NULL;
END
$$;

DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bitvault_retention' AND (rolsuper OR rolbypassrls OR rolcanlogin)) THEN
		RAISE EXCEPTION 'role bitvault_retention must be NOLOGIN and neither a superuser nor BYPASSRLS';
	END IF;
END
$$;

GRANT bitvault_retention TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO bitvault_retention;

-- Privileges: DELETE, and SELECT on the key and the columns the conditions read (a DELETE's
-- WHERE needs them). The policies let the role see and delete every tenant's rows, and a
-- RESTRICTIVE policy per table bars, whatever a function's query says, the rows that must
-- never go: unsent outbox rows and pending deliveries. (The tables' tenant_isolation
-- policies apply to every role, this one included, but are permissive: OR'ed with these,
-- they add nothing here, while the restrictive ones are AND'ed with everything.)
GRANT SELECT (tenant_id, id, published_at), DELETE ON outbox TO bitvault_retention;
CREATE POLICY retention_read ON outbox FOR SELECT TO bitvault_retention USING (true);
CREATE POLICY retention_delete ON outbox FOR DELETE TO bitvault_retention USING (true);
CREATE POLICY retention_sent_only ON outbox AS RESTRICTIVE FOR DELETE TO bitvault_retention
	USING (published_at IS NOT NULL);

GRANT SELECT (tenant_id, consumer, event_id, processed_at), DELETE ON processed_events TO bitvault_retention;
CREATE POLICY retention_read ON processed_events FOR SELECT TO bitvault_retention USING (true);
CREATE POLICY retention_delete ON processed_events FOR DELETE TO bitvault_retention USING (true);

GRANT SELECT (tenant_id, id, status, created_at), DELETE ON webhook_deliveries TO bitvault_retention;
CREATE POLICY retention_read ON webhook_deliveries FOR SELECT TO bitvault_retention USING (true);
CREATE POLICY retention_delete ON webhook_deliveries FOR DELETE TO bitvault_retention USING (true);
CREATE POLICY retention_settled_only ON webhook_deliveries AS RESTRICTIVE FOR DELETE TO bitvault_retention
	USING (status <> 'pending');

-- The sweep takes the oldest expired rows first, a batch at a time, through these indexes
-- (without them every batch would scan the table). The conditions compare columns with
-- parameters through leakproof operators, so the planner may use the indexes under
-- row-level security (see 0007). Migrations run in a transaction, so these are plain CREATE
-- INDEX, not CONCURRENTLY: on a deployment whose tables already grew large, writes to them
-- wait for the build once, at the upgrade.
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);
CREATE INDEX webhook_deliveries_settled ON webhook_deliveries (created_at) WHERE status <> 'pending';

-- The purge functions delete up to p_limit rows older than p_older_than (measured on the
-- database clock, which also wrote the timestamps) and return how many they deleted; the
-- caller repeats until a call deletes less than p_limit. Each call is one short statement
-- in its own transaction, so no lock is held for long. They take no tenant and return no
-- row data: bitvault_app, which may EXECUTE them, learns a count and can delete nothing but
-- expired rows.
--
-- Floors: bitvault_app chooses p_older_than, so each function refuses one below what
-- exactly-once needs, whatever the app's configuration says (the app validates its own,
-- larger minimums at start): the outbox keeps sent rows at least the bus's duplicate window
-- (10 minutes), the ledger keeps rows at least the events stream's MaxAge (7 days: an event
-- may be redelivered while the stream holds it), deliveries are kept at least a day. p_limit
-- is bounded (1 to 10000) so that a call stays short.
--
-- Concurrent sweeps (several bitvaultd replicas) do not wait on each other's row locks: a
-- call that cannot take the table's transaction-scoped advisory lock (class 0x62760010, key
-- 1 to 3) returns 0 at once and leaves the work to the sweep holding it.

CREATE FUNCTION retention_purge_outbox(p_older_than interval, p_limit integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
	n integer;
BEGIN
	IF p_older_than IS NULL OR p_older_than < interval '10 minutes' THEN
		RAISE EXCEPTION 'retention_purge_outbox: retention % is below the floor of 10 minutes (the bus duplicate window)', p_older_than
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
		RAISE EXCEPTION 'retention_purge_outbox: limit % is outside 1..10000', p_limit USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT pg_try_advisory_xact_lock(1651900432, 1) THEN
		RETURN 0;
	END IF;
	DELETE FROM outbox o USING (
		SELECT s.tenant_id, s.id FROM outbox s
		WHERE s.published_at IS NOT NULL AND s.published_at < now() - p_older_than
		ORDER BY s.published_at LIMIT p_limit
	) d
	WHERE o.tenant_id = d.tenant_id AND o.id = d.id;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

CREATE FUNCTION retention_purge_ledger(p_older_than interval, p_limit integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
	n integer;
BEGIN
	IF p_older_than IS NULL OR p_older_than < interval '7 days' THEN
		RAISE EXCEPTION 'retention_purge_ledger: retention % is below the floor of 7 days (the events stream MaxAge)', p_older_than
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
		RAISE EXCEPTION 'retention_purge_ledger: limit % is outside 1..10000', p_limit USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT pg_try_advisory_xact_lock(1651900432, 2) THEN
		RETURN 0;
	END IF;
	DELETE FROM processed_events p USING (
		SELECT s.tenant_id, s.consumer, s.event_id FROM processed_events s
		WHERE s.processed_at < now() - p_older_than
		ORDER BY s.processed_at LIMIT p_limit
	) d
	WHERE p.tenant_id = d.tenant_id AND p.consumer = d.consumer AND p.event_id = d.event_id;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

CREATE FUNCTION retention_purge_webhook_deliveries(p_older_than interval, p_limit integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
	n integer;
BEGIN
	IF p_older_than IS NULL OR p_older_than < interval '1 day' THEN
		RAISE EXCEPTION 'retention_purge_webhook_deliveries: retention % is below the floor of 1 day', p_older_than
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
		RAISE EXCEPTION 'retention_purge_webhook_deliveries: limit % is outside 1..10000', p_limit USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT pg_try_advisory_xact_lock(1651900432, 3) THEN
		RETURN 0;
	END IF;
	DELETE FROM webhook_deliveries w USING (
		SELECT s.tenant_id, s.id FROM webhook_deliveries s
		WHERE s.status <> 'pending' AND s.created_at < now() - p_older_than
		ORDER BY s.created_at LIMIT p_limit
	) d
	WHERE w.tenant_id = d.tenant_id AND w.id = d.id;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

GRANT CREATE ON SCHEMA public TO bitvault_retention;
ALTER FUNCTION retention_purge_outbox(interval, integer) OWNER TO bitvault_retention;
ALTER FUNCTION retention_purge_ledger(interval, integer) OWNER TO bitvault_retention;
ALTER FUNCTION retention_purge_webhook_deliveries(interval, integer) OWNER TO bitvault_retention;
REVOKE CREATE ON SCHEMA public FROM bitvault_retention;
REVOKE ALL ON FUNCTION retention_purge_outbox(interval, integer), retention_purge_ledger(interval, integer),
	retention_purge_webhook_deliveries(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention_purge_outbox(interval, integer), retention_purge_ledger(interval, integer),
	retention_purge_webhook_deliveries(interval, integer) TO bitvault_app;
-- The owner leaves the role again: the retention policies apply to nobody but the functions.
REVOKE bitvault_retention FROM CURRENT_USER;
