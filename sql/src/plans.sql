-- A registered table's replication plan: the SQL its merges, items_since and stage run, built
-- once from one reading of the catalogs when the table is registered or altered (or a table it
-- references is), kept in idsync.tables.plan, and executed as it is: nothing generates SQL per
-- batch.

-- Builds and keeps the plan of `target`. SECURITY DEFINER: it writes idsync.tables, and what
-- it writes is fixed by the catalogs alone.
CREATE FUNCTION _build_plan(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    cols name[] := idsync._replicated_columns(reg);
    has_references boolean := EXISTS (SELECT 1 FROM idsync._references(target));
    -- The stage of a merge (see _stage): a temporary table of the merging session.
    stage text := format('pg_temp.%I', 'idsync_stage_' || target::oid);
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
        -- the replicated columns, in column order
        'columns', to_jsonb(cols),
        'has_references', has_references,
        -- the changes after $1 up to $2, at most $3, as items_since returns them
        'items', items,
        -- the columns of the stage
        'staging_definition', 'idsync_ord bigint, idsync_point bigint, ' || idsync._staging_definition(reg),
        -- a batch of items ($1; $2 the columns; $3 added to ord; $4 the source) into the stage
        'fill', format('INSERT INTO %1$s (idsync_ord, idsync_point, %2$s, idsync_origin) '
                       'SELECT x.ord + $3, (x.e ->> ''point'')::bigint, %3$s, '
                       'coalesce((x.e ->> ''origin'')::uuid, $4) '
                       'FROM jsonb_array_elements($1) WITH ORDINALITY x(e, ord), '
                       'jsonb_populate_record(NULL::%1$s, x.e -> ''item'') r '
                       'WHERE jsonb_typeof(x.e -> ''item'') = ''object'' '
                       'AND NOT EXISTS (SELECT FROM jsonb_object_keys(x.e -> ''item'') k WHERE k <> ALL ($2))',
                       stage, (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) c),
                       (SELECT string_agg('r.' || quote_ident(c), ', ') FROM unnest(cols) c)),
        -- the staged rows with their references resolved (and which ones wait), and the
        -- columns that hold the resolved ids
        'resolved', CASE WHEN has_references THEN idsync._resolved_sql(reg, stage) END,
        'reference_ids', to_jsonb(ARRAY(SELECT 'idsync_ref_' || t.column_name FROM idsync._translated(target) t)),
        -- the merge of the staged rows $1..$2 (by idsync_ord): (inserted, updated)
        'merge', idsync._merge_statement(reg, format('(SELECT * FROM (%s) r WHERE r.idsync_ord BETWEEN $1 AND $2) s',
                                                     idsync._merge_source(reg, stage, 'idsync_ord'))))
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
