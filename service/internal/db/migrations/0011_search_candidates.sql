-- 0011_search_candidates: index-backed full-text candidates under row-level security.
--
-- Forward-only: never edit this file once released; add a new migration instead.
--
-- Search matched nodes with `document @@ tsquery` in a query run by bitvault_app. Under
-- row-level security the planner may use an index for a query's own condition only if the
-- condition cannot leak values, and the text-search match operator (ts_match_vq) is not
-- marked leakproof, so the GIN indexes nodes_search and node_content_search were never used:
-- every search read all of the tenant's nodes (180 ms at 1.1M nodes for a word matching
-- nothing, and the whole CPU under load). Marking a built-in operator leakproof needs a
-- superuser and changes it for every database of the cluster: not an option.
--
-- As for the relay (0005) and the GC (0006), the lookup is confined to one SECURITY
-- DEFINER function owned by a NOLOGIN role, bitvault_search, neither superuser nor
-- BYPASSRLS, that may only SELECT the search columns through its own policies (so no
-- security barrier stops the index). The function is tenant-scoped by construction: it
-- reads app.tenant_id, the setting that scopes every tenant transaction, fails without
-- it, and returns node ids only. The search query (package search) then joins them to
-- nodes as bitvault_app, under the tenant policies, for the ranking, the paths and the
-- permission filter.
DO $$
BEGIN
	CREATE ROLE bitvault_search NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
	NULL;
END
$$;

DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bitvault_search' AND (rolsuper OR rolbypassrls OR rolcanlogin)) THEN
		RAISE EXCEPTION 'role bitvault_search must be NOLOGIN and neither a superuser nor BYPASSRLS';
	END IF;
END
$$;

GRANT bitvault_search TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO bitvault_search;
GRANT SELECT (tenant_id, id, deleted_at, search_vector) ON nodes TO bitvault_search;
GRANT SELECT (tenant_id, node_id, search_vector) ON node_content TO bitvault_search;
CREATE POLICY search_read ON nodes FOR SELECT TO bitvault_search USING (true);
CREATE POLICY search_read ON node_content FOR SELECT TO bitvault_search USING (true);

-- search_candidates: up to p_limit live nodes of the current tenant for each of
--   - the name/metadata document matching p_all (every word),
--   - the content document matching p_all,
--   - and, for queries of several words, both documents matching p_any (some word): a
--     node whose words are split between its name and its content,
-- in no particular order (the caller ranks them and checks the full match). p_limit bounds
-- the work for words that match most of a tenant (see package search).
CREATE FUNCTION search_candidates(p_all tsquery, p_any tsquery, p_limit integer)
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
	(SELECT c.node_id FROM node_content c WHERE c.tenant_id = t AND c.search_vector @@ p_all LIMIT p_limit)
	UNION
	(SELECT c.node_id FROM node_content c JOIN nodes n ON n.tenant_id = c.tenant_id AND n.id = c.node_id
	 WHERE p_any IS DISTINCT FROM p_all AND c.tenant_id = t AND c.search_vector @@ p_any
	   AND n.deleted_at IS NULL AND n.search_vector @@ p_any LIMIT p_limit);
END
$$;

GRANT CREATE ON SCHEMA public TO bitvault_search;
ALTER FUNCTION search_candidates(tsquery, tsquery, integer) OWNER TO bitvault_search;
REVOKE CREATE ON SCHEMA public FROM bitvault_search;
REVOKE ALL ON FUNCTION search_candidates(tsquery, tsquery, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION search_candidates(tsquery, tsquery, integer) TO bitvault_app;
REVOKE bitvault_search FROM CURRENT_USER;
