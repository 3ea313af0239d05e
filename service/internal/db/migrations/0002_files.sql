-- 0002_files: the File & Metadata and Storage tables (nodes, versions, blobs, uploads, the
-- change journal and its per-tenant counter, the outbox, quotas), all under row-level
-- security like 0001's.
--
-- Forward-only: never edit this file once released; add a new migration instead.

-- Blobs: content-addressed (BLAKE3, 64 lower-case hex digits), deduplicated per tenant,
-- reference-counted by versions. state says whether the object exists at
-- blobs/<tenant>/<hash>: 'committed' guarantees it; 'staging' (a row being promoted) and
-- 'deleting' (refcount reached 0, the object is being removed) mean it may not, so a commit
-- of the same content copies the object again. Rows are locked (FOR UPDATE) while the object
-- is copied or deleted, which orders promotion against deletion.
CREATE TABLE blobs (
	tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	hash       text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
	size       bigint NOT NULL CHECK (size >= 0),
	refcount   bigint NOT NULL DEFAULT 0 CHECK (refcount >= 0),
	state      text NOT NULL CHECK (state IN ('staging', 'committed', 'deleting')),
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, hash),
	CHECK (state = 'committed' OR refcount = 0)
);
CREATE INDEX blobs_unreferenced ON blobs (tenant_id, updated_at) WHERE state <> 'committed';

-- Nodes: the namespace. A folder or a file, under a parent folder (NULL: the tenant's root).
-- Names are unique among the live (not trashed) children of a parent; deleted_at marks a node
-- put in the trash by itself (its descendants are in the trash through it).
CREATE TABLE nodes (
	tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id                 uuid NOT NULL DEFAULT gen_random_uuid(),
	parent_id          uuid,
	type               text NOT NULL CHECK (type IN ('file', 'folder')),
	name               text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 255 AND name NOT IN ('.', '..') AND strpos(name, '/') = 0),
	current_version_id uuid, -- files: the newest version (NULL only while the first is written)
	size               bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
	created_by         uuid NOT NULL,
	created_at         timestamptz NOT NULL DEFAULT now(),
	updated_at         timestamptz NOT NULL DEFAULT now(),
	deleted_at         timestamptz,
	deleted_by         uuid,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, parent_id) REFERENCES nodes (tenant_id, id),
	CHECK (type = 'file' OR current_version_id IS NULL),
	CHECK (parent_id IS DISTINCT FROM id)
);
-- The root is parent NULL: coalesce makes root names unique too.
CREATE UNIQUE INDEX nodes_live_name ON nodes (tenant_id, coalesce(parent_id, '00000000-0000-0000-0000-000000000000'::uuid), name) WHERE deleted_at IS NULL;
-- Listing order: name (byte order, whatever the database collation), then id.
CREATE INDEX nodes_children ON nodes (tenant_id, coalesce(parent_id, '00000000-0000-0000-0000-000000000000'::uuid), name COLLATE "C", id) WHERE deleted_at IS NULL;
CREATE INDEX nodes_trash ON nodes (tenant_id, deleted_at) WHERE deleted_at IS NOT NULL;

-- Versions: immutable; each is one blob. number counts a node's versions from 1;
-- base_version_id is the version the writer started from (NULL for a new file).
CREATE TABLE versions (
	tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id              uuid NOT NULL DEFAULT gen_random_uuid(),
	node_id         uuid NOT NULL,
	number          integer NOT NULL CHECK (number > 0),
	blob_hash       text NOT NULL,
	size            bigint NOT NULL CHECK (size >= 0),
	created_by      uuid NOT NULL,
	base_version_id uuid,
	created_at      timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, node_id, number),
	FOREIGN KEY (tenant_id, node_id) REFERENCES nodes (tenant_id, id) ON DELETE CASCADE,
	FOREIGN KEY (tenant_id, blob_hash) REFERENCES blobs (tenant_id, hash)
);
CREATE INDEX versions_blob ON versions (tenant_id, blob_hash);

ALTER TABLE nodes ADD FOREIGN KEY (tenant_id, current_version_id) REFERENCES versions (tenant_id, id);

-- Uploads: a declared file (path, size, BLAKE3) whose bytes go to a staging object through a
-- presigned PUT, until commit verifies them. status: pending → committed | conflicted (kept
-- as a conflicted copy) | rejected (size or hash mismatch) | expired (never committed in time).
CREATE TABLE uploads (
	tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id            uuid NOT NULL DEFAULT gen_random_uuid(),
	path          text NOT NULL CHECK (octet_length(path) BETWEEN 1 AND 4096),
	staging_key   text NOT NULL,
	size          bigint NOT NULL CHECK (size >= 0),
	blake3        text NOT NULL CHECK (blake3 ~ '^[0-9a-f]{64}$'),
	sha256        text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
	created_by    uuid NOT NULL,
	created_at    timestamptz NOT NULL DEFAULT now(),
	expires_at    timestamptz NOT NULL,
	status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'committed', 'conflicted', 'rejected', 'expired')),
	finished_at   timestamptz,
	version_id    uuid,
	PRIMARY KEY (tenant_id, id),
	CHECK ((status = 'pending') = (finished_at IS NULL))
);
CREATE INDEX uploads_pending ON uploads (tenant_id, expires_at) WHERE status = 'pending';

-- The change journal: every namespace change, numbered per tenant from 1 without gaps in
-- commit order (seq comes from journal_counters, whose row the writing transaction holds
-- until it commits). Sync reads it; it is append-only for the application.
CREATE TABLE change_journal (
	tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	seq        bigint NOT NULL CHECK (seq > 0),
	node_id    uuid NOT NULL,
	op         text NOT NULL CHECK (op IN ('create', 'update', 'move', 'trash', 'restore', 'purge')),
	node_type  text NOT NULL CHECK (node_type IN ('file', 'folder')),
	parent_id  uuid,
	name       text NOT NULL,
	version_id uuid,
	blob_hash  text,
	actor_id   uuid NOT NULL,
	at         timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX change_journal_node ON change_journal (tenant_id, node_id, seq);

CREATE TABLE journal_counters (
	tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
	seq       bigint NOT NULL CHECK (seq >= 0)
);

-- The outbox: events written in the same transaction as the change they announce; the relay
-- publishes them in id order and sets published_at.
CREATE TABLE outbox (
	tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id           bigint GENERATED BY DEFAULT AS IDENTITY,
	event_id     uuid NOT NULL DEFAULT gen_random_uuid(),
	topic        text NOT NULL CHECK (topic ~ '^[a-z0-9_]+(\.[a-z0-9_]+)+$'),
	payload      jsonb NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now(),
	published_at timestamptz,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, event_id)
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Quotas: per-tenant limits overriding bitvaultd's defaults (NULL: the default). Checked
-- when an upload starts.
CREATE TABLE quotas (
	tenant_id   uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
	bytes_limit bigint CHECK (bytes_limit >= 0),
	files_limit bigint CHECK (files_limit >= 0),
	updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Row-level security, as in 0001: rows of the tenant set for the transaction, none without.

ALTER TABLE blobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE blobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON blobs
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON blobs TO bitvault_app;

ALTER TABLE nodes ENABLE ROW LEVEL SECURITY;
ALTER TABLE nodes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON nodes
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON nodes TO bitvault_app;

ALTER TABLE versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON versions
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, DELETE ON versions TO bitvault_app;

ALTER TABLE uploads ENABLE ROW LEVEL SECURITY;
ALTER TABLE uploads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON uploads
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON uploads TO bitvault_app;

ALTER TABLE change_journal ENABLE ROW LEVEL SECURITY;
ALTER TABLE change_journal FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON change_journal
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT ON change_journal TO bitvault_app;

ALTER TABLE journal_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON journal_counters
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE ON journal_counters TO bitvault_app;

ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE ON outbox TO bitvault_app;
GRANT USAGE ON SEQUENCE outbox_id_seq TO bitvault_app;

ALTER TABLE quotas ENABLE ROW LEVEL SECURITY;
ALTER TABLE quotas FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON quotas
	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON quotas TO bitvault_app;
