-- What a receiver runs: the staging table of a bulk copy, merge_items and merge_staged, and the
-- retries of parked rows.

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

-- The merges, on the insert-missing engine (extension/merge_calls.cpp, merge_rows.hpp): rows
-- that do not convert, name a column this node lacks or are refused by the table are parked
-- with their error; rows whose referenced rows have not arrived are parked as waiting (23503)
-- and merged by retry_waiting when those arrive. Every merge ends with retry_waiting.
CREATE FUNCTION merge_items(target regclass, items jsonb, source uuid DEFAULT NULL)
RETURNS TABLE (received integer, inserted integer, updated integer, unchanged integer,
               rejected integer, sync_point bigint)
AS 'MODULE_PATHNAME', 'idsync_merge_items' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION merge_items(regclass, jsonb, uuid) IS
'merge changes from another node; with source, raise its incoming sync point in the same transaction';

CREATE FUNCTION merge_staged(target regclass, staging regclass, source uuid, point bigint)
RETURNS TABLE (received integer, inserted integer, updated integer, unchanged integer,
               rejected integer, sync_point bigint)
AS 'MODULE_PATHNAME', 'idsync_merge_staged' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION merge_staged(regclass, regclass, uuid, bigint) IS
'merge a staging table filled by COPY (bulk catch-up); with source, raise its incoming sync point to point';

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

-- The merges themselves, without the checks, the apply flag and the sync point (for tests).
CREATE FUNCTION _merge_batch(target regclass, items jsonb, source uuid,
                             OUT inserted integer, OUT updated integer, OUT rejected integer)
AS 'MODULE_PATHNAME', 'idsync_merge_batch' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION _merge_staged_rows(target regclass, staging regclass, source uuid,
                                   OUT inserted integer, OUT updated integer, OUT rejected integer)
AS 'MODULE_PATHNAME', 'idsync_merge_staged_rows' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- The retries of parked rows (extension/retries.cpp), merged again through merge_items.
CREATE FUNCTION retry_rejects(target regclass)
RETURNS TABLE (retried integer, merged integer, still_rejected integer)
AS 'MODULE_PATHNAME', 'idsync_retry_rejects' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION retry_rejects(regclass) IS
'merge the parked rows of a table again (after fixing what refused them); rows still refused stay parked';

CREATE FUNCTION retry_waiting(target regclass) RETURNS integer
AS 'MODULE_PATHNAME', 'idsync_retry_waiting' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION retry_waiting(regclass) IS
'merge the rows of a table, and of the registered tables that reference it, that wait for a referenced row which is now here; returns how many';

CREATE FUNCTION discard_rejects(target regclass, reject_ids bigint[] DEFAULT NULL) RETURNS integer
AS 'MODULE_PATHNAME', 'idsync_discard_rejects' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION discard_rejects(regclass, bigint[]) IS
'drop parked rows of target for good (all, or those of reject_ids), keeping a record of each in idsync.discarded_rejects; returns how many';
