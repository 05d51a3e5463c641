-- Housekeeping: purging old tombstones and sync rows.

CREATE FUNCTION reclaim(target regclass, older_than interval)
RETURNS TABLE (tombstones bigint, sync_rows bigint)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    reg idsync.tables := idsync._registration(target);
    referenced text;
BEGIN
    IF older_than IS NULL THEN
        RAISE EXCEPTION 'older_than must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must not be negative' USING ERRCODE = '22023';
    END IF;
    tombstones := 0;
    IF reg.mode = 'lww' THEN
        PERFORM idsync._begin_apply(target, NULL, 'reclaim');
        -- A tombstone that a row references keeps its key on every node, so the reference
        -- resolves wherever it travels.
        SELECT string_agg(format(' AND NOT EXISTS (SELECT FROM %s r WHERE %s)', c.conrelid::regclass,
                                 (SELECT string_agg(format('r.%I = t.%I', ca.attname, pa.attname), ' AND ')
                                  FROM unnest(c.conkey, c.confkey) k(child_attnum, parent_attnum)
                                  JOIN pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.child_attnum
                                  JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.parent_attnum)), '')
        INTO referenced
        FROM pg_constraint c WHERE c.confrelid = target AND c.contype = 'f';
        EXECUTE format('DELETE FROM %s t WHERE t.%I AND idsync.hlc_time(t.%I) < now() - $1%s',
                       target, reg.tombstone_column, reg.version_column, coalesce(referenced, ''))
        USING older_than;
        GET DIAGNOSTICS tombstones = ROW_COUNT;
        PERFORM idsync._end_apply(target);
    END IF;
    sync_rows := idsync._purge_syncs(target, older_than);
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION reclaim(regclass, interval) IS
'purge tombstones and sync rows older than older_than (Swift''s reclaim_age); must exceed the longest replication delay';
