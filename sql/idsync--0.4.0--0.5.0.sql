-- idsync 0.4.0 -> 0.5.0: trust. No role gets past what it was granted; README.md, "Security
-- model", has the model. In short:
--   * Only the extension's owner writes idsync's own tables. Every change of replication state
--     goes through a C function that checks its caller (state_writes.cpp) or through a
--     SECURITY DEFINER function whose effect is fixed by the catalogs alone (recomputing a
--     content hash, the event triggers).
--   * EXECUTE is revoked from PUBLIC on everything but the application API; grant_admin,
--     grant_daemon and grant_peer give each kind of role what it needs. A peer role speaks
--     for one node.
--   * Every function runs with search_path pinned, and so does the SQL idsync runs from C.
--   * Triggers read their settings from idsync.tables, never from their arguments; the flag
--     that lets merges keep versions is raised by a checked C function, not by a setting.
--   * Versions are bounded by this node's clock plus idsync.max_clock_skew.
\echo Use "ALTER EXTENSION idsync UPDATE TO '0.5.0'" to load this file. \quit

---------------------------------------------------------------------------------------------
-- Roles
---------------------------------------------------------------------------------------------

-- The roles granted a kind (admin, daemon, peer) by the extension's owner; a peer role speaks
-- for the node node_id. By name, so that dumps restore them.
CREATE TABLE roles (
    role_name name NOT NULL,
    kind text NOT NULL CHECK (kind IN ('admin', 'daemon', 'peer')),
    node_id uuid,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role_name, kind),
    CHECK ((kind = 'peer') = (node_id IS NOT NULL))
);
SELECT pg_catalog.pg_extension_config_dump('roles', '');

-- Per registered table and peer: a resync an operator asked for (idsyncctl resync). The next
-- pass to that peer sends the table as if the peer had none of it; the first pass that read
-- the request and succeeded clears it.
CREATE TABLE resync_requests (
    relid regclass NOT NULL,
    remote_id uuid NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (relid, remote_id)
);
SELECT pg_catalog.pg_extension_config_dump('resync_requests', '');

-- Nodes retired from the set (idsync.retire_node): their sync points are gone and never kept
-- again here, and idsyncd sends them nothing.
CREATE TABLE retired_nodes (
    node_id uuid PRIMARY KEY,
    retired_at timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('retired_nodes', '');

-- Parked rows an administrator discarded (idsync.discard_rejects, idsyncctl rejects discard):
-- kept as a record of what was dropped, by whom and when; never merged again.
CREATE TABLE discarded_rejects (
    LIKE rejects,
    discarded_at timestamptz NOT NULL DEFAULT now(),
    discarded_by name NOT NULL,
    PRIMARY KEY (reject_id)
);
SELECT pg_catalog.pg_extension_config_dump('discarded_rejects', '');

-- Tombstones of lww tables: the natural key of each deleted row (as items carry it) and its row
-- hash, the version that deleted it, its change point and the node it came from (NULL: this
-- one). A delete removes the row from the user's table; its tombstone replicates and keeps an
-- older copy from coming back until reclaim purges it. hash1 and hash2 are the tombstone's
-- share of the table's content hash (idsync._tombstone_hash(key_hash, version));
-- replaced_version is the version a newer tombstone replaced (extension/tombstones.cpp).
CREATE TABLE tombstones (
    relid oid NOT NULL,
    key_hash uuid NOT NULL,
    key jsonb NOT NULL,
    version bigint NOT NULL,
    point bigint NOT NULL,
    origin uuid,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    hash1 bigint NOT NULL,
    hash2 bigint NOT NULL,
    replaced_version bigint,
    PRIMARY KEY (relid, key_hash)
);
CREATE INDEX ON tombstones (relid, point);
SELECT pg_catalog.pg_extension_config_dump('tombstones', '');

-- Versions of lww rows that lost to another version of their key in a merge, for the tables
-- that record them (idsync.record_conflicts): the lost version as it came (an item: the row by
-- column name, references as natural keys; a tombstone: its key, version and marker), its
-- version and node, the version that won and its node (NULL: this one), and what lost to what.
-- The newest conflicts_kept per table are kept.
CREATE TABLE conflicts (
    conflict_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relid oid NOT NULL,
    key jsonb NOT NULL,
    lost jsonb NOT NULL,
    lost_version bigint,
    lost_origin uuid,
    won_version bigint NOT NULL,
    won_origin uuid,
    kind text NOT NULL CHECK (kind IN ('row lost to row', 'row lost to delete', 'delete lost to row')),
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON conflicts (relid, conflict_id);
SELECT pg_catalog.pg_extension_config_dump('conflicts', '');

-- lww: how many conflict records idsync.conflicts keeps for the table (NULL: none are
-- recorded); set by idsync.record_conflicts.
ALTER TABLE tables ADD COLUMN conflicts_kept integer CHECK (conflicts_kept > 0);

-- Conflict records of an lww table (extension/conflicts.cpp): record_conflicts(t, keep) keeps
-- the newest `keep` losing versions of t's merges in idsync.conflicts; keep NULL stops recording
-- (and forgets the records). Administrators who own the table.
CREATE FUNCTION record_conflicts(target regclass, keep integer DEFAULT 10000) RETURNS void
AS 'MODULE_PATHNAME', 'idsync_record_conflicts' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION record_conflicts(regclass, integer) IS
'keep the newest `keep` versions of an lww table''s rows that lost a conflict in a merge, in idsync.conflicts (NULL: stop)';

-- What idsyncctl compare and repair read on each node (extension/compare.cpp): rows (and lww
-- tombstones) by buckets of their key hashes, the hashes every node computes alike; first the
-- per-bucket counts and hash XORs, then the rows of the buckets that differ.
CREATE FUNCTION compare_buckets(target regclass, bits integer DEFAULT 12, parents integer[] DEFAULT NULL)
RETURNS TABLE (bucket integer, row_count bigint, hash1 bigint, hash2 bigint)
AS 'MODULE_PATHNAME', 'idsync_compare_buckets' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION compare_buckets(regclass, integer, integer[]) IS
'per bucket of the first `bits` bits of the key hash: the rows (and lww tombstones) and the XOR of their row hashes; with parents, only within those buckets of bits - 4 bits';

CREATE FUNCTION compare_rows(target regclass, buckets integer[], bits integer DEFAULT 12)
RETURNS TABLE (key_hash uuid, row_hash uuid, key jsonb, item jsonb, origin uuid)
AS 'MODULE_PATHNAME', 'idsync_compare_rows' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION compare_rows(regclass, integer[], integer) IS
'the rows (and lww tombstones) of some buckets: key hash, row hash, natural key, item, the node that wrote it';

-- Tombstones (extension/tombstones.hpp): a delete removes the row, and its tombstone is kept in
-- idsync.tombstones, replicated by items_since (bulk copies: tombstones_since), purged by
-- reclaim. The building blocks:
CREATE FUNCTION _tombstone_hash(key_hash uuid, version bigint) RETURNS uuid
AS 'MODULE_PATHNAME', 'idsync_tombstone_hash' LANGUAGE C IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION _natural_key(target regclass, row_value record, OUT key jsonb, OUT key_hash uuid)
AS 'MODULE_PATHNAME', 'idsync_natural_key' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION _tombstones_state(target regclass, OUT hash1 bigint, OUT hash2 bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(bit_xor(('x' || left(h, 16))::bit(64)::int8), 0),
           coalesce(bit_xor(('x' || right(h, 16))::bit(64)::int8), 0)
    FROM (SELECT replace(idsync._tombstone_hash(t.key_hash, t.version)::text, '-', '') AS h
          FROM idsync.tombstones t WHERE t.relid = target) x
$$;

CREATE FUNCTION table_hash(target regclass, OUT row_count bigint, OUT hash1 bigint, OUT hash2 bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    tomb record;
BEGIN
    EXECUTE idsync._content_state_query(target) INTO row_count, hash1, hash2;
    SELECT * INTO tomb FROM idsync._tombstones_state(target);
    hash1 := hash1 # tomb.hash1;
    hash2 := hash2 # tomb.hash2;
END $$;
COMMENT ON FUNCTION table_hash(regclass) IS
'the content state of a registered table recomputed from its rows and tombstones: what sync_info keeps incrementally';

CREATE FUNCTION tombstones_since(target regclass, point bigint, max_rows integer DEFAULT 1000,
                                 up_to bigint DEFAULT NULL, to_node uuid DEFAULT NULL)
RETURNS TABLE (point bigint, item jsonb, origin uuid)
AS 'MODULE_PATHNAME', 'idsync_tombstones_since' LANGUAGE C VOLATILE
SET enable_seqscan = off SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION tombstones_since(regclass, bigint, integer, bigint, uuid) IS
'the tombstones of an lww table after a point, in point order, up to the stable point (and up_to), as items_since returns changes';

CREATE FUNCTION _purge_tombstones(target regclass, older_than interval) RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_purge_tombstones' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- What the content trigger needs for translated references: per column, the query returning
-- the natural-key hashes of referenced rows (generated by _refresh_content_triggers).
ALTER TABLE tables ADD COLUMN reference_columns name[] NOT NULL DEFAULT '{}',
                   ADD COLUMN reference_queries text[] NOT NULL DEFAULT '{}';

---------------------------------------------------------------------------------------------
-- C functions that check their caller
---------------------------------------------------------------------------------------------

DROP FUNCTION _raise_sync(regclass, uuid, bigint, boolean);
CREATE FUNCTION _raise_sync(target regclass, remote uuid, point bigint, incoming boolean)
RETURNS void AS 'MODULE_PATHNAME', 'idsync_raise_sync' LANGUAGE C VOLATILE;

CREATE FUNCTION correct_sync(target regclass, remote uuid, point bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_correct_sync' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION correct_sync(regclass, uuid, bigint) IS
'lower this node''s incoming sync point for remote to point (remote''s idsyncd, when the point is beyond anything remote issued)';

CREATE FUNCTION _park_rows(target regclass, source uuid, rejects jsonb) RETURNS integer
AS 'MODULE_PATHNAME', 'idsync_park' LANGUAGE C VOLATILE;

CREATE FUNCTION _take_rejects(target regclass, reject_ids bigint[], waiting_only boolean)
RETURNS TABLE (source uuid, point bigint, item jsonb, reject_id bigint)
AS 'MODULE_PATHNAME', 'idsync_take_rejects' LANGUAGE C VOLATILE;

CREATE FUNCTION _register(target regclass, key_columns name[], mode text, version_column name,
                          tombstone_column name, point_column name, local_columns name[])
RETURNS void AS 'MODULE_PATHNAME', 'idsync_register' LANGUAGE C VOLATILE;

DROP EVENT TRIGGER idsync_on_drop;
DROP FUNCTION _on_drop();
DROP FUNCTION _forget(oid);
CREATE FUNCTION _forget(target oid) RETURNS void
AS 'MODULE_PATHNAME', 'idsync_forget' LANGUAGE C VOLATILE;

CREATE FUNCTION _registration_changed(target regclass) RETURNS void
AS 'MODULE_PATHNAME', 'idsync_registration_changed' LANGUAGE C VOLATILE;

CREATE FUNCTION _purge_syncs(target regclass, older_than interval) RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_purge_syncs' LANGUAGE C VOLATILE;

CREATE FUNCTION _begin_apply(target regclass, source uuid, purpose text) RETURNS void
AS 'MODULE_PATHNAME', 'idsync_begin_apply' LANGUAGE C VOLATILE;
CREATE FUNCTION _end_apply(target regclass) RETURNS void
AS 'MODULE_PATHNAME', 'idsync_end_apply' LANGUAGE C VOLATILE;

-- Resyncs an operator asks for (idsyncctl resync; extension/resync.cpp): the next pass of
-- `target` to the node `remote` sends every row, as if the peer had none; idsyncd clears the
-- request after the first pass that read it and succeeded. For administrators and the daemon's
-- role: a resync only sends rows again.
CREATE FUNCTION request_resync(target regclass, remote uuid) RETURNS timestamptz
AS 'MODULE_PATHNAME', 'idsync_request_resync' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION request_resync(regclass, uuid) IS
'ask idsyncd to send every row of target to the node remote on its next pass (returns the time of the request)';
CREATE FUNCTION _resync_done(target regclass, remote uuid, requested_at timestamptz) RETURNS void
AS 'MODULE_PATHNAME', 'idsync_resync_done' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- Retiring a node from the set (extension/resync.cpp): its sync points and resync requests are
-- forgotten here, points passed on for it are not kept again, and idsyncd refuses to send to
-- it. Administrators; run on every node that stays.
CREATE FUNCTION retire_node(node uuid) RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_retire_node' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION retire_node(uuid) IS
'retire a node from the set: forget its sync points here for good (returns how many), and send it nothing again';

CREATE FUNCTION tombstone_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'idsync_tombstone_trigger' LANGUAGE C;

-- What identifies a registered table's rows, by insert_missing's rules
-- (extension/row_identity.cpp): the unique index on exactly the key columns, and the id column.
CREATE FUNCTION _key_index(target regclass, key_columns name[]) RETURNS regclass
AS 'MODULE_PATHNAME', 'idsync_key_index' LANGUAGE C STABLE;
CREATE FUNCTION _id_column(target regclass) RETURNS name
AS 'MODULE_PATHNAME', 'idsync_id_column' LANGUAGE C STABLE;

---------------------------------------------------------------------------------------------
-- Registration: only the owner of a table, an administrator, registers it
---------------------------------------------------------------------------------------------

-- Every replication function reads a registration through here, and here the caller must be
-- able to read every row of the table: SELECT on it, and no row-level security in the way
-- (a replica of the rows a policy lets one role see would be a silent partial copy).
CREATE OR REPLACE FUNCTION _registration(target regclass) RETURNS tables
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables;
BEGIN
    IF target IS NULL THEN
        RAISE EXCEPTION 'target must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO reg FROM idsync.tables WHERE relid = target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not registered for replication', target
            USING ERRCODE = '55000', HINT = 'Register it with idsync.replicate().';
    END IF;
    IF NOT has_table_privilege(target, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', target
            USING ERRCODE = '42501', DETAIL = 'Replicating a table reads all of its rows.';
    END IF;
    IF row_security_active(target) THEN
        RAISE EXCEPTION 'row-level security hides rows of table % from role %', target, current_user
            USING ERRCODE = '42501',
                  DETAIL = 'Replication reads and merges every row of a table.',
                  HINT = 'Replicate as the table''s owner or as a role with BYPASSRLS.';
    END IF;
    RETURN reg;
END $$;

-- The triggers of a registered table. None takes SQL from its arguments: they read the
-- registration (the refusing trigger takes the mode for its message only).
CREATE FUNCTION _attach_triggers(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
BEGIN
    EXECUTE format('CREATE TRIGGER idsync_change BEFORE INSERT OR UPDATE ON %1$s FOR EACH ROW '
                   'EXECUTE FUNCTION idsync.change_trigger(); '
                   'CREATE TRIGGER idsync_content_insert AFTER INSERT ON %1$s '
                   'REFERENCING NEW TABLE AS idsync_new FOR EACH STATEMENT '
                   'EXECUTE FUNCTION idsync.content_trigger(); '
                   'CREATE TRIGGER idsync_content_update AFTER UPDATE ON %1$s '
                   'REFERENCING OLD TABLE AS idsync_old NEW TABLE AS idsync_new FOR EACH STATEMENT '
                   'EXECUTE FUNCTION idsync.content_trigger(); '
                   'CREATE TRIGGER idsync_content_delete AFTER DELETE ON %1$s '
                   'REFERENCING OLD TABLE AS idsync_old FOR EACH STATEMENT '
                   'EXECUTE FUNCTION idsync.content_trigger(); '
                   'CREATE TRIGGER idsync_truncate BEFORE TRUNCATE ON %1$s FOR EACH STATEMENT '
                   'EXECUTE FUNCTION idsync._refuse_trigger(%2$L)', target, reg.mode);
    IF reg.mode = 'insert_only' THEN
        EXECUTE format('CREATE TRIGGER idsync_delete BEFORE DELETE ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION idsync._refuse_trigger(%L)', target, reg.mode);
    ELSE
        EXECUTE format('CREATE TRIGGER idsync_delete BEFORE DELETE ON %s FOR EACH ROW '
                       'EXECUTE FUNCTION idsync.tombstone_trigger()', target);
    END IF;
END $$;

-- The content state of a table (row count and hash) computed afresh from its rows, references
-- hashed as the natural keys they point at. SECURITY DEFINER: it reads every row whatever the
-- policies, and its effect is fixed by the table's rows and registration alone.
CREATE FUNCTION _recompute_content_state(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    state record;
BEGIN
    -- As the content trigger hashes now: by natural key once the registration holds the queries
    -- for the table's references (_refresh_content_triggers), by stored columns before.
    EXECUTE format('LOCK TABLE %s IN SHARE MODE', target);
    IF cardinality(reg.reference_columns) > 0 THEN
        SELECT * INTO state FROM idsync.table_hash(target);
    ELSE
        SELECT s.row_count, s.hash1 # t.hash1 AS hash1, s.hash2 # t.hash2 AS hash2 INTO state
        FROM idsync.table_hash(target, reg.local_columns::text[]) s,
             idsync._tombstones_state(target) t;
    END IF;
    DELETE FROM idsync.table_deltas d WHERE d.relid = target;
    UPDATE idsync.tables t SET row_count = state.row_count, hash1 = state.hash1, hash2 = state.hash2
    WHERE t.relid = target;
END $$;

-- Keeps the content trigger's reference queries in the registration (generated here from the
-- catalogs, never given by a caller), and recomputes the content state when the table starts
-- or stops having translated references. Called at registration and after every ALTER TABLE
-- of the table or of a table it references. SECURITY DEFINER for the same reason as above.
CREATE OR REPLACE FUNCTION _refresh_content_triggers(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    was_by_key boolean := cardinality(reg.reference_columns) > 0;
    hashed text := reg.plan ->> 'columns';
    ref_columns name[];
    ref_queries text[];
BEGIN
    -- No change trigger: the table is being unregistered (its ALTER TABLE calls us).
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = target AND tgname = 'idsync_change') THEN
        RETURN;
    END IF;
    -- A column named as an lww table's tombstone marker stays local, also one added later: items
    -- carrying it would read as tombstones.
    IF reg.mode = 'lww' AND reg.tombstone_column <> ALL (reg.local_columns)
       AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = target
                   AND attname = reg.tombstone_column AND attnum > 0 AND NOT attisdropped) THEN
        UPDATE idsync.tables t SET local_columns = t.local_columns || reg.tombstone_column
        WHERE t.relid = target;
    END IF;
    SELECT coalesce(array_agg(t.column_name ORDER BY t.column_name), '{}'),
           coalesce(array_agg(idsync._ref_hash_query(t.parent, t.parent_column) ORDER BY t.column_name), '{}')
    INTO ref_columns, ref_queries
    FROM idsync._translated(target) t;
    UPDATE idsync.tables t SET reference_columns = ref_columns, reference_queries = ref_queries
    WHERE t.relid = target;
    PERFORM idsync._registration_changed(target);
    PERFORM idsync._build_plan(target);
    IF (cardinality(ref_columns) > 0) <> was_by_key
       OR hashed <> (SELECT t.plan ->> 'columns' FROM idsync.tables t WHERE t.relid = target) THEN
        -- The trigger hashes the other way from now on, or the rows' replicated columns changed
        -- (a column added, dropped or retyped changes every row's hash): the kept state must
        -- follow.
        PERFORM idsync._recompute_content_state(target);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION _replicate_table(target regclass, key_columns text[], mode text DEFAULT 'insert_only',
                          version_column name DEFAULT NULL, tombstone_column name DEFAULT NULL,
                          local_columns text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel pg_class;
    keys name[];
    missing text;
    key_index regclass;
    id_column name;
    locals name[];
    point_column CONSTANT name := 'idsync_point';
BEGIN
    IF target IS NULL OR key_columns IS NULL OR mode IS NULL OR local_columns IS NULL THEN
        RAISE EXCEPTION 'target, key_columns, mode and local_columns must not be NULL'
            USING ERRCODE = '22004';
    END IF;
    IF mode NOT IN ('insert_only', 'lww') THEN
        RAISE EXCEPTION 'unknown replication mode "%"', mode
            USING ERRCODE = '22023', HINT = 'The modes are insert_only and lww.';
    END IF;
    IF mode = 'insert_only' AND (version_column IS NOT NULL OR tombstone_column IS NOT NULL) THEN
        RAISE EXCEPTION 'version_column and tombstone_column belong to mode lww'
            USING ERRCODE = '22023';
    END IF;
    IF mode = 'lww' THEN
        version_column := coalesce(version_column, 'idsync_version');
        tombstone_column := coalesce(tombstone_column, 'idsync_deleted');
    END IF;

    -- Kind and ownership from the catalog, before anything locks the table.
    SELECT * INTO rel FROM pg_class WHERE oid = target;
    IF rel.relkind <> 'r' OR rel.relpersistence = 't' THEN
        RAISE EXCEPTION '"%" is not a permanent ordinary table', target
            USING ERRCODE = '42809',
                  DETAIL = 'idsync replicates ordinary tables; partitioned tables, views and temporary tables are not supported.';
    END IF;
    IF rel.relnamespace = 'idsync'::regnamespace THEN
        RAISE EXCEPTION 'idsync''s own tables cannot be replicated' USING ERRCODE = '42809';
    END IF;
    IF rel.relnamespace IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace,
                            'pg_toast'::regnamespace) THEN
        RAISE EXCEPTION 'system table % cannot be replicated', target USING ERRCODE = '42809';
    END IF;
    IF NOT pg_has_role(current_user, rel.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', target USING ERRCODE = '42501';
    END IF;
    IF EXISTS (SELECT 1 FROM idsync.tables t WHERE t.relid = target) THEN
        RAISE EXCEPTION 'table % is already registered', target USING ERRCODE = '42710';
    END IF;

    -- The natural key: existing columns, no repeats, exactly the columns of a unique index.
    IF cardinality(key_columns) = 0 OR array_position(key_columns, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'key_columns must name at least one column, and no NULL'
            USING ERRCODE = '22023';
    END IF;
    SELECT string_agg(quote_ident(k), ', ') INTO missing
    FROM unnest(key_columns) k
    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute
                      WHERE attrelid = target AND attname = k AND attnum > 0 AND NOT attisdropped);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'key column % of table % does not exist', missing, target
            USING ERRCODE = '42703';
    END IF;
    IF (SELECT count(DISTINCT k) FROM unnest(key_columns) k) <> cardinality(key_columns) THEN
        RAISE EXCEPTION 'key_columns names a column twice' USING ERRCODE = '42701';
    END IF;
    keys := key_columns::name[];
    key_index := idsync._key_index(target, keys);
    IF key_index IS NULL THEN
        RAISE EXCEPTION 'table % has no unique index on exactly (%)', target,
            array_to_string(key_columns, ', ')
            USING ERRCODE = '42P10',
                  HINT = 'The natural key identifies a row on every node: create a unique btree index (no predicate, no expression, not deferrable) on these columns.';
    END IF;
    -- A NULL in the key would let every node keep its own copy of the row.
    SELECT string_agg(quote_ident(a.attname), ', ') INTO missing
    FROM pg_attribute a
    WHERE a.attrelid = target AND a.attname = ANY (keys) AND NOT a.attnotnull
      AND NOT (SELECT indnullsnotdistinct FROM pg_index WHERE indexrelid = key_index);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'key column % of table % allows NULL', missing, target
            USING ERRCODE = '42P16',
                  HINT = 'Declare the key columns NOT NULL, or make the key index UNIQUE NULLS NOT DISTINCT.';
    END IF;

    -- Local columns: the surrogate id (the id insert_missing returns: the single-column integer
    -- primary key, else a NOT NULL integer column "id"; not when part of the key), generated
    -- columns, and the caller's own.
    id_column := idsync._id_column(target);
    IF id_column = ANY (keys) THEN
        id_column := NULL;
    END IF;
    IF id_column IS DISTINCT FROM 'id' AND NOT 'id' = ANY (keys || local_columns::name[])
       AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = target AND attname = 'id'
                   AND atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)) THEN
        RAISE WARNING 'column id of table % is replicated as data', target
            USING DETAIL = 'It is not the id insert_missing returns: that is the single-column integer primary key, else a NOT NULL integer column "id".',
                  HINT = 'If it holds this node''s ids, declare it NOT NULL or name it in local_columns.';
    END IF;
    SELECT string_agg(quote_ident(c), ', ') INTO missing
    FROM unnest(local_columns) c
    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute
                      WHERE attrelid = target AND attname = c AND attnum > 0 AND NOT attisdropped);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'local column % of table % does not exist', missing, target
            USING ERRCODE = '42703';
    END IF;
    IF local_columns && key_columns THEN
        RAISE EXCEPTION 'a key column cannot be local' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = target
               AND attname IN (point_column, 'idsync_origin')) THEN
        RAISE EXCEPTION 'table % already has a column named % or idsync_origin', target, point_column
            USING ERRCODE = '42701';
    END IF;
    locals := ARRAY[point_column]
              || CASE WHEN id_column IS NULL THEN '{}'::name[] ELSE ARRAY[id_column] END || local_columns::name[]
              || ARRAY(SELECT attname FROM pg_attribute
                       WHERE attrelid = target AND attnum > 0 AND attgenerated <> '');

    -- lww: the version column, added when missing. Deletes really delete: the tombstone column
    -- only names the marker of tombstones in items (a column of that name stays local).
    IF mode = 'lww' THEN
        IF version_column = ANY (keys) OR tombstone_column = ANY (keys)
           OR version_column = ANY (locals) OR version_column = tombstone_column THEN
            RAISE EXCEPTION 'the version and tombstone columns must be distinct, replicated, non-key columns'
                USING ERRCODE = '22023';
        END IF;
        IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = target AND attname = version_column
                   AND attnum > 0 AND NOT attisdropped) THEN
            IF (SELECT atttypid FROM pg_attribute WHERE attrelid = target
                AND attname = version_column) <> 'int8'::regtype THEN
                RAISE EXCEPTION 'version column % must be bigint', quote_ident(version_column)
                    USING ERRCODE = '42804';
            END IF;
        ELSE
            EXECUTE format('ALTER TABLE %s ADD COLUMN %I bigint NOT NULL DEFAULT idsync.hlc_now()',
                           target, version_column);
        END IF;
        IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = target AND attname = tombstone_column
                   AND attnum > 0 AND NOT attisdropped) AND tombstone_column <> ALL (locals) THEN
            locals := locals || tombstone_column;
        END IF;
    END IF;

    -- Existing rows get their points in the rewrite that adds the column.
    EXECUTE format('ALTER TABLE %s ADD COLUMN %I bigint DEFAULT idsync.next_point()',
                   target, point_column);
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', target, point_column);
    EXECUTE format('CREATE INDEX ON %s (%I)', target, point_column);
    -- The node that wrote each row version (NULL: this one), so that no row goes back to the
    -- node it came from.
    EXECUTE format('ALTER TABLE %s ADD COLUMN idsync_origin uuid', target);
    locals := locals || 'idsync_origin'::name;

    PERFORM idsync._register(target, keys, mode, version_column, tombstone_column, point_column,
                             locals);
    PERFORM idsync._attach_triggers(target);
    PERFORM idsync._recompute_content_state(target);
END $$;
COMMENT ON FUNCTION _replicate_table(regclass, text[], text, name, name, text[]) IS
'the registration itself, without the checks of foreign keys (see replicate)';

-- Cleans up the registrations of dropped tables. SECURITY DEFINER: whoever drops a table, the
-- registrations of relations that no longer exist are forgotten (and nothing else).
CREATE FUNCTION _on_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM idsync._forget(d.objid)
    FROM pg_event_trigger_dropped_objects() d
    WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
      AND d.objid IN (SELECT relid FROM idsync.tables);
END $$;
CREATE EVENT TRIGGER idsync_on_drop ON sql_drop
WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
EXECUTE FUNCTION _on_drop();

-- ALTER TABLE by the table's owner keeps idsync's derived state right, also in the registered
-- tables that reference it (which others may own): SECURITY DEFINER.
ALTER FUNCTION _on_alter() SECURITY DEFINER;
-- Folding deltas changes nothing a reader sees: anyone who reads sync_info may trigger it.
ALTER FUNCTION compact(regclass) SECURITY DEFINER;

---------------------------------------------------------------------------------------------
-- Triggers that take nothing from their arguments and obey no setting
---------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION _refuse_trigger() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'cannot % table %: it is replicated as %',
        CASE TG_OP WHEN 'DELETE' THEN 'delete from' ELSE 'truncate' END,
        TG_RELID::regclass, TG_ARGV[0]
        USING ERRCODE = '55000',
              DETAIL = CASE TG_OP WHEN 'TRUNCATE' THEN 'A TRUNCATE would not replicate.'
                       ELSE 'Rows of insert_only tables are immutable facts shared by every node.' END,
              HINT = CASE TG_OP WHEN 'TRUNCATE' THEN 'Delete the rows instead (lww tables), or unregister the table.'
                     ELSE 'Register the table in mode ''lww'' to replicate updates and deletes.' END;
END $$;

CREATE OR REPLACE FUNCTION _refuse_key_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'cannot change the natural key of a row of %', TG_RELID::regclass
        USING ERRCODE = '55000',
              DETAIL = 'The key identifies the row on every node: the others would keep the row under its old key.',
              HINT = 'Delete the row and insert it again with the new key.';
END $$;

---------------------------------------------------------------------------------------------
-- Merges: on the insert-missing engine, in C (extension/merge_rows.hpp), which parks refused and
-- waiting rows itself; the flag raised by a checked function, rejects parked through one
---------------------------------------------------------------------------------------------

-- The staged SQL merge they replace.
DROP FUNCTION _park(tables, regclass, bigint, uuid, text, text, text);
DROP FUNCTION _park_waiting(tables, regclass, uuid);
DROP FUNCTION _merge_range(tables, regclass, text, bigint, bigint, uuid, integer, integer, integer);
DROP FUNCTION _merge_stage(tables, regclass, integer, uuid);
DROP FUNCTION _merge_statement(tables, text);
DROP FUNCTION _merge_source(tables, regclass, text);
DROP FUNCTION _resolved_sql(tables, regclass);
DROP FUNCTION _resolve_key(regclass, name, text, text, text, integer);
DROP FUNCTION _stage(tables);
DROP FUNCTION _row_hash_expr(tables, text);
DROP FUNCTION _key_order(tables);

-- The direct path of a bulk copy into a table that is empty here and that nobody is writing:
-- begin_bulk takes the table (SHARE ROW EXCLUSIVE, never waiting) and returns true, the sender's
-- rows arrive by COPY straight into the table, end_bulk moves the source's sync point
-- (extension/direct_bulk.cpp). false: use a staging table and merge_staged.
CREATE FUNCTION begin_bulk(target regclass, source uuid) RETURNS boolean
AS 'MODULE_PATHNAME', 'idsync_begin_bulk' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION begin_bulk(regclass, uuid) IS
'start a bulk copy from source straight into target when target is empty and unwritten: locks it to the end of the transaction, and COPY FROM then keeps the rows'' versions and origins; false when the staging path must be used';
CREATE FUNCTION end_bulk(target regclass, source uuid, point bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_end_bulk' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION end_bulk(regclass, uuid, bigint) IS
'end the bulk copy begin_bulk started: source''s incoming sync point moves to point (returned)';

-- The merge of a batch of items on the insert-missing engine (extension/merge_items.cpp): how
-- many rows were inserted, updated, and parked (refused, or waiting for a referenced row).
CREATE FUNCTION _merge_batch(target regclass, items jsonb, source uuid,
                             OUT inserted integer, OUT updated integer, OUT rejected integer)
AS 'MODULE_PATHNAME', 'idsync_merge_batch' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- The same for the rows of a staging table (merge_staged; extension/merge_staged_rows.cpp).
CREATE FUNCTION _merge_staged_rows(target regclass, staging regclass, source uuid,
                                   OUT inserted integer, OUT updated integer, OUT rejected integer)
AS 'MODULE_PATHNAME', 'idsync_merge_staged_rows' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION merge_items(target regclass, items jsonb, source uuid DEFAULT NULL)
RETURNS TABLE (received integer, inserted integer, updated integer, unchanged integer,
               rejected integer, sync_point bigint)
AS 'MODULE_PATHNAME', 'idsync_merge_items' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION merge_staged(target regclass, staging regclass, source uuid, point bigint)
RETURNS TABLE (received integer, inserted integer, updated integer, unchanged integer,
               rejected integer, sync_point bigint)
AS 'MODULE_PATHNAME', 'idsync_merge_staged' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION reclaim(target regclass, older_than interval)
RETURNS TABLE (tombstones bigint, sync_rows bigint)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    reg idsync.tables := idsync._registration(target);
BEGIN
    IF older_than IS NULL THEN
        RAISE EXCEPTION 'older_than must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must not be negative' USING ERRCODE = '22023';
    END IF;
    tombstones := 0;
    IF reg.mode = 'lww' THEN
        tombstones := idsync._purge_tombstones(target, older_than);
    END IF;
    sync_rows := idsync._purge_syncs(target, older_than);
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION reclaim(regclass, interval) IS
'purge tombstones and sync rows older than older_than (Swift''s reclaim_age); must exceed the longest replication delay';

---------------------------------------------------------------------------------------------
-- Roles: what each kind may run (README "Security model")
---------------------------------------------------------------------------------------------

-- The functions each kind of role calls. Internal helpers (names starting with an underscore)
-- go with them, since the API calls them as the caller; what they change, they check. The
-- helpers of registration and of content hashes only to administrators; granting only to the
-- extension's owner.
CREATE OR REPLACE FUNCTION _kind_functions(kind text) RETURNS SETOF regprocedure
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT p.oid::regprocedure FROM pg_proc p
    WHERE p.pronamespace = 'idsync'::regnamespace
      AND p.proname NOT IN ('_grant_kind', '_kind_functions')
      AND (CASE WHEN p.proname LIKE '\_%'
                THEN kind = 'admin' OR p.proname <> ALL (ARRAY[
                         '_replicate_table', '_unreplicate_table', '_register', '_forget',
                         '_attach_triggers', '_add_key_trigger', '_refresh_content_triggers',
                         '_recompute_content_state', '_build_plan', '_purge_syncs', '_purge_tombstones',
                         '_registration_changed'])
                ELSE p.proname = ANY (CASE kind
          WHEN 'daemon' THEN ARRAY['replicated_tables', 'sync_info', 'get_sync', 'get_syncs',
                                   'items_since', 'tombstones_since', 'bulk_query',
                                   'compare_buckets', 'compare_rows', 'merge_syncs', 'stable_point',
                                   'compact', 'row_hash', 'node_id', 'request_resync']
          WHEN 'peer' THEN ARRAY['sync_info', 'get_sync', 'get_syncs', 'merge_items',
                                 'compare_buckets', 'compare_rows',
                                 'merge_staged', 'merge_syncs', 'create_staging', 'retry_waiting',
                                 'begin_bulk', 'end_bulk',
                                 'correct_sync', 'stable_point', 'compact', 'row_hash', 'node_id']
          WHEN 'admin' THEN ARRAY['replicate', 'unreplicate', 'reclaim', 'compact', 'retry_rejects',
                                  'record_conflicts',
                                  'discard_rejects',
                                  'retry_waiting', 'replicated_tables', 'sync_info', 'get_sync',
                                  'get_syncs', 'items_since', 'tombstones_since', 'bulk_query',
                                  'compare_buckets', 'compare_rows', 'merge_items',
                                  'merge_staged', 'merge_syncs', 'create_staging', 'correct_sync',
                                  'begin_bulk', 'end_bulk', 'request_resync', 'retire_node',
                                  'stable_point', 'next_point', 'row_hash', 'table_hash',
                                  'change_trigger', 'content_trigger', 'tombstone_trigger',
                                  'node_id']
          END) END)
$$;

CREATE FUNCTION _grant_kind(role regrole, kind text, node uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fn regprocedure;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = '22004';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA idsync TO %s', role);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA idsync TO %s', role);
    FOR fn IN SELECT idsync._kind_functions(kind) LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', fn, role);
    END LOOP;
    INSERT INTO idsync.roles AS r (role_name, kind, node_id)
    VALUES ((SELECT rolname FROM pg_roles WHERE oid = role), _grant_kind.kind, node)
    ON CONFLICT ON CONSTRAINT roles_pkey DO UPDATE SET node_id = excluded.node_id, granted_at = now();
END $$;

CREATE FUNCTION grant_admin(role regrole) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT idsync._grant_kind(role, 'admin', NULL)
$$;
COMMENT ON FUNCTION grant_admin(regrole) IS
'let a role register the tables it owns, reclaim, retry rejects and run passes by hand';

CREATE FUNCTION grant_daemon(role regrole) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT idsync._grant_kind(role, 'daemon', NULL)
$$;
COMMENT ON FUNCTION grant_daemon(regrole) IS
'let a role be idsyncd''s local role: read registered tables'' changes and record outgoing points';

CREATE FUNCTION grant_peer(role regrole, node uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF node IS NULL THEN
        RAISE EXCEPTION 'node must not be NULL: a peer role speaks for one node'
            USING ERRCODE = '22004';
    END IF;
    IF node = idsync.node_id() THEN
        RAISE EXCEPTION 'node % is this node', node USING ERRCODE = '22023',
            HINT = 'Name the node whose idsyncd logs in as this role (SELECT idsync.node_id() there).';
    END IF;
    PERFORM idsync._grant_kind(role, 'peer', node);
END $$;
COMMENT ON FUNCTION grant_peer(regrole, uuid) IS
'let a role be the login of the remote idsyncd of node `node`: merge in that node''s name only';

CREATE FUNCTION revoke_role(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fn regprocedure;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = '22004';
    END IF;
    FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'idsync'::regnamespace LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %s', fn, role);
    END LOOP;
    EXECUTE format('REVOKE SELECT ON ALL TABLES IN SCHEMA idsync FROM %s', role);
    EXECUTE format('REVOKE USAGE ON SCHEMA idsync FROM %s', role);
    DELETE FROM idsync.roles r WHERE r.role_name = (SELECT rolname FROM pg_roles WHERE oid = role);
END $$;
COMMENT ON FUNCTION revoke_role(regrole) IS 'take back what grant_admin, grant_daemon or grant_peer gave';

---------------------------------------------------------------------------------------------
-- Plans: the SQL items_since runs, built once per table (sql/src/plans.sql)
---------------------------------------------------------------------------------------------

ALTER TABLE tables ADD COLUMN plan jsonb NOT NULL DEFAULT '{}';

-- The retries of parked rows, in C (extension/retries.cpp).
DROP FUNCTION _retry(regclass, bigint[]);
DROP FUNCTION _retry_round(regclass);
CREATE OR REPLACE FUNCTION retry_rejects(target regclass)
RETURNS TABLE (retried integer, merged integer, still_rejected integer)
AS 'MODULE_PATHNAME', 'idsync_retry_rejects' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION retry_waiting(target regclass) RETURNS integer
AS 'MODULE_PATHNAME', 'idsync_retry_waiting' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION discard_rejects(target regclass, reject_ids bigint[] DEFAULT NULL) RETURNS integer
AS 'MODULE_PATHNAME', 'idsync_discard_rejects' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION discard_rejects(regclass, bigint[]) IS
'drop parked rows of target for good (all, or those of reject_ids), keeping a record of each in idsync.discarded_rejects; returns how many';

-- The natural form, in C (extension/natural_form.cpp): one walk of the natural-key tree makes
-- the SQL of every reader. The walk in SQL it replaces, and the plan's reader.
DROP FUNCTION _natural_state_sql(tables, text, integer);
DROP FUNCTION _natural_select(tables, text, text, text);
DROP FUNCTION _natural_key(regclass, name, text, text, text, text, integer);
DROP FUNCTION _max_nesting();
DROP FUNCTION _ref_hash_query(regclass, name);

-- The SQL of the natural form, made from the catalogs in one walk of the natural-key tree
-- (extension/natural_form.cpp): the query of a table's content state computed afresh, and the
-- query the content trigger runs per translated reference: (id, the row hash of the natural key
-- of the parent row with that id) for the ids in $1 (bigint[]).
CREATE FUNCTION _content_state_query(target regclass) RETURNS text
AS 'MODULE_PATHNAME', 'idsync_content_state_query' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION _ref_hash_query(parent regclass, parent_column name) RETURNS text
AS 'MODULE_PATHNAME', 'idsync_ref_hash_query' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;

-- The query items_since runs for a table (extension/natural_form.cpp).
CREATE FUNCTION _items_query(target regclass) RETURNS text
AS 'MODULE_PATHNAME', 'idsync_items_query' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;

-- Builds and keeps the plan of `target`. SECURITY DEFINER: it writes idsync.tables, and what
-- it writes is fixed by the catalogs alone.
CREATE FUNCTION _build_plan(target regclass) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    UPDATE idsync.tables t
    SET plan = jsonb_build_object(
        -- the changes after $1 up to $2, at most $3, as items_since returns them
        -- (extension/natural_form.cpp)
        'items', idsync._items_query(target),
        -- the replicated columns and their types, which row hashes cover: when an ALTER TABLE
        -- changes them, the kept content state is recomputed (_refresh_content_triggers)
        'columns', (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)),
                                      ', ' ORDER BY a.attname)
                    FROM pg_attribute a
                    WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped
                      AND a.attgenerated = '' AND a.attname <> ALL (t.local_columns)))
    WHERE t.relid = target
$$;

-- Registration checks the depth of natural keys as it builds the plan.
CREATE OR REPLACE FUNCTION replicate(target regclass, key_columns text[], mode text DEFAULT 'insert_only',
                          version_column name DEFAULT NULL, tombstone_column name DEFAULT NULL,
                          local_columns text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables;
    self_key text;
BEGIN
    PERFORM idsync._replicate_table(target, key_columns, mode, version_column, tombstone_column,
                                    local_columns);
    reg := idsync._registration(target);
    -- Every foreign key is checked here; an error undoes the whole registration.
    PERFORM idsync._references(target);
    SELECT string_agg(quote_ident(t.column_name), ', ') INTO self_key
    FROM idsync._translated(target) t
    WHERE t.parent = target AND t.column_name = ANY (reg.key_columns);
    IF self_key IS NOT NULL THEN
        RAISE EXCEPTION 'key column % of table % references the table itself', self_key, target
            USING ERRCODE = '0A000',
                  DETAIL = 'A natural key that contains a reference to a row of its own table would nest without end.',
                  HINT = 'Keep the reference out of the key.';
    END IF;
    PERFORM idsync._refresh_content_triggers(target);
    PERFORM idsync._add_key_trigger(target);
END $$;

---------------------------------------------------------------------------------------------
-- What a sender reads, in C (extension/changes_out.cpp, sync_points.cpp); no echo: a row does
-- not go back to the node that wrote it
---------------------------------------------------------------------------------------------

DROP FUNCTION items_since(regclass, bigint, integer, bigint);
DROP FUNCTION _items_since(regclass, bigint, integer, bigint);
DROP FUNCTION bulk_query(regclass, bigint);
CREATE OR REPLACE FUNCTION sync_info(target regclass, up_to bigint DEFAULT NULL,
                          OUT node_id uuid, OUT max_point bigint, OUT row_count bigint,
                          OUT content_hash text, OUT rejects bigint)
AS 'MODULE_PATHNAME', 'idsync_sync_info' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION sync_info(regclass, bigint) IS
'a sender''s preflight: node id, largest stable change point (at most up_to), row count, content hash, parked rejects';

CREATE OR REPLACE FUNCTION get_sync(target regclass, remote uuid, incoming boolean DEFAULT true)
RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_get_sync' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION get_sync(regclass, uuid, boolean) IS
'the sync point of a peer for a table: how far its rows were merged here (incoming) or ours pushed there; -1 when unknown';

CREATE OR REPLACE FUNCTION get_syncs(target regclass, incoming boolean DEFAULT true)
RETURNS TABLE (remote_id uuid, sync_point bigint, updated_at timestamptz)
AS 'MODULE_PATHNAME', 'idsync_get_syncs' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION get_syncs(regclass, boolean) IS 'every sync point of a table, one row per peer';

CREATE OR REPLACE FUNCTION merge_syncs(target regclass, syncs jsonb, incoming boolean DEFAULT true)
RETURNS integer
AS 'MODULE_PATHNAME', 'idsync_merge_syncs' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION merge_syncs(regclass, jsonb, boolean) IS
'max-merge sync points from another node (transitive sync); entries for this node are skipped';

CREATE FUNCTION bulk_query(target regclass, up_to bigint DEFAULT NULL, to_node uuid DEFAULT NULL,
                           in_key_order boolean DEFAULT false)
RETURNS text
AS 'MODULE_PATHNAME', 'idsync_bulk_query' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION bulk_query(regclass, bigint, uuid, boolean) IS
'the SELECT a bulk copy of a table streams: its replicated columns, references as natural keys (jsonb); with up_to, the rows whose point is at most up_to; with to_node, also idsync_origin, and not the rows that node wrote; in_key_order: ordered by the natural key (when it holds no reference), for a copy straight into the receiver''s table';

-- The rows of items_since run the table's plan (plans.sql). The point index is walked and cut
-- at max_rows before the referenced rows are joined (the SET clauses keep the planner on it
-- even without statistics, right after a bulk load). `up_to` lets a sender cut every table of a
-- pass at one point: a row is written after the rows it references, so its point is larger,
-- and a pass that sends parents first up to one point sends every parent its children need.
CREATE FUNCTION items_since(target regclass, point bigint, max_rows integer DEFAULT 1000,
                            up_to bigint DEFAULT NULL, to_node uuid DEFAULT NULL)
RETURNS TABLE (point bigint, item jsonb, origin uuid)
AS 'MODULE_PATHNAME', 'idsync_items_since' LANGUAGE C VOLATILE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION items_since(regclass, bigint, integer, bigint, uuid) IS
'the next changes after a point, in point order, up to the stable point (and up_to): (point, the row by column name without local columns, references as natural keys, the node that wrote it); a row to_node wrote comes as its point alone';

CREATE OR REPLACE FUNCTION _unreplicate_table(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    trigger_name text;
BEGIN
    FOREACH trigger_name IN ARRAY ARRAY['idsync_change', 'idsync_content_insert',
        'idsync_content_update', 'idsync_content_delete', 'idsync_delete', 'idsync_truncate'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', trigger_name, target);
    END LOOP;
    EXECUTE format('ALTER TABLE %s DROP COLUMN IF EXISTS %I, DROP COLUMN IF EXISTS idsync_origin',
                   target, reg.point_column);
    PERFORM idsync._forget(target);
END $$;

CREATE OR REPLACE FUNCTION _staging_definition(reg tables) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_agg(format('%I %s', a.attname,
                             CASE WHEN t.column_name IS NULL THEN format_type(a.atttypid, a.atttypmod)
                                  ELSE 'jsonb' END), ', ' ORDER BY a.attnum) || ', idsync_origin uuid'
    FROM pg_attribute a
    LEFT JOIN idsync._translated(reg.relid) t ON t.column_name = a.attname
    WHERE a.attrelid = reg.relid AND a.attname = ANY (idsync._replicated_columns(reg))
$$;

-- The row hash of a row of `target` as every node computes it: translated references hashed as
-- the natural keys they point at (extension/natural_hash.cpp, the content trigger's rule).
-- Versions that tie in lww merges are broken by it, so two nodes keep the same row whatever
-- their ids.
CREATE FUNCTION _natural_row_hash(target regclass, row_value record) RETURNS uuid
AS 'MODULE_PATHNAME', 'idsync_natural_row_hash' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- (The walk of natural keys by correlated subqueries it replaces.)
DROP FUNCTION _ref_hash_expr(regclass, name, text, integer);

---------------------------------------------------------------------------------------------
-- Registrations made before 0.5.0: triggers without arguments, the origin column, plans
---------------------------------------------------------------------------------------------

-- The columns added here are idsync's own: the ALTER TABLE event trigger (which would refuse a
-- table whose foreign key points at an unregistered table) stays out of it.
ALTER EVENT TRIGGER idsync_on_alter DISABLE;
DO $$
DECLARE
    registered regclass;
    trigger_name text;
BEGIN
    FOR registered IN SELECT relid FROM idsync.tables LOOP
        FOREACH trigger_name IN ARRAY ARRAY['idsync_change', 'idsync_content_insert',
            'idsync_content_update', 'idsync_content_delete', 'idsync_delete', 'idsync_truncate'] LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', trigger_name, registered);
        END LOOP;
        EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS idsync_origin uuid', registered);
        UPDATE idsync.tables t SET local_columns = t.local_columns || 'idsync_origin'::name
        WHERE t.relid = registered AND NOT 'idsync_origin' = ANY (t.local_columns);
        PERFORM idsync._attach_triggers(registered);
        BEGIN
            PERFORM idsync._refresh_content_triggers(registered);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'table % cannot replicate its foreign keys: %', registered, SQLERRM;
        END;
    END LOOP;
END $$;
ALTER EVENT TRIGGER idsync_on_alter ENABLE;
DROP FUNCTION _tombstone_trigger();

---------------------------------------------------------------------------------------------
-- lww deletes remove the row: tombstones move out of the user's tables
---------------------------------------------------------------------------------------------

-- The tombstone rows of lww tables move to idsync.tombstones (their versions and origins kept,
-- at new points). A tombstone row that a row still references stays in the table: deleting it
-- would fail or cascade; it replicates as a row from now on, its tombstone column still set.
-- The tombstone column stays, no longer replicated (a local column, false in every new row):
-- queries that filter on it keep working; drop it when nothing reads it. Rounds, so that a
-- parent whose referencing rows were tombstones themselves moves once they have.
ALTER EVENT TRIGGER idsync_on_alter DISABLE;
DO $$
DECLARE
    reg idsync.tables;
    referenced text;
    round integer;
BEGIN
    FOR round IN 1 .. 9 LOOP
        FOR reg IN SELECT * FROM idsync.tables t WHERE t.mode = 'lww' ORDER BY t.relid LOOP
            CONTINUE WHEN NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = reg.relid
                                      AND a.attname = reg.tombstone_column AND a.attnum > 0
                                      AND NOT a.attisdropped);
            SELECT string_agg(format(' AND NOT EXISTS (SELECT FROM %s r WHERE %s)', c.conrelid::regclass,
                                     (SELECT string_agg(format('r.%I = g.%I', ca.attname, pa.attname), ' AND ')
                                      FROM unnest(c.conkey, c.confkey) k(child_attnum, parent_attnum)
                                      JOIN pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.child_attnum
                                      JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.parent_attnum)), '')
            INTO referenced
            FROM pg_constraint c WHERE c.confrelid = reg.relid AND c.contype = 'f';
            PERFORM idsync._begin_apply(reg.relid, NULL, 'reclaim');
            EXECUTE format(
                'WITH gone AS (DELETE FROM %1$s g WHERE g.%2$I%3$s RETURNING g), '
                'keys AS (SELECT (idsync._natural_key(%4$L, g.g)).*, (g.g).%5$I AS version, '
                '(g.g).idsync_origin AS origin FROM gone g) '
                'INSERT INTO idsync.tombstones AS t (relid, key_hash, key, version, point, origin, hash1, hash2) '
                'SELECT %4$L::regclass::oid, k.key_hash, k.key, k.version, idsync.next_point(), k.origin, '
                '(''x'' || left(h.h, 16))::bit(64)::int8, (''x'' || right(h.h, 16))::bit(64)::int8 '
                'FROM keys k, LATERAL (SELECT replace(idsync._tombstone_hash(k.key_hash, k.version)::text, ''-'', '''') AS h) h '
                'WHERE k.key_hash IS NOT NULL '
                'ON CONFLICT (relid, key_hash) DO UPDATE SET version = excluded.version, point = excluded.point, '
                'origin = excluded.origin, hash1 = excluded.hash1, hash2 = excluded.hash2 '
                'WHERE t.version < excluded.version',
                reg.relid, reg.tombstone_column, coalesce(referenced, ''), reg.relid, reg.version_column);
            PERFORM idsync._end_apply(reg.relid);
        END LOOP;
    END LOOP;
    FOR reg IN SELECT * FROM idsync.tables t WHERE t.mode = 'lww' LOOP
        IF EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = reg.relid
                   AND a.attname = reg.tombstone_column AND a.attnum > 0 AND NOT a.attisdropped)
           AND reg.tombstone_column <> ALL (reg.local_columns) THEN
            UPDATE idsync.tables t SET local_columns = t.local_columns || reg.tombstone_column
            WHERE t.relid = reg.relid;
        END IF;
        PERFORM idsync._registration_changed(reg.relid);
        BEGIN
            PERFORM idsync._build_plan(reg.relid);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'table % has no replication plan: %', reg.relid, SQLERRM;
        END;
        PERFORM idsync._recompute_content_state(reg.relid);
    END LOOP;
END $$;
ALTER EVENT TRIGGER idsync_on_alter ENABLE;

---------------------------------------------------------------------------------------------
-- Every function pins search_path; EXECUTE for PUBLIC on the application API only
---------------------------------------------------------------------------------------------

-- The clock: one implementation, the change trigger's (extension/hlc.cpp).
CREATE OR REPLACE FUNCTION hlc_time(version bigint) RETURNS timestamptz
AS 'MODULE_PATHNAME', 'idsync_hlc_time' LANGUAGE C IMMUTABLE STRICT;
COMMENT ON FUNCTION hlc_time(bigint) IS 'the moment an lww version was taken';
CREATE OR REPLACE FUNCTION hlc_now() RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_hlc_now' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION hlc_now() IS
'the hybrid logical clock: milliseconds since 1970 shifted left 16 bits (the default of lww version columns)';

-- Except insert_missing and its two siblings, which plan their SQL with the path pinned but
-- run it with the caller's, so that the target's own triggers and defaults behave as after an
-- INSERT; the two row triggers, which pin it inside, only around the SQL they run; and row_hash
-- and the clock functions, which run no SQL.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'idsync'::regnamespace
                AND p.proname NOT IN ('insert_missing', 'insert_missing_sets', 'insert_missing_staged',
                                      'change_trigger', 'tombstone_trigger', 'row_hash',
                                      'hlc_now', 'hlc_time') LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', fn);
    END LOOP;
END $$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA idsync FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insert_missing(regclass, text[], "any"),
                          insert_missing_sets(regclass, text[], bigint[], "any"),
                          insert_missing_staged(regclass, regclass, text[]),
                          hlc_now(), hlc_time(bigint), node_id()
TO PUBLIC;
