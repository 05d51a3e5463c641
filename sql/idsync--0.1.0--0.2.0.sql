-- idsync 0.2.0: replication state. Every database that runs idsync is a node with its own
-- identity; registered tables carry a change point per row version, a content hash, and per
-- peer the point up to which rows were merged (incoming_sync) or pushed (outgoing_sync).
-- Nothing here talks to another node: the daemon, idsyncd, moves the data between nodes by
-- calling these functions on both ends. The model and every function are in README.md.
\echo Use "ALTER EXTENSION idsync UPDATE TO '0.2.0'" to load this file. \quit

---------------------------------------------------------------------------------------------
-- Catalog
---------------------------------------------------------------------------------------------

-- The node's identity. database_oid tells a copy (CREATE DATABASE ... TEMPLATE, dump and
-- restore) from the original; a physical copy (pg_basebackup) must call reset_node_id().
CREATE TABLE node (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    node_id uuid NOT NULL,
    database_oid oid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO node (node_id, database_oid)
SELECT gen_random_uuid(), oid FROM pg_database WHERE datname = current_database();

-- Change points, one sequence per node. Readers need its last value (see stable_point).
CREATE SEQUENCE points AS bigint;
GRANT SELECT ON SEQUENCE points TO PUBLIC;

-- Registered tables. hash1, hash2 and row_count are the folded content state; the deltas of
-- recent statements are in table_deltas.
CREATE TABLE tables (
    relid regclass PRIMARY KEY,
    key_columns name[] NOT NULL,
    mode text NOT NULL CHECK (mode IN ('insert_only', 'lww')),
    version_column name,
    tombstone_column name,
    point_column name NOT NULL,
    -- columns that are not replicated: the surrogate id, the point, generated columns and the
    -- caller's local_columns. Items and content hashes leave them out.
    local_columns name[] NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    hash1 bigint NOT NULL DEFAULT 0,
    hash2 bigint NOT NULL DEFAULT 0,
    row_count bigint NOT NULL DEFAULT 0,
    CHECK ((mode = 'lww') = (version_column IS NOT NULL AND tombstone_column IS NOT NULL))
);

-- One row per statement that changed a registered table (written by content_trigger).
CREATE TABLE table_deltas (
    relid oid NOT NULL,
    hash1 bigint NOT NULL,
    hash2 bigint NOT NULL,
    row_count bigint NOT NULL
);
CREATE INDEX ON table_deltas (relid);

-- Per registered table and peer: how far this node has merged the peer's rows (incoming) and
-- pushed its own rows to the peer (outgoing). Points are the peer's (incoming) or this node's
-- (outgoing), and only ever move up.
CREATE TABLE incoming_sync (
    remote_id uuid NOT NULL,
    relid regclass NOT NULL,
    sync_point bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (relid, remote_id)
);
CREATE TABLE outgoing_sync (LIKE incoming_sync INCLUDING ALL);

-- Rows a merge could not apply (a CHECK constraint of this node, a bad value): parked with the
-- error, never dropped. retry_rejects() merges them again.
CREATE TABLE rejects (
    reject_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relid regclass NOT NULL,
    source uuid,
    point bigint,
    item jsonb NOT NULL,
    sqlstate text NOT NULL,
    message text NOT NULL,
    detail text,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON rejects (relid);

-- pg_dump keeps the replication state of a node with its data.
SELECT pg_catalog.pg_extension_config_dump('node', '');
SELECT pg_catalog.pg_extension_config_dump('points', '');
SELECT pg_catalog.pg_extension_config_dump('tables', '');
SELECT pg_catalog.pg_extension_config_dump('table_deltas', '');
SELECT pg_catalog.pg_extension_config_dump('incoming_sync', '');
SELECT pg_catalog.pg_extension_config_dump('outgoing_sync', '');
SELECT pg_catalog.pg_extension_config_dump('rejects', '');

---------------------------------------------------------------------------------------------
-- C functions
---------------------------------------------------------------------------------------------

CREATE FUNCTION next_point() RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_next_point' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION next_point() IS
'draw a change point for the current transaction (registers the transaction as a writer)';

CREATE FUNCTION stable_point() RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_stable_point' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION stable_point() IS
'the largest point p such that every change with a point <= p has committed or rolled back';

CREATE FUNCTION row_hash(row_value record, excluded text[]) RETURNS uuid
AS 'MODULE_PATHNAME', 'idsync_row_hash' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION row_hash(record, text[]) IS
'128-bit hash of a row''s columns but the excluded ones, independent of column order';

CREATE FUNCTION table_hash(target regclass, excluded text[],
                           OUT row_count bigint, OUT hash1 bigint, OUT hash2 bigint)
AS 'MODULE_PATHNAME', 'idsync_table_hash' LANGUAGE C STABLE STRICT;

CREATE FUNCTION change_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'idsync_change_trigger' LANGUAGE C;

CREATE FUNCTION content_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'idsync_content_trigger' LANGUAGE C;

---------------------------------------------------------------------------------------------
-- Internal helpers (names start with an underscore)
---------------------------------------------------------------------------------------------

-- The registration of `target`, or 55000 if it has none.
CREATE FUNCTION _registration(target regclass) RETURNS tables
LANGUAGE plpgsql STABLE AS $$
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
    RETURN reg;
END $$;

-- The replicated columns of a registration: every live column but the local ones.
CREATE FUNCTION _replicated_columns(reg tables) RETURNS name[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(attname ORDER BY attnum), '{}')
    FROM pg_attribute
    WHERE attrelid = reg.relid AND attnum > 0 AND NOT attisdropped
      AND attname <> ALL (reg.local_columns)
$$;

-- Hybrid logical clock: milliseconds since the Unix epoch << 16; the low 16 bits order changes
-- within a millisecond. Default of lww version columns.
CREATE FUNCTION hlc_now() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT (floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) << 16
$$;

CREATE FUNCTION hlc_time(version bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT to_timestamp((version >> 16) / 1000.0)
$$;

-- Refuses DELETE and TRUNCATE of insert_only tables, and TRUNCATE of every registered table:
-- neither would replicate.
CREATE FUNCTION _refuse_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('idsync.applying', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'cannot % table %: it is replicated as %',
        CASE TG_OP WHEN 'DELETE' THEN 'delete from' ELSE 'truncate' END,
        TG_RELID::regclass, TG_ARGV[0]
        USING ERRCODE = '55000',
              DETAIL = CASE TG_OP WHEN 'TRUNCATE' THEN 'A TRUNCATE would not replicate.'
                       ELSE 'Rows of insert_only tables are immutable facts shared by every node.' END,
              HINT = CASE TG_OP WHEN 'TRUNCATE' THEN 'Delete the rows instead (lww tables), or unregister the table.'
                     ELSE 'Register the table in mode ''lww'' to replicate updates and deletes.' END;
END $$;

-- DELETE on an lww table keeps the row as a tombstone with a new version, so that the delete
-- replicates and an older copy of the row cannot come back. Arguments: tombstone column, key
-- columns.
CREATE FUNCTION _tombstone_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    key_match text;
BEGIN
    IF current_setting('idsync.applying', true) = 'on' THEN
        RETURN OLD;
    END IF;
    SELECT string_agg(format('%I = $1.%I', k, k), ' AND ')
    INTO key_match FROM unnest(TG_ARGV[1:]) AS k;
    EXECUTE format('UPDATE %s SET %I = true WHERE %s AND NOT %I',
                   TG_RELID::regclass, TG_ARGV[0], key_match, TG_ARGV[0])
    USING OLD;
    RETURN NULL;
END $$;

-- Forgets everything idsync keeps about a table (it was unregistered or dropped).
CREATE FUNCTION _forget(table_oid oid) RETURNS void
LANGUAGE sql VOLATILE AS $$
    DELETE FROM idsync.tables WHERE relid = table_oid;
    DELETE FROM idsync.table_deltas WHERE relid = table_oid;
    DELETE FROM idsync.incoming_sync WHERE relid = table_oid;
    DELETE FROM idsync.outgoing_sync WHERE relid = table_oid;
    DELETE FROM idsync.rejects WHERE relid = table_oid;
$$;

-- Cleans up the registrations of dropped tables.
CREATE FUNCTION _on_drop() RETURNS event_trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM idsync._forget(d.objid)
    FROM pg_event_trigger_dropped_objects() d
    WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
      AND d.objid IN (SELECT relid FROM idsync.tables);
END $$;
CREATE EVENT TRIGGER idsync_on_drop ON sql_drop
WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
EXECUTE FUNCTION _on_drop();

---------------------------------------------------------------------------------------------
-- Node identity
---------------------------------------------------------------------------------------------

CREATE FUNCTION node_id() RETURNS uuid
LANGUAGE plpgsql STABLE AS $$
DECLARE
    me idsync.node;
BEGIN
    SELECT * INTO STRICT me FROM idsync.node;
    IF me.database_oid <> (SELECT oid FROM pg_database WHERE datname = current_database()) THEN
        RAISE EXCEPTION 'this database is a copy of idsync node %', me.node_id
            USING ERRCODE = '55000',
                  HINT = 'Give it an identity of its own: SELECT idsync.reset_node_id();';
    END IF;
    RETURN me.node_id;
END $$;
COMMENT ON FUNCTION node_id() IS 'the uuid that identifies this database as an idsync node';

CREATE FUNCTION reset_node_id() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    UPDATE idsync.node
    SET node_id = gen_random_uuid(), created_at = now(),
        database_oid = (SELECT oid FROM pg_database WHERE datname = current_database())
    RETURNING node_id
$$;
COMMENT ON FUNCTION reset_node_id() IS
'give a copied database (pg_basebackup, template, restore) a node identity of its own';

---------------------------------------------------------------------------------------------
-- Registration
---------------------------------------------------------------------------------------------

CREATE FUNCTION replicate(target regclass, key_columns text[], mode text DEFAULT 'insert_only',
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
    state record;
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

    SELECT * INTO rel FROM pg_class WHERE oid = target;
    IF rel.relkind <> 'r' OR rel.relpersistence = 't' THEN
        RAISE EXCEPTION '"%" is not a permanent ordinary table', target
            USING ERRCODE = '42809',
                  DETAIL = 'idsync replicates ordinary tables; partitioned tables, views and temporary tables are not supported.';
    END IF;
    IF rel.relnamespace = 'idsync'::regnamespace THEN
        RAISE EXCEPTION 'idsync''s own tables cannot be replicated' USING ERRCODE = '42809';
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
    SELECT i.indexrelid::regclass INTO key_index
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
    WHERE i.indrelid = target AND i.indisunique AND i.indisvalid AND i.indimmediate
      AND am.amname = 'btree' AND i.indpred IS NULL AND i.indexprs IS NULL
      AND i.indnkeyatts = cardinality(keys)
      AND (SELECT array_agg(a.attname ORDER BY a.attname) FROM pg_attribute a
           WHERE a.attrelid = target AND a.attnum = ANY (i.indkey[0:i.indnkeyatts - 1]))
          = (SELECT array_agg(k ORDER BY k) FROM unnest(keys) k)
    ORDER BY i.indisprimary DESC, i.indnullsnotdistinct DESC
    LIMIT 1;
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

    -- Local columns: the surrogate id (the single-column integer primary key, else an integer
    -- column "id", when not part of the key), generated columns, and the caller's own.
    SELECT a.attname INTO id_column
    FROM pg_attribute a
    WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped
      AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
      AND a.attname <> ALL (keys)
      AND (a.attname = 'id' OR EXISTS (
              SELECT 1 FROM pg_index i WHERE i.indrelid = target AND i.indisprimary
                AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum))
    ORDER BY a.attname = 'id'
    LIMIT 1;
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
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = target AND attname = point_column) THEN
        RAISE EXCEPTION 'table % already has a column named %', target, point_column
            USING ERRCODE = '42701';
    END IF;
    locals := ARRAY[point_column]
              || CASE WHEN id_column IS NULL THEN '{}'::name[] ELSE ARRAY[id_column] END || local_columns::name[]
              || ARRAY(SELECT attname FROM pg_attribute
                       WHERE attrelid = target AND attnum > 0 AND attgenerated <> '');

    -- lww: the version and tombstone columns, added when missing.
    IF mode = 'lww' THEN
        IF version_column = ANY (keys) OR tombstone_column = ANY (keys)
           OR version_column = ANY (locals) OR tombstone_column = ANY (locals)
           OR version_column = tombstone_column THEN
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
                   AND attnum > 0 AND NOT attisdropped) THEN
            IF (SELECT atttypid FROM pg_attribute WHERE attrelid = target
                AND attname = tombstone_column) <> 'bool'::regtype THEN
                RAISE EXCEPTION 'tombstone column % must be boolean', quote_ident(tombstone_column)
                    USING ERRCODE = '42804';
            END IF;
            EXECUTE format('UPDATE %s SET %I = false WHERE %I IS NULL', target,
                           tombstone_column, tombstone_column);
            EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT false, ALTER COLUMN %I SET NOT NULL',
                           target, tombstone_column, tombstone_column);
        ELSE
            EXECUTE format('ALTER TABLE %s ADD COLUMN %I boolean NOT NULL DEFAULT false',
                           target, tombstone_column);
        END IF;
    END IF;

    -- Existing rows get their points in the rewrite that adds the column.
    EXECUTE format('ALTER TABLE %s ADD COLUMN %I bigint DEFAULT idsync.next_point()',
                   target, point_column);
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', target, point_column);
    EXECUTE format('CREATE INDEX ON %s (%I)', target, point_column);

    EXECUTE format('CREATE TRIGGER idsync_change BEFORE INSERT OR UPDATE ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION idsync.change_trigger(%s)', target,
                   (SELECT string_agg(quote_literal(a), ', ')
                    FROM unnest(ARRAY[mode, point_column, version_column]) a WHERE a IS NOT NULL));
    EXECUTE format('CREATE TRIGGER idsync_content_insert AFTER INSERT ON %s '
                   'REFERENCING NEW TABLE AS idsync_new FOR EACH STATEMENT '
                   'EXECUTE FUNCTION idsync.content_trigger(%s)',
                   target, (SELECT string_agg(quote_literal(c), ', ') FROM unnest(locals) c));
    EXECUTE format('CREATE TRIGGER idsync_content_update AFTER UPDATE ON %s '
                   'REFERENCING OLD TABLE AS idsync_old NEW TABLE AS idsync_new FOR EACH STATEMENT '
                   'EXECUTE FUNCTION idsync.content_trigger(%s)',
                   target, (SELECT string_agg(quote_literal(c), ', ') FROM unnest(locals) c));
    EXECUTE format('CREATE TRIGGER idsync_content_delete AFTER DELETE ON %s '
                   'REFERENCING OLD TABLE AS idsync_old FOR EACH STATEMENT '
                   'EXECUTE FUNCTION idsync.content_trigger(%s)',
                   target, (SELECT string_agg(quote_literal(c), ', ') FROM unnest(locals) c));
    IF mode = 'insert_only' THEN
        EXECUTE format('CREATE TRIGGER idsync_delete BEFORE DELETE ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION idsync._refuse_trigger(%L)', target, mode);
    ELSE
        EXECUTE format('CREATE TRIGGER idsync_delete BEFORE DELETE ON %s FOR EACH ROW '
                       'EXECUTE FUNCTION idsync._tombstone_trigger(%s)', target,
                       (SELECT string_agg(quote_literal(c), ', ')
                        FROM unnest(tombstone_column || keys) c));
    END IF;
    EXECUTE format('CREATE TRIGGER idsync_truncate BEFORE TRUNCATE ON %s FOR EACH STATEMENT '
                   'EXECUTE FUNCTION idsync._refuse_trigger(%L)', target, mode);

    SELECT * INTO state FROM idsync.table_hash(target, locals::text[]);
    INSERT INTO idsync.tables (relid, key_columns, mode, version_column, tombstone_column,
                               point_column, local_columns, hash1, hash2, row_count)
    VALUES (target, keys, mode, version_column, tombstone_column, point_column, locals,
            state.hash1, state.hash2, state.row_count);
END $$;
COMMENT ON FUNCTION replicate(regclass, text[], text, name, name, text[]) IS
'register a table for replication, identified across nodes by the natural key key_columns';

CREATE FUNCTION unreplicate(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    trigger_name text;
BEGIN
    FOREACH trigger_name IN ARRAY ARRAY['idsync_change', 'idsync_content_insert',
        'idsync_content_update', 'idsync_content_delete', 'idsync_delete', 'idsync_truncate'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', trigger_name, target);
    END LOOP;
    EXECUTE format('ALTER TABLE %s DROP COLUMN IF EXISTS %I', target, reg.point_column);
    PERFORM idsync._forget(target);
END $$;
COMMENT ON FUNCTION unreplicate(regclass) IS
'stop replicating a table: drops its triggers, change points and replication state';

---------------------------------------------------------------------------------------------
-- Preflight and sync points
---------------------------------------------------------------------------------------------

-- Folds the committed deltas of a table into idsync.tables. Concurrent calls are safe: a delta
-- is deleted once, and the UPDATE re-reads the row another call just changed.
CREATE FUNCTION compact(target regclass) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    WITH folded AS (
        DELETE FROM idsync.table_deltas WHERE relid = target
        RETURNING hash1, hash2, row_count
    ), total AS (
        SELECT count(*) AS n, bit_xor(hash1) AS h1, bit_xor(hash2) AS h2, sum(row_count) AS rows
        FROM folded
    ), updated AS (
        UPDATE idsync.tables t
        SET hash1 = t.hash1 # total.h1, hash2 = t.hash2 # total.h2,
            row_count = t.row_count + total.rows
        FROM total WHERE t.relid = target AND total.n > 0
    )
    SELECT n FROM total
$$;
COMMENT ON FUNCTION compact(regclass) IS
'fold the content deltas of a table into its registration; returns how many were folded';

CREATE FUNCTION sync_info(target regclass,
                          OUT node_id uuid, OUT max_point bigint, OUT row_count bigint,
                          OUT content_hash text, OUT rejects bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    stable bigint;
    pending bigint;
BEGIN
    node_id := idsync.node_id();
    stable := idsync.stable_point();
    -- Keep the delta list short; only at READ COMMITTED, where folding cannot conflict.
    SELECT count(*) INTO pending FROM idsync.table_deltas d WHERE d.relid = target;
    IF pending >= 1000 AND current_setting('transaction_isolation') = 'read committed' THEN
        PERFORM idsync.compact(target);
        reg := idsync._registration(target);
    END IF;
    EXECUTE format('SELECT max(%1$I) FROM %2$s WHERE %1$I <= $1', reg.point_column, target)
    INTO max_point USING stable;
    max_point := coalesce(max_point, -1);
    SELECT reg.row_count + coalesce(sum(d.row_count), 0),
           lpad(to_hex(reg.hash1 # coalesce(bit_xor(d.hash1), 0)), 16, '0')
           || lpad(to_hex(reg.hash2 # coalesce(bit_xor(d.hash2), 0)), 16, '0')
    INTO row_count, content_hash
    FROM idsync.table_deltas d WHERE d.relid = target;
    SELECT count(*) INTO rejects FROM idsync.rejects r WHERE r.relid = target;
END $$;
COMMENT ON FUNCTION sync_info(regclass) IS
'a sender''s preflight: node id, largest stable change point, row count, content hash, parked rejects';

CREATE FUNCTION get_sync(target regclass, remote uuid, incoming boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    point bigint;
BEGIN
    IF remote IS NULL OR incoming IS NULL THEN
        RAISE EXCEPTION 'remote and incoming must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF incoming THEN
        SELECT s.sync_point INTO point FROM idsync.incoming_sync s
        WHERE s.relid = target AND s.remote_id = remote;
    ELSE
        SELECT s.sync_point INTO point FROM idsync.outgoing_sync s
        WHERE s.relid = target AND s.remote_id = remote;
    END IF;
    RETURN coalesce(point, -1);
END $$;
COMMENT ON FUNCTION get_sync(regclass, uuid, boolean) IS
'the sync point of a peer for a table: how far its rows were merged here (incoming) or ours pushed there; -1 when unknown';

CREATE FUNCTION get_syncs(target regclass, incoming boolean DEFAULT true)
RETURNS TABLE (remote_id uuid, sync_point bigint, updated_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
BEGIN
    IF incoming IS NULL THEN
        RAISE EXCEPTION 'incoming must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF incoming THEN
        RETURN QUERY SELECT s.remote_id, s.sync_point, s.updated_at FROM idsync.incoming_sync s
                     WHERE s.relid = target ORDER BY s.remote_id;
    ELSE
        RETURN QUERY SELECT s.remote_id, s.sync_point, s.updated_at FROM idsync.outgoing_sync s
                     WHERE s.relid = target ORDER BY s.remote_id;
    END IF;
END $$;
COMMENT ON FUNCTION get_syncs(regclass, boolean) IS 'every sync point of a table, one row per peer';

-- Raises one sync point to at least `point`.
CREATE FUNCTION _raise_sync(target regclass, remote uuid, point bigint, incoming boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF incoming THEN
        INSERT INTO idsync.incoming_sync AS s (remote_id, relid, sync_point)
        VALUES (remote, target, point)
        ON CONFLICT (relid, remote_id) DO UPDATE
        SET sync_point = greatest(s.sync_point, excluded.sync_point), updated_at = now();
    ELSE
        INSERT INTO idsync.outgoing_sync AS s (remote_id, relid, sync_point)
        VALUES (remote, target, point)
        ON CONFLICT (relid, remote_id) DO UPDATE
        SET sync_point = greatest(s.sync_point, excluded.sync_point), updated_at = now();
    END IF;
END $$;

CREATE FUNCTION merge_syncs(target regclass, syncs jsonb, incoming boolean DEFAULT true)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    me uuid := idsync.node_id();
    entry jsonb;
    merged integer := 0;
BEGIN
    IF syncs IS NULL OR incoming IS NULL THEN
        RAISE EXCEPTION 'syncs and incoming must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF jsonb_typeof(syncs) <> 'array' THEN
        RAISE EXCEPTION 'syncs must be a JSON array of {"remote_id": uuid, "sync_point": bigint}'
            USING ERRCODE = '22023';
    END IF;
    FOR entry IN SELECT e FROM jsonb_array_elements(syncs) e LOOP
        IF jsonb_typeof(entry) <> 'object' OR jsonb_typeof(entry -> 'remote_id') <> 'string'
           OR jsonb_typeof(entry -> 'sync_point') <> 'number' THEN
            RAISE EXCEPTION 'malformed sync entry: %', entry
                USING ERRCODE = '22023',
                      HINT = 'Each entry is {"remote_id": uuid, "sync_point": bigint}, as get_syncs returns.';
        END IF;
        IF (entry ->> 'remote_id')::uuid = me THEN
            CONTINUE;
        END IF;
        PERFORM idsync._raise_sync(target, (entry ->> 'remote_id')::uuid,
                                   (entry ->> 'sync_point')::bigint, incoming);
        merged := merged + 1;
    END LOOP;
    RETURN merged;
END $$;
COMMENT ON FUNCTION merge_syncs(regclass, jsonb, boolean) IS
'max-merge sync points from another node (transitive sync); entries for this node are skipped';

---------------------------------------------------------------------------------------------
-- Changes out
---------------------------------------------------------------------------------------------

-- The plan must walk the point index and stop after max_rows: without statistics (right after
-- a bulk load) the planner would read every row after the point and sort them.
CREATE FUNCTION _items_since(target regclass, after bigint, max_rows integer)
RETURNS TABLE (point bigint, item jsonb)
LANGUAGE plpgsql VOLATILE SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    stable bigint;
BEGIN
    IF after IS NULL OR max_rows IS NULL THEN
        RAISE EXCEPTION 'point and max_rows must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF max_rows < 1 THEN
        RAISE EXCEPTION 'max_rows must be positive' USING ERRCODE = '22023';
    END IF;
    -- The rows are read with a snapshot taken after the stable point; a transaction snapshot
    -- taken earlier could miss a commit below it and skip the row for good.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'idsync.items_since must run at READ COMMITTED'
            USING ERRCODE = '25000',
                  DETAIL = 'Under REPEATABLE READ or SERIALIZABLE the snapshot may predate a change it would report as read.';
    END IF;
    stable := idsync.stable_point();
    RETURN QUERY EXECUTE format(
        'SELECT r.%1$I, to_jsonb(r) - $4 FROM %2$s r WHERE r.%1$I > $1 AND r.%1$I <= $2 '
        'ORDER BY r.%1$I LIMIT $3', reg.point_column, target)
    USING after, stable, max_rows, reg.local_columns::text[];
END $$;

CREATE FUNCTION items_since(target regclass, point bigint, max_rows integer DEFAULT 1000)
RETURNS TABLE (point bigint, item jsonb)
LANGUAGE sql VOLATILE AS $$
    SELECT * FROM idsync._items_since($1, $2, $3)
$$;COMMENT ON FUNCTION items_since(regclass, bigint, integer) IS
'the next changes after a point, in point order: (point, the row by column name without local columns)';

---------------------------------------------------------------------------------------------
-- Changes in
---------------------------------------------------------------------------------------------

-- A temporary table for the rows of one merge into `reg`: idsync_ord, idsync_point and the
-- replicated columns with the target's types. Kept for the session and emptied per merge;
-- made again when the target's columns changed.
CREATE FUNCTION _stage(reg tables) RETURNS regclass
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    stage_name text := 'idsync_stage_' || reg.relid::oid;
    stage regclass := to_regclass('pg_temp.' || stage_name);
    definition text := 'idsync_ord bigint, idsync_point bigint, ' || (
        SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', '
                          ORDER BY a.attnum)
        FROM pg_attribute a
        WHERE a.attrelid = reg.relid AND a.attname = ANY (idsync._replicated_columns(reg)));
BEGIN
    IF stage IS NOT NULL AND obj_description(stage, 'pg_class') = definition THEN
        EXECUTE format('TRUNCATE %s', stage);
        RETURN stage;
    END IF;
    IF stage IS NOT NULL THEN
        EXECUTE format('DROP TABLE %s', stage);
    END IF;
    EXECUTE format('CREATE TEMPORARY TABLE %I (%s)', stage_name, definition);
    stage := to_regclass('pg_temp.' || stage_name);
    EXECUTE format('COMMENT ON TABLE %s IS %L', stage, definition);
    RETURN stage;
END $$;

-- Parks one staged row in idsync.rejects with the error that refused it.
CREATE FUNCTION _park(reg tables, stage regclass, ord bigint, source uuid, state text,
                      message text, detail text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    EXECUTE format('INSERT INTO idsync.rejects (relid, source, point, item, sqlstate, message, detail) '
                   'SELECT $1, $2, s.idsync_point, to_jsonb(s) - ''idsync_ord'' - ''idsync_point'', $3, $4, $5 '
                   'FROM %s s WHERE s.idsync_ord = $6', stage)
    USING reg.relid, source, state, message, detail, ord;
END $$;

-- The statement that merges staged rows: insert what is missing, and in lww tables overwrite a
-- row whose (version, row hash) is smaller. `rows` is a FROM item aliased s that has the
-- replicated columns. The result is (inserted, updated).
--
-- Rows that would change nothing are filtered out before the INSERT: PostgreSQL checks CHECK
-- constraints before it looks for a conflict, so an incoming copy that this node's constraints
-- refuse would otherwise be rejected although this node already holds the row (or a newer
-- version). ON CONFLICT still settles races with concurrent writers.
CREATE FUNCTION _merge_statement(reg tables, rows text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    cols name[] := idsync._replicated_columns(reg);
    col_list text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) c);
    key_list text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(reg.key_columns) c);
    key_match text := (SELECT string_agg(format('old.%I = s.%I', c, c), ' AND ')
                       FROM unnest(reg.key_columns) c);
    -- The rows with exactly the target's column types, so that row hashes agree.
    typed text := (SELECT string_agg(format('s.%I::%s AS %I', a.attname,
                                            format_type(a.atttypid, a.atttypmod), a.attname), ', ')
                   FROM pg_attribute a WHERE a.attrelid = reg.relid AND a.attname = ANY (cols));
    set_list text;
BEGIN
    IF reg.mode = 'insert_only' THEN
        RETURN format('WITH m AS (INSERT INTO %1$s (%2$s) SELECT %2$s FROM %3$s '
                      '           WHERE NOT EXISTS (SELECT FROM %1$s old WHERE %5$s) '
                      '           ON CONFLICT (%4$s) DO NOTHING RETURNING 1) '
                      'SELECT count(*)::int, 0 FROM m',
                      reg.relid, col_list, rows, key_list, key_match);
    END IF;
    SELECT string_agg(format('%I = excluded.%I', c, c), ', ') INTO set_list
    FROM unnest(cols) c WHERE c <> ALL (reg.key_columns);
    -- One row per key, the newest, as ON CONFLICT DO UPDATE may touch a row only once; ties
    -- of versions go to the larger row hash, here and against the stored row alike.
    RETURN format(
        'WITH typed AS (SELECT %6$s FROM %4$s), '
        'src AS (SELECT DISTINCT ON (%2$s) * FROM typed t '
        '        ORDER BY %2$s, t.%5$I DESC, idsync.row_hash(t, ''{}'') DESC), '
        'm AS (INSERT INTO %1$s AS cur (%3$s) SELECT %3$s FROM src s '
        '      WHERE NOT EXISTS (SELECT FROM %1$s old WHERE %9$s AND '
        '          (old.%5$I, idsync.row_hash(old, %8$L)) >= (s.%5$I, idsync.row_hash(s, ''{}''))) '
        '      ON CONFLICT (%2$s) DO UPDATE SET %7$s '
        '      WHERE (cur.%5$I, idsync.row_hash(cur, %8$L)) < (excluded.%5$I, idsync.row_hash(excluded, %8$L)) '
        '      RETURNING cur.xmax = ''0''::xid AS inserted) '
        'SELECT (count(*) FILTER (WHERE inserted))::int, (count(*) FILTER (WHERE NOT inserted))::int FROM m',
        reg.relid, key_list, col_list, rows, reg.version_column, typed,
        set_list, reg.local_columns::text[], key_match);
END $$;

-- Merges staged rows lo..hi (by idsync_ord). A row the target refuses for its data (class 22,
-- 23, 27000, or an exception raised by a trigger) is parked in idsync.rejects: the range is
-- halved until the refused rows stand alone, so k bad rows cost about 2k log n attempts and the
-- good rows all merge. Other errors (serialization, deadlock, cancel) abort the merge.
CREATE FUNCTION _merge_range(reg tables, stage regclass, lo bigint, hi bigint, source uuid,
                             INOUT inserted integer, INOUT updated integer, INOUT rejected integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    got_inserted integer;
    got_updated integer;
    mid bigint;
    state text;
    message text;
    detail text;
BEGIN
    IF lo > hi THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE idsync._merge_statement(reg, format(
            '(SELECT * FROM %s WHERE idsync_ord BETWEEN %s AND %s) s', stage, lo, hi))
        INTO got_inserted, got_updated;
        inserted := inserted + got_inserted;
        updated := updated + got_updated;
        RETURN;
    EXCEPTION WHEN data_exception OR integrity_constraint_violation
                   OR triggered_data_change_violation OR raise_exception THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                detail = PG_EXCEPTION_DETAIL;
    END;
    IF lo = hi THEN
        PERFORM idsync._park(reg, stage, lo, source, state, message, nullif(detail, ''));
        rejected := rejected + 1;
        RETURN;
    END IF;
    mid := lo + (hi - lo) / 2;
    SELECT * INTO inserted, updated, rejected
    FROM idsync._merge_range(reg, stage, lo, mid, source, inserted, updated, rejected);
    SELECT * INTO inserted, updated, rejected
    FROM idsync._merge_range(reg, stage, mid + 1, hi, source, inserted, updated, rejected);
END $$;

CREATE FUNCTION merge_items(target regclass, items jsonb, source uuid DEFAULT NULL)
RETURNS TABLE (received integer, inserted integer, updated integer, unchanged integer,
               rejected integer, sync_point bigint)
LANGUAGE plpgsql VOLATILE SET idsync.applying = on AS $$
#variable_conflict use_variable
DECLARE
    reg idsync.tables := idsync._registration(target);
    cols name[] := idsync._replicated_columns(reg);
    stage regclass;
    fill text;
    bad jsonb;
    last_point bigint;
    entry record;
    state text;
    message text;
BEGIN
    IF items IS NULL THEN
        RAISE EXCEPTION 'items must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF jsonb_typeof(items) <> 'array' THEN
        RAISE EXCEPTION 'items must be a JSON array' USING ERRCODE = '22023',
            HINT = 'Pass jsonb_agg(i) over the rows of idsync.items_since: [{"point": ..., "item": {...}}, ...].';
    END IF;
    SELECT e INTO bad FROM jsonb_array_elements(items) e
    WHERE jsonb_typeof(e) <> 'object' OR jsonb_typeof(e -> 'item') IS DISTINCT FROM 'object'
       OR jsonb_typeof(e -> 'point') IS DISTINCT FROM 'number'
       OR (e ->> 'point')::numeric <> trunc((e ->> 'point')::numeric)
       OR (e ->> 'point')::numeric NOT BETWEEN 0 AND 9223372036854775807
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'malformed item: %', left(bad::text, 200) USING ERRCODE = '22023',
            HINT = 'Each item is {"point": bigint, "item": {column: value, ...}}, as idsync.items_since returns.';
    END IF;
    received := jsonb_array_length(items);
    SELECT max((e ->> 'point')::bigint) INTO last_point FROM jsonb_array_elements(items) e;

    -- Stage the rows with the target's column types: all at once, or, when a value does not
    -- convert, one by one (a one-item array, its ord shifted by $3) so that only the refused
    -- rows are parked. Rows with a column this node does not have are parked below.
    stage := idsync._stage(reg);
    fill := format('INSERT INTO %1$s (idsync_ord, idsync_point, %2$s) '
                   'SELECT x.ord + $3, (x.e ->> ''point'')::bigint, %3$s '
                   'FROM jsonb_array_elements($1) WITH ORDINALITY x(e, ord), '
                   'jsonb_populate_record(NULL::%1$s, x.e -> ''item'') r '
                   'WHERE NOT EXISTS (SELECT FROM jsonb_object_keys(x.e -> ''item'') k WHERE k <> ALL ($2))',
                   stage, (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) c),
                   (SELECT string_agg('r.' || quote_ident(c), ', ') FROM unnest(cols) c));
    rejected := 0;
    BEGIN
        EXECUTE fill USING items, cols::text[], 0::bigint;
    EXCEPTION WHEN data_exception THEN
        FOR entry IN SELECT x.ord, x.e FROM jsonb_array_elements(items) WITH ORDINALITY x(e, ord) LOOP
            BEGIN
                EXECUTE fill USING jsonb_build_array(entry.e), cols::text[], entry.ord - 1;
            EXCEPTION WHEN data_exception THEN
                GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
                INSERT INTO idsync.rejects (relid, source, point, item, sqlstate, message)
                VALUES (target, source, (entry.e ->> 'point')::bigint, entry.e -> 'item', state, message);
                rejected := rejected + 1;
            END;
        END LOOP;
    END;
    FOR entry IN SELECT x.e, (SELECT string_agg(k, ', ') FROM jsonb_object_keys(x.e -> 'item') k
                              WHERE k <> ALL (cols)) AS unknown
                 FROM jsonb_array_elements(items) x(e) LOOP
        CONTINUE WHEN entry.unknown IS NULL;
        INSERT INTO idsync.rejects (relid, source, point, item, sqlstate, message)
        VALUES (target, source, (entry.e ->> 'point')::bigint, entry.e -> 'item', '42703',
                format('column %s of table %s does not exist on this node', entry.unknown, target));
        rejected := rejected + 1;
    END LOOP;

    inserted := 0;
    updated := 0;
    SELECT * INTO inserted, updated, rejected
    FROM idsync._merge_range(reg, stage, 1, received, source, inserted, updated, rejected);
    unchanged := received - inserted - updated - rejected;

    -- Always, also when nothing changed: a receiver whose rows are all newer must still move
    -- the sender's point forward, or the sender stays diff-capped for ever.
    IF source IS NOT NULL AND last_point IS NOT NULL THEN
        PERFORM idsync._raise_sync(target, source, last_point, true);
    END IF;
    sync_point := CASE WHEN source IS NULL THEN NULL ELSE idsync.get_sync(target, source) END;
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION merge_items(regclass, jsonb, uuid) IS
'merge changes from another node; with source, raise its incoming sync point in the same transaction';

CREATE FUNCTION merge_staged(target regclass, staging regclass, source uuid, point bigint)
RETURNS TABLE (received integer, inserted integer, updated integer, unchanged integer,
               rejected integer, sync_point bigint)
LANGUAGE plpgsql VOLATILE SET idsync.applying = on AS $$
#variable_conflict use_variable
DECLARE
    reg idsync.tables := idsync._registration(target);
    cols name[] := idsync._replicated_columns(reg);
    missing text;
    stage regclass;
BEGIN
    IF staging IS NULL THEN
        RAISE EXCEPTION 'staging must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF source IS NOT NULL AND point IS NULL THEN
        RAISE EXCEPTION 'point must not be NULL when source is given' USING ERRCODE = '22004';
    END IF;
    SELECT string_agg(quote_ident(c), ', ') INTO missing FROM unnest(cols) c
    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = staging
                      AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'staging table % lacks column %', staging, missing
            USING ERRCODE = '42703';
    END IF;
    EXECUTE format('SELECT count(*) FROM %s', staging) INTO received;
    inserted := 0;
    updated := 0;
    rejected := 0;
    -- The fast path merges straight from the staging table; only when a row is refused are
    -- the rows numbered into a stage and merged by halves.
    BEGIN
        EXECUTE idsync._merge_statement(reg, format('%s s', staging)) INTO inserted, updated;
    EXCEPTION WHEN data_exception OR integrity_constraint_violation
                   OR triggered_data_change_violation OR raise_exception THEN
        stage := idsync._stage(reg);
        EXECUTE format('INSERT INTO %1$s (idsync_ord, %2$s) SELECT row_number() OVER (), %2$s FROM %3$s',
                       stage, (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) c), staging);
        SELECT * INTO inserted, updated, rejected
        FROM idsync._merge_range(reg, stage, 1, received, source, 0, 0, 0);
    END;
    unchanged := received - inserted - updated - rejected;
    IF source IS NOT NULL THEN
        PERFORM idsync._raise_sync(target, source, point, true);
    END IF;
    sync_point := CASE WHEN source IS NULL THEN NULL ELSE idsync.get_sync(target, source) END;
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION merge_staged(regclass, regclass, uuid, bigint) IS
'merge a staging table filled by COPY (bulk catch-up); with source, raise its incoming sync point to point';

CREATE FUNCTION retry_rejects(target regclass)
RETURNS TABLE (retried integer, merged integer, still_rejected integer)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_variable
DECLARE
    reg idsync.tables := idsync._registration(target);
    batch record;
    result record;
BEGIN
    retried := 0;
    merged := 0;
    still_rejected := 0;
    FOR batch IN
        WITH taken AS (
            DELETE FROM idsync.rejects r
            WHERE r.reject_id IN (SELECT reject_id FROM idsync.rejects WHERE relid = target
                                  ORDER BY reject_id FOR UPDATE SKIP LOCKED)
            RETURNING r.source, r.point, r.item, r.reject_id)
        SELECT t.source, jsonb_agg(jsonb_build_object('point', coalesce(t.point, 0), 'item', t.item)
                                   ORDER BY t.reject_id) AS items
        FROM taken t GROUP BY t.source
    LOOP
        -- Merged without a source: the sync point already moved past these rows.
        SELECT * INTO result FROM idsync.merge_items(target, batch.items);
        UPDATE idsync.rejects r SET source = batch.source
        WHERE r.relid = target AND r.source IS NULL AND r.rejected_at = now();
        retried := retried + result.received;
        merged := merged + result.received - result.rejected;
        still_rejected := still_rejected + result.rejected;
    END LOOP;
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION retry_rejects(regclass) IS
'merge the parked rows of a table again (after fixing what refused them); rows still refused stay parked';

---------------------------------------------------------------------------------------------
-- Reclaim
---------------------------------------------------------------------------------------------

CREATE FUNCTION reclaim(target regclass, older_than interval)
RETURNS TABLE (tombstones bigint, sync_rows bigint)
LANGUAGE plpgsql VOLATILE SET idsync.applying = on AS $$
#variable_conflict use_variable
DECLARE
    reg idsync.tables := idsync._registration(target);
    n bigint;
BEGIN
    IF older_than IS NULL THEN
        RAISE EXCEPTION 'older_than must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must not be negative' USING ERRCODE = '22023';
    END IF;
    tombstones := 0;
    IF reg.mode = 'lww' THEN
        EXECUTE format('DELETE FROM %s WHERE %I AND idsync.hlc_time(%I) < now() - $1',
                       target, reg.tombstone_column, reg.version_column)
        USING older_than;
        GET DIAGNOSTICS tombstones = ROW_COUNT;
    END IF;
    DELETE FROM idsync.incoming_sync s WHERE s.relid = target AND s.updated_at < now() - older_than;
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM idsync.outgoing_sync s WHERE s.relid = target AND s.updated_at < now() - older_than;
    GET DIAGNOSTICS sync_rows = ROW_COUNT;
    sync_rows := sync_rows + n;
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION reclaim(regclass, interval) IS
'purge tombstones and sync rows older than older_than (Swift''s reclaim_age); must exceed the longest replication delay';
