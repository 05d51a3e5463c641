-- Housekeeping: purging old tombstones and sync rows.

CREATE FUNCTION _purge_tombstones(target regclass, older_than interval) RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_purge_tombstones' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION reclaim(target regclass, older_than interval)
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

-- Conflict records of an lww table (extension/conflicts.cpp): record_conflicts(t, keep) keeps
-- the newest `keep` losing versions of t's merges in idsync.conflicts; keep NULL stops recording
-- (and forgets the records). Administrators who own the table.
CREATE FUNCTION record_conflicts(target regclass, keep integer DEFAULT 10000) RETURNS void
AS 'MODULE_PATHNAME', 'idsync_record_conflicts' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION record_conflicts(regclass, integer) IS
'keep the newest `keep` versions of an lww table''s rows that lost a conflict in a merge, in idsync.conflicts (NULL: stop)';
