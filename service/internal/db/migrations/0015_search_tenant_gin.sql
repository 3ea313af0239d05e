-- 0015_search_tenant_gin: full-text indexes led by the tenant.
--
-- Forward-only: never edit this file once released; add a new migration instead.
--
-- nodes_search (0003) and node_content_search (0006) index search_vector alone, so the
-- lookups of search_candidates (0011) built their bitmaps from every tenant's matches and
-- filtered on tenant_id afterwards: the time of a search depended on how common its words
-- were in other tenants' names and contents (a large tenant slowed everyone's searches, and a
-- tenant could time probes to learn whether others use a word). With btree_gin (a trusted
-- extension: the database owner may create it) the GIN indexes lead with tenant_id, so a
-- lookup reads only its tenant's entries.
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE INDEX nodes_search_tenant ON nodes USING gin (tenant_id, search_vector);
CREATE INDEX node_content_search_tenant ON node_content USING gin (tenant_id, search_vector);
DROP INDEX nodes_search;
DROP INDEX node_content_search;

-- search_candidates as in 0011, except that the content lookup skips nodes in the trash by
-- themselves (they took candidate slots and were dropped later).
GRANT bitvault_search TO CURRENT_USER;
CREATE OR REPLACE FUNCTION search_candidates(p_all tsquery, p_any tsquery, p_limit integer)
RETURNS TABLE (node_id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
	t uuid := nullif(current_setting('app.tenant_id', true), '')::uuid;
BEGIN
	IF t IS NULL THEN
		RAISE EXCEPTION 'search_candidates: app.tenant_id is not set' USING ERRCODE = '42501';
	END IF;
	RETURN QUERY
	(SELECT n.id FROM nodes n WHERE n.tenant_id = t AND n.deleted_at IS NULL AND n.search_vector @@ p_all LIMIT p_limit)
	UNION
	(SELECT c.node_id FROM node_content c JOIN nodes n ON n.tenant_id = c.tenant_id AND n.id = c.node_id
	 WHERE c.tenant_id = t AND c.search_vector @@ p_all AND n.deleted_at IS NULL LIMIT p_limit)
	UNION
	(SELECT c.node_id FROM node_content c JOIN nodes n ON n.tenant_id = c.tenant_id AND n.id = c.node_id
	 WHERE p_any IS DISTINCT FROM p_all AND c.tenant_id = t AND c.search_vector @@ p_any
	   AND n.deleted_at IS NULL AND n.search_vector @@ p_any LIMIT p_limit);
END
$$;
REVOKE bitvault_search FROM CURRENT_USER;
