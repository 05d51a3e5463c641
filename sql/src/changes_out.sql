-- What a sender reads: the preflight (sync_info, sync points), the changes after a point, the
-- bulk query; and merge_syncs for transitive sync.

CREATE FUNCTION sync_info(target regclass, up_to bigint DEFAULT NULL,
                          OUT node_id uuid, OUT max_point bigint, OUT row_count bigint,
                          OUT content_hash text, OUT rejects bigint)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    bound bigint;
    pending bigint;
BEGIN
    node_id := idsync.node_id();
    bound := least(idsync.stable_point(), up_to);
    -- Keep the delta list short; only at READ COMMITTED, where folding cannot conflict.
    SELECT count(*) INTO pending FROM idsync.table_deltas d WHERE d.relid = target;
    IF pending >= 1000 AND current_setting('transaction_isolation') = 'read committed' THEN
        PERFORM idsync.compact(target);
        reg := idsync._registration(target);
    END IF;
    EXECUTE format('SELECT max(%1$I) FROM %2$s WHERE %1$I <= $1', reg.point_column, target)
    INTO max_point USING bound;
    max_point := coalesce(max_point, -1);
    SELECT reg.row_count + coalesce(sum(d.row_count), 0),
           lpad(to_hex(reg.hash1 # coalesce(bit_xor(d.hash1), 0)), 16, '0')
           || lpad(to_hex(reg.hash2 # coalesce(bit_xor(d.hash2), 0)), 16, '0')
    INTO row_count, content_hash
    FROM idsync.table_deltas d WHERE d.relid = target;
    SELECT count(*) INTO rejects FROM idsync.rejects r WHERE r.relid = target;
END $$;
COMMENT ON FUNCTION sync_info(regclass, bigint) IS
'a sender''s preflight: node id, largest stable change point (at most up_to), row count, content hash, parked rejects';

CREATE FUNCTION get_sync(target regclass, remote uuid, incoming boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
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
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
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

CREATE FUNCTION merge_syncs(target regclass, syncs jsonb, incoming boolean DEFAULT true)
RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
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

CREATE FUNCTION bulk_query(target regclass, up_to bigint DEFAULT NULL, to_node uuid DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
BEGIN
    -- The replicated columns; for a node, also who wrote each row, and not the rows it wrote.
    -- Without to_node the columns are those of 0.4.0, which a 0.4.0 idsyncd copies.
    RETURN idsync._natural_select(reg, target::text, 'json',
                                  CASE WHEN to_node IS NOT NULL THEN
                                      format('coalesce(c.idsync_origin, %L::uuid) AS idsync_origin',
                                             idsync.node_id()) END)
           || ' WHERE true'
           || CASE WHEN up_to IS NULL THEN ''
                   ELSE format(' AND c.%I <= %s', reg.point_column, up_to) END
           || CASE WHEN to_node IS NULL THEN ''
                   ELSE format(' AND c.idsync_origin IS DISTINCT FROM %L::uuid', to_node) END;
END $$;
COMMENT ON FUNCTION bulk_query(regclass, bigint, uuid) IS
'the SELECT a bulk copy of a table streams: its replicated columns, references as natural keys (jsonb); with up_to, the rows whose point is at most up_to; with to_node, also idsync_origin, and not the rows that node wrote';

-- The rows of items_since: references in natural form, and an upper bound. The point index is
-- walked and cut at max_rows before the referenced rows are joined (the SET clauses keep the
-- planner on it even without statistics, right after a bulk load). `up_to` lets a sender cut
-- every table of a pass at one point: a row is written after the rows it references, so its
-- point is larger, and a pass that sends parents first up to one point sends every parent its
-- children need.
CREATE FUNCTION _items_since(target regclass, after bigint, max_rows integer, up_to bigint,
                             to_node uuid)
RETURNS TABLE (point bigint, item jsonb, origin uuid)
LANGUAGE plpgsql VOLATILE SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    bound bigint;
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
    bound := least(idsync.stable_point(), up_to);
    RETURN QUERY EXECUTE idsync._plan(reg) ->> 'items'
    USING after, bound, max_rows, to_node, idsync.node_id();
END $$;

CREATE FUNCTION items_since(target regclass, point bigint, max_rows integer DEFAULT 1000,
                            up_to bigint DEFAULT NULL, to_node uuid DEFAULT NULL)
RETURNS TABLE (point bigint, item jsonb, origin uuid)
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM idsync._items_since($1, $2, $3, $4, $5)
$$;
COMMENT ON FUNCTION items_since(regclass, bigint, integer, bigint, uuid) IS
'the next changes after a point, in point order, up to the stable point (and up_to): (point, the row by column name without local columns, references as natural keys, the node that wrote it); a row to_node wrote comes as its point alone';
