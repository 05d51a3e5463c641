-- Natural form and content hashes: references to local ids leave a node as the natural keys
-- they point at, and hash as those keys, so equal rows hash equal on every node whatever their
-- ids.

-- The SQL of the natural form, made from the catalogs in one walk of the natural-key tree
-- (extension/natural_form.cpp): the query of a table's content state computed afresh, and the
-- query the content trigger runs per translated reference: (id, the row hash of the natural key
-- of the parent row with that id) for the ids in $1 (bigint[]).
CREATE FUNCTION _content_state_query(target regclass) RETURNS text
AS 'MODULE_PATHNAME', 'idsync_content_state_query' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION _ref_hash_query(parent regclass, parent_column name) RETURNS text
AS 'MODULE_PATHNAME', 'idsync_ref_hash_query' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;

-- The natural key of a row of `target` as its tombstone keeps it (extension/natural_key.cpp):
-- the key's columns as items carry them, and the key's row hash.
CREATE FUNCTION _natural_key(target regclass, row_value record, OUT key jsonb, OUT key_hash uuid)
AS 'MODULE_PATHNAME', 'idsync_natural_key' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- The tombstones' share of a table's content hash, computed afresh from their keys and versions.
CREATE FUNCTION _tombstones_state(target regclass, OUT hash1 bigint, OUT hash2 bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(bit_xor(('x' || left(h, 16))::bit(64)::int8), 0),
           coalesce(bit_xor(('x' || right(h, 16))::bit(64)::int8), 0)
    FROM (SELECT replace(idsync._tombstone_hash(t.key_hash, t.version)::text, '-', '') AS h
          FROM idsync.tombstones t WHERE t.relid = target) x
$$;

-- The content state of a registered table computed afresh, as sync_info keeps it: its rows,
-- references hashed as the natural keys they point at, and its tombstones. Read as the caller
-- (who must be able to read every row, and idsync's tables).
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
-- or stops having translated references, or its replicated columns change. Called at registration and after every ALTER TABLE
-- of the table or of a table it references. SECURITY DEFINER for the same reason as above.
CREATE FUNCTION _refresh_content_triggers(target regclass) RETURNS void
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

-- Folds the committed deltas of a table into idsync.tables. Concurrent calls are safe: a delta
-- is deleted once, and the UPDATE re-reads the row another call just changed.
CREATE FUNCTION compact(target regclass) RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp SECURITY DEFINER AS $$
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

-- The row hash of a row of `target` as every node computes it: translated references hashed as
-- the natural keys they point at (extension/natural_hash.cpp, the content trigger's rule).
-- Versions that tie in lww merges are broken by it, so two nodes keep the same row whatever
-- their ids.
CREATE FUNCTION _natural_row_hash(target regclass, row_value record) RETURNS uuid
AS 'MODULE_PATHNAME', 'idsync_natural_row_hash' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
