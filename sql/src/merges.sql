-- What a receiver runs: merge_items and merge_staged, whose work is done on the insert-missing
-- engine in C (extension/merge_rows.hpp: references resolved, waiting and refused rows parked,
-- the rest written by halves around refused rows), and the retries of parked rows.

-- Natural form: what arrives at a node

-- The columns of a staging table for `reg`: the replicated columns with the target's types,
-- translated references as jsonb (the natural key of the referenced row), and the node each
-- row comes from (idsync_origin).
CREATE FUNCTION _staging_definition(reg tables) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_agg(format('%I %s', a.attname,
                             CASE WHEN t.column_name IS NULL THEN format_type(a.atttypid, a.atttypmod)
                                  ELSE 'jsonb' END), ', ' ORDER BY a.attnum) || ', idsync_origin uuid'
    FROM pg_attribute a
    LEFT JOIN idsync._translated(reg.relid) t ON t.column_name = a.attname
    WHERE a.attrelid = reg.relid AND a.attname = ANY (idsync._replicated_columns(reg))
$$;

CREATE FUNCTION create_staging(target regclass, staging_name name DEFAULT 'idsync_bulk')
RETURNS regclass
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
BEGIN
    IF staging_name IS NULL THEN
        RAISE EXCEPTION 'staging_name must not be NULL' USING ERRCODE = '22004';
    END IF;
    EXECUTE format('CREATE TEMPORARY TABLE %I (%s) ON COMMIT DROP', staging_name,
                   idsync._staging_definition(reg));
    RETURN to_regclass(format('pg_temp.%I', staging_name));
END $$;
COMMENT ON FUNCTION create_staging(regclass, name) IS
'create a temporary staging table (dropped at commit) for merge_staged: the replicated columns, references as jsonb natural keys';

-- The check of a batch of items in one pass (extension/item_batch.cpp): 22023 naming the first
-- malformed item; else the largest point (NULL for none).
CREATE FUNCTION _check_items(items jsonb) RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_check_items' LANGUAGE C IMMUTABLE SET search_path = pg_catalog, pg_temp;

-- The merge of a batch of items on the insert-missing engine (extension/merge_items.cpp): how
-- many rows were inserted, updated, and parked (refused, or waiting for a referenced row).
CREATE FUNCTION _merge_batch(target regclass, items jsonb, source uuid,
                             OUT inserted integer, OUT updated integer, OUT rejected integer)
AS 'MODULE_PATHNAME', 'idsync_merge_batch' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- The same for the rows of a staging table (merge_staged; extension/merge_staged_rows.cpp).
CREATE FUNCTION _merge_staged_rows(target regclass, staging regclass, source uuid,
                                   OUT inserted integer, OUT updated integer, OUT rejected integer)
AS 'MODULE_PATHNAME', 'idsync_merge_staged_rows' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- Of the items (parked rows, each with its reject_id as its point), the points of those that
-- would no longer wait: what they reference is here (extension/merge_items.cpp).
CREATE FUNCTION _waiting_ready(target regclass, items jsonb) RETURNS bigint[]
AS 'MODULE_PATHNAME', 'idsync_waiting_ready' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- merge_items, and the retries of parked rows: with raise_point the source's incoming point
-- moves with the batch (a merge in the source's name); without it, source only labels the
-- rows parked again.
CREATE FUNCTION _merge_items(target regclass, items jsonb, source uuid, raise_point boolean)
RETURNS TABLE (received integer, inserted integer, updated integer, unchanged integer,
               rejected integer, sync_point bigint)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    reg idsync.tables := idsync._registration(target);
    last_point bigint;
BEGIN
    IF items IS NULL THEN
        RAISE EXCEPTION 'items must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF jsonb_typeof(items) <> 'array' THEN
        RAISE EXCEPTION 'items must be a JSON array' USING ERRCODE = '22023',
            HINT = 'Pass jsonb_agg(i) over the rows of idsync.items_since: [{"point": ..., "item": {...}, "origin": ...}, ...].';
    END IF;
    -- An item of null is a row the receiver wrote itself (items_since skips it for its origin):
    -- only its point counts. "origin" names the node that wrote the row (the source when absent).
    last_point := idsync._check_items(items);
    PERFORM idsync._begin_apply(target, CASE WHEN raise_point THEN source END, 'merge');
    received := jsonb_array_length(items);
    SELECT * INTO inserted, updated, rejected FROM idsync._merge_batch(target, items, source);
    unchanged := received - inserted - updated - rejected;

    -- Always, also when nothing changed: a receiver whose rows are all newer must still move
    -- the sender's point forward, or the sender stays diff-capped for ever.
    IF raise_point AND source IS NOT NULL AND last_point IS NOT NULL THEN
        PERFORM idsync._raise_sync(target, source, last_point, true);
    END IF;
    PERFORM idsync._end_apply(target);
    PERFORM idsync.retry_waiting(target);
    sync_point := CASE WHEN raise_point AND source IS NOT NULL THEN idsync.get_sync(target, source) END;
    RETURN NEXT;
END $$;

CREATE FUNCTION merge_items(target regclass, items jsonb, source uuid DEFAULT NULL)
RETURNS TABLE (received integer, inserted integer, updated integer, unchanged integer,
               rejected integer, sync_point bigint)
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM idsync._merge_items(target, items, source, true)
$$;
COMMENT ON FUNCTION merge_items(regclass, jsonb, uuid) IS
'merge changes from another node; with source, raise its incoming sync point in the same transaction';

CREATE FUNCTION merge_staged(target regclass, staging regclass, source uuid, point bigint)
RETURNS TABLE (received integer, inserted integer, updated integer, unchanged integer,
               rejected integer, sync_point bigint)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    reg idsync.tables := idsync._registration(target);
    missing text;
BEGIN
    IF staging IS NULL THEN
        RAISE EXCEPTION 'staging must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF source IS NOT NULL AND point IS NULL THEN
        RAISE EXCEPTION 'point must not be NULL when source is given' USING ERRCODE = '22004';
    END IF;
    SELECT string_agg(quote_ident(c), ', ') INTO missing FROM unnest(idsync._replicated_columns(reg)) c
    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = staging
                      AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'staging table % lacks column %', staging, missing
            USING ERRCODE = '42703';
    END IF;
    SELECT string_agg(quote_ident(t.column_name), ', ') INTO missing
    FROM idsync._translated(target) t
    JOIN pg_attribute a ON a.attrelid = staging AND a.attname = t.column_name
    WHERE a.atttypid <> 'jsonb'::regtype;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'column % of staging table % must be jsonb', missing, staging
            USING ERRCODE = '42804',
                  DETAIL = 'A reference to a local id travels as the natural key of the referenced row.',
                  HINT = 'Create the staging table with idsync.create_staging() and fill it from idsync.bulk_query() on the sender.';
    END IF;
    PERFORM idsync._begin_apply(target, source, 'merge');
    EXECUTE format('SELECT count(*) FROM %s', staging) INTO received;
    -- Each staged row comes with the node it was written on (idsync_origin, which bulk_query
    -- ships), else from the source.
    SELECT * INTO inserted, updated, rejected FROM idsync._merge_staged_rows(target, staging, source);
    unchanged := received - inserted - updated - rejected;
    IF source IS NOT NULL THEN
        PERFORM idsync._raise_sync(target, source, point, true);
    END IF;
    PERFORM idsync._end_apply(target);
    PERFORM idsync.retry_waiting(target);
    sync_point := CASE WHEN source IS NULL THEN NULL ELSE idsync.get_sync(target, source) END;
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION merge_staged(regclass, regclass, uuid, bigint) IS
'merge a staging table filled by COPY (bulk catch-up); with source, raise its incoming sync point to point';

-- Merges the parked rows of `target` picked by `reject_ids` (all of them, for an
-- administrator's retry_rejects, when NULL; else waiting rows) once more, taken through
-- _take_rejects; rows refused again are parked again with their source. Returns how many were
-- retried, merged (inserted + updated + unchanged) and inserted.
CREATE FUNCTION _retry(target regclass, reject_ids bigint[],
                                  OUT retried integer, OUT merged integer, OUT inserted integer)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    batch record;
    result record;
BEGIN
    retried := 0;
    merged := 0;
    inserted := 0;
    FOR batch IN
        SELECT t.source, jsonb_agg(jsonb_build_object('point', coalesce(t.point, 0), 'item', t.item)
                                   ORDER BY t.reject_id) AS items
        FROM idsync._take_rejects(target, reject_ids, reject_ids IS NOT NULL) t GROUP BY t.source
    LOOP
        -- Merged without raising a point: the sync point already moved past these rows.
        SELECT * INTO result FROM idsync._merge_items(target, batch.items, batch.source, false);
        retried := retried + result.received;
        merged := merged + result.received - result.rejected;
        inserted := inserted + result.inserted;
    END LOOP;
END $$;

CREATE FUNCTION retry_rejects(target regclass)
RETURNS TABLE (retried integer, merged integer, still_rejected integer)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    reg idsync.tables := idsync._registration(target);
    result record;
BEGIN
    SELECT * INTO result FROM idsync._retry(target, NULL);
    retried := result.retried;
    merged := result.merged;
    still_rejected := result.retried - result.merged;
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION retry_rejects(regclass) IS
'merge the parked rows of a table again (after fixing what refused them); rows still refused stay parked';

-- The round retry_waiting starts: the tables to look at are a queue; a table that gained rows
-- wakes the tables that reference it in turn.
CREATE FUNCTION _retry_round(target regclass) RETURNS integer
LANGUAGE plpgsql VOLATILE SET idsync.retrying = on SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    queue regclass[] := ARRAY[target];
    current_table regclass;
    child regclass;
    ready bigint[];
    result record;
    total integer := 0;
BEGIN
    WHILE cardinality(queue) > 0 LOOP
        current_table := queue[1];
        queue := queue[2:];
        FOR child IN
            SELECT DISTINCT t.relid FROM idsync.tables t
            WHERE (t.relid = current_table OR EXISTS (
                       SELECT 1 FROM pg_constraint c WHERE c.conrelid = t.relid
                       AND c.confrelid = current_table AND c.contype = 'f'))
              AND EXISTS (SELECT 1 FROM idsync.rejects r WHERE r.relid = t.relid AND r.sqlstate = '23503')
        LOOP
            SELECT idsync._waiting_ready(child, jsonb_agg(jsonb_build_object('point', r.reject_id, 'item', r.item)))
            INTO ready FROM idsync.rejects r WHERE r.relid = child AND r.sqlstate = '23503';
            CONTINUE WHEN cardinality(ready) = 0;
            SELECT * INTO result FROM idsync._retry(child, ready);
            total := total + result.merged;
            IF result.inserted > 0 AND child <> ALL (queue) THEN
                queue := queue || child;
            END IF;
        END LOOP;
    END LOOP;
    RETURN total;
END $$;

-- After rows were merged into `target`: the rows parked as waiting (SQLSTATE 23503) in target
-- and in the registered tables that reference it, whose references now resolve, are merged;
-- a table that gained rows that way wakes its own dependents in turn. Only rows that resolve
-- are taken, so rows still waiting cost one join per merge and are not rewritten.
CREATE FUNCTION retry_waiting(target regclass) RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- A retry merges through merge_items, which calls back here: the round in progress goes on.
    IF current_setting('idsync.retrying', true) = 'on' THEN
        RETURN 0;
    END IF;
    RETURN idsync._retry_round(target);
END $$;
COMMENT ON FUNCTION retry_waiting(regclass) IS
'merge the rows of a table, and of the registered tables that reference it, that wait for a referenced row which is now here; returns how many';
