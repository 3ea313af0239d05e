-- 0007_nodes_parent_key: index-backed child lookups under row-level security.
--
-- Forward-only: never edit this file once released; add a new migration instead.
--
-- 0002 indexed children on the expression coalesce(parent_id, <root>). Measured at 1.1M nodes
-- in one tenant, the planner never used those indexes for the app role: with row-level
-- security, a query's own conditions may be checked before the policy's only if they cannot
-- leak values, and PostgreSQL treats every COALESCE as possibly leaky (contain_leaked_vars),
-- so the child lookup and the folder listing fell back to a sequential scan of the tenant's
-- nodes (0.5 s at 1M; the commit path does that lookup for every path segment).
-- parent_key is the same expression stored as a plain column, so the lookups compare a
-- column with a parameter (uuid =, which is leakproof) and become index scans.
ALTER TABLE nodes ADD COLUMN parent_key uuid NOT NULL
	GENERATED ALWAYS AS (coalesce(parent_id, '00000000-0000-0000-0000-000000000000'::uuid)) STORED;

-- The same two indexes as 0002's, on the column.
CREATE UNIQUE INDEX nodes_live_name_key ON nodes (tenant_id, parent_key, name) WHERE deleted_at IS NULL;
CREATE INDEX nodes_children_key ON nodes (tenant_id, parent_key, name COLLATE "C", id) WHERE deleted_at IS NULL;
DROP INDEX nodes_live_name;
DROP INDEX nodes_children;

-- Subtree walks (purge, trash listing of a folder's contents) follow parent_id whether or not
-- the children are in the trash, and the foreign key (tenant_id, parent_id) needs it for
-- deletes of a parent too.
CREATE INDEX nodes_parent ON nodes (tenant_id, parent_id) WHERE parent_id IS NOT NULL;
