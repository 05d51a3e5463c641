-- A registered table's replication plan: what items_since runs, built once from one reading of
-- the catalogs when the table is registered or altered (or a table it references is), kept in
-- idsync.tables.plan, and executed as it is: nothing generates SQL per batch. (Merges need no
-- SQL of their own: they run on the insert-missing engine, extension/merge_rows.hpp.)

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
