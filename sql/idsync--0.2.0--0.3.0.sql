-- idsync 0.2.0 -> 0.3.0: what the replication daemon (idsyncd) reads from the local catalog.
\echo Use "ALTER EXTENSION idsync UPDATE TO '0.3.0'" to load this file. \quit

-- The registered tables in the order a sender walks them: each table after every registered
-- table it references by foreign key (self-references aside), then by name. idsyncd reads this
-- at the start of every pass, so registering a table needs no restart.
CREATE FUNCTION replicated_tables()
RETURNS TABLE (target regclass, table_name text, mode text, columns name[], depth integer)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE edges AS (
        SELECT DISTINCT c.conrelid AS child, c.confrelid AS parent
        FROM pg_constraint c
        JOIN idsync.tables a ON a.relid = c.conrelid
        JOIN idsync.tables b ON b.relid = c.confrelid
        WHERE c.contype = 'f' AND c.conrelid <> c.confrelid
    ), depths (relid, depth, path) AS (
        SELECT t.relid::oid, 0, ARRAY[t.relid::oid] FROM idsync.tables t
        UNION ALL
        SELECT e.child, d.depth + 1, d.path || e.child
        FROM depths d JOIN edges e ON e.parent = d.relid
        WHERE e.child <> ALL (d.path)
    )
    SELECT t.relid, format('%I.%I', n.nspname, c.relname), t.mode,
           idsync._replicated_columns(t), deepest.depth
    FROM idsync.tables t
    JOIN (SELECT relid, max(depth) AS depth FROM depths GROUP BY relid) deepest
      ON deepest.relid = t.relid
    JOIN pg_class c ON c.oid = t.relid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    ORDER BY deepest.depth, 2
$$;
COMMENT ON FUNCTION replicated_tables() IS
'the registered tables, parents before children: (target, schema-qualified name, mode, replicated columns, depth)';
