-- A registered table's replication plan: what items_since runs, built once from one reading of
-- the catalogs when the table is registered or altered (or a table it references is), kept in
-- idsync.tables.plan, and executed as it is: nothing generates SQL per batch. (Merges need no
-- SQL of their own: they run on the insert-missing engine, extension/merge_rows.hpp.)

-- Builds and keeps the plan of `target`. SECURITY DEFINER: it writes idsync.tables, and what
-- it writes is fixed by the catalogs alone.
CREATE FUNCTION _build_plan(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    items text;
BEGIN
    -- (point, item, origin): $4 the receiver, $5 this node. A row the receiver wrote itself
    -- goes as its point alone (item NULL): it moves the receiver's sync point, nothing else.
    IF NOT EXISTS (SELECT 1 FROM idsync._translated(target)) THEN
        items := format('SELECT r.%1$I, CASE WHEN coalesce(r.idsync_origin, $5) = $4 THEN NULL '
                        'ELSE to_jsonb(r) - %3$L::text[] END, coalesce(r.idsync_origin, $5) FROM %2$s r '
                        'WHERE r.%1$I > $1 AND r.%1$I <= $2 ORDER BY r.%1$I LIMIT $3',
                        reg.point_column, target, reg.local_columns::text[]);
    ELSE
        items := format('SELECT n.%1$I, CASE WHEN coalesce(n.idsync_origin, $5) = $4 THEN NULL '
                        'ELSE to_jsonb(n) - %1$L - ''idsync_origin'' END, coalesce(n.idsync_origin, $5) '
                        'FROM (%2$s) n ORDER BY n.%1$I',
                        reg.point_column, idsync._natural_select(reg, format(
                            '(SELECT * FROM %2$s r WHERE r.%1$I > $1 AND r.%1$I <= $2 ORDER BY r.%1$I LIMIT $3)',
                            reg.point_column, target), 'json',
                            format('c.%I, c.idsync_origin', reg.point_column)));
    END IF;
    UPDATE idsync.tables t SET plan = jsonb_build_object(
        -- the changes after $1 up to $2, at most $3, as items_since returns them
        'items', items)
    WHERE t.relid = target;
END $$;

-- The plan of a registration, or 55000 when it could not be built (a table registered before
-- 0.5.0 whose foreign key points at a table that is not registered). Read from idsync.tables by
-- the row's relid, never taken from the row: the helpers that run a plan take a registration
-- row as an argument, and the SQL they run must come from the catalog, not from a row their
-- caller made up.
CREATE FUNCTION _plan(reg tables) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    plan jsonb;
BEGIN
    SELECT t.plan INTO plan FROM idsync.tables t WHERE t.relid = reg.relid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not registered for replication', reg.relid USING ERRCODE = '55000';
    END IF;
    IF plan = '{}' THEN
        PERFORM idsync._references(reg.relid); -- names what kept the plan from being built
        RAISE EXCEPTION 'table % has no replication plan', reg.relid
            USING ERRCODE = '55000',
                  HINT = 'Register every table it references, then ALTER it (or register it again) to build the plan.';
    END IF;
    RETURN plan;
END $$;
