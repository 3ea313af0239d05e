-- 0009_webhook_secrets: webhook signing secrets encrypted at rest.
--
-- Forward-only: never edit this file once released; add a new migration instead.
--
-- bitvaultd now stores webhook_endpoints.secret sealed with AES-256-GCM under a key the
-- database never sees ("enc:v1:<key id>:<ciphertext>", see service/internal/webhooks/
-- secretbox.go). For that reason this migration cannot encrypt the rows written before it
-- (plaintext "whsec_…"): the webhook dispatcher re-encrypts them, at its start and whenever
-- it works for their tenant, and likewise the rows sealed under a key that has since been
-- rotated out. secret_key_id says which key a row is sealed under (NULL: plaintext), so the
-- rows to re-encrypt are found without reading the secrets.
ALTER TABLE webhook_endpoints ADD COLUMN secret_key_id text
	GENERATED ALWAYS AS (CASE WHEN secret LIKE 'enc:v1:%' THEN substr(secret, 8, 8) END) STORED;

-- webhook_secret_stale_tenants: the tenants with an endpoint whose secret is not sealed
-- under p_key_id (the active key), for the dispatcher's sweep at start, which then works
-- inside each tenant's transaction. Cross-tenant like webhook_due_tenants (0006), hence the
-- same confinement: a SECURITY DEFINER function owned by bitvault_gc, the NOLOGIN
-- cross-tenant reader, which may read the two columns it needs (not the secret).
GRANT bitvault_gc TO CURRENT_USER;
GRANT SELECT (tenant_id, secret_key_id) ON webhook_endpoints TO bitvault_gc;
CREATE POLICY gc_read ON webhook_endpoints FOR SELECT TO bitvault_gc USING (true);
CREATE FUNCTION webhook_secret_stale_tenants(p_key_id text)
RETURNS TABLE (tenant_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
	SELECT DISTINCT w.tenant_id FROM webhook_endpoints w WHERE w.secret_key_id IS DISTINCT FROM p_key_id
$$;
GRANT CREATE ON SCHEMA public TO bitvault_gc;
ALTER FUNCTION webhook_secret_stale_tenants(text) OWNER TO bitvault_gc;
REVOKE CREATE ON SCHEMA public FROM bitvault_gc;
REVOKE ALL ON FUNCTION webhook_secret_stale_tenants(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook_secret_stale_tenants(text) TO bitvault_app;
REVOKE bitvault_gc FROM CURRENT_USER;
