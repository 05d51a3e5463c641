-- What a receiver runs: staging, resolving references, parking waiting and refused rows, the
-- merge statement and its retries by halves, merge_items and merge_staged, and the retries of
-- parked rows.

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

-- A temporary table for the rows of one merge into `reg`: idsync_ord, idsync_point and the
-- staging columns (the replicated columns with the target's types, references as jsonb). Kept
-- for the session and emptied per merge; made again when the target's columns changed.
CREATE FUNCTION _stage(reg tables) RETURNS regclass
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    stage_name text := 'idsync_stage_' || reg.relid::oid;
    stage regclass := to_regclass('pg_temp.' || stage_name);
    definition text := idsync._plan(reg) ->> 'staging_definition';
BEGIN
    IF stage IS NOT NULL AND obj_description(stage, 'pg_class') = definition THEN
        EXECUTE format('TRUNCATE %s', stage);
        RETURN stage;
    END IF;
    IF stage IS NOT NULL THEN
        EXECUTE format('DROP TABLE %s', stage);
    END IF;
    EXECUTE format('CREATE TEMPORARY TABLE %I (%s)', stage_name, definition);
    stage := to_regclass('pg_temp.' || stage_name);
    EXECUTE format('COMMENT ON TABLE %s IS %L', stage, definition);
    RETURN stage;
END $$;

-- The local id of the `parent` row whose natural key is the jsonb expression `natural`, as an
-- SQL expression over the joins it appends (the row joined as `alias`; NULL when this node does
-- not have it). The key object is turned into the parent's column types by
-- jsonb_populate_record; nested references resolve first.
CREATE FUNCTION _resolve_key(parent regclass, parent_column name, key_json text, alias text,
                             INOUT joins text, depth integer DEFAULT 1, OUT expr text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(parent);
    nested record;
    matches text[] := '{}';
    nested_columns text[] := '{}';
    key_column name;
    not_null boolean;
    inner_natural text;
    inner_id text;
    i integer := 0;
BEGIN
    IF depth > idsync._max_nesting() THEN
        RAISE EXCEPTION 'natural keys nest deeper than % levels at table %', idsync._max_nesting(), parent
            USING ERRCODE = '54001';
    END IF;
    FOREACH key_column IN ARRAY reg.key_columns LOOP
        i := i + 1;
        SELECT a.attnotnull INTO not_null FROM pg_attribute a
        WHERE a.attrelid = parent AND a.attname = key_column;
        SELECT * INTO nested FROM idsync._translated(parent) t WHERE t.column_name = key_column;
        IF FOUND THEN
            nested_columns := nested_columns || key_column::text;
            inner_natural := format('nullif(%s -> %L, ''null''::jsonb)', key_json, key_column);
            SELECT * INTO joins, inner_id FROM idsync._resolve_key(
                nested.parent, nested.parent_column, inner_natural, alias || '_' || i, joins, depth + 1);
            matches := matches || CASE WHEN not_null
                THEN format('%I.%I = %s', alias, key_column, inner_id)
                ELSE format('(%1$I.%2$I = %3$s OR (%4$s IS NULL AND %1$I.%2$I IS NULL))',
                            alias, key_column, inner_id, inner_natural) END;
        ELSE
            matches := matches || format(CASE WHEN not_null THEN '%1$I.%2$I = %3$I.%2$I'
                                              ELSE '%1$I.%2$I IS NOT DISTINCT FROM %3$I.%2$I' END,
                                         alias, key_column, alias || '_k');
        END IF;
    END LOOP;
    joins := joins || format(' LEFT JOIN LATERAL jsonb_populate_record(NULL::%s, %s - %L::text[]) %I ON true',
                             parent, key_json, nested_columns, alias || '_k')
                   || format(' LEFT JOIN %s %I ON %s', parent, alias, array_to_string(matches, ' AND '));
    expr := format('%I.%I', alias, parent_column);
END $$;

-- The rows of a staging table `source` (alias s, every column kept) with each reference
-- resolved: idsync_ref_<column> holds the local id of a translated reference, idsync_missing
-- names the first reference this node cannot satisfy yet (NULL when all are).
CREATE FUNCTION _resolved_sql(reg tables, source text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    joins text := '';
    extra text[] := '{}';
    missing text[] := '{}';
    ref record;
    id_expr text;
    i integer := 0;
BEGIN
    FOR ref IN SELECT * FROM idsync._references(reg.relid) LOOP
        i := i + 1;
        IF ref.translated THEN
            SELECT * INTO joins, id_expr FROM idsync._resolve_key(
                ref.parent, ref.parent_columns[1], format('s.%I', ref.columns[1]), 'r' || i, joins);
            extra := extra || format('%s AS %I', id_expr, 'idsync_ref_' || ref.columns[1]);
            missing := missing || format('CASE WHEN s.%1$I IS NOT NULL AND %2$s IS NULL THEN %3$L || s.%1$I::text END',
                                         ref.columns[1], id_expr, ref.parent || ' ');
        ELSE
            -- MATCH SIMPLE: a NULL in any column satisfies the key.
            missing := missing || format(
                'CASE WHEN NOT (%1$s OR EXISTS (SELECT FROM %2$s p WHERE %3$s)) THEN %4$L || row(%5$s)::text END',
                (SELECT string_agg(format('s.%I IS NULL', c), ' OR ') FROM unnest(ref.columns) c),
                ref.parent,
                (SELECT string_agg(format('p.%I = s.%I', p, c), ' AND ')
                 FROM unnest(ref.columns, ref.parent_columns) x(c, p)),
                format('%s (%s)=', ref.parent, array_to_string(ref.parent_columns, ', ')),
                (SELECT string_agg(format('s.%I', c), ', ') FROM unnest(ref.columns) c));
        END IF;
    END LOOP;
    RETURN format('SELECT s.*%s, %s AS idsync_missing FROM %s s%s',
                  (SELECT string_agg(', ' || e, '') FROM unnest(extra) e),
                  CASE WHEN cardinality(missing) = 0 THEN 'NULL::text'
                       ELSE format('coalesce(%s)', array_to_string(missing, ', ')) END,
                  source, joins);
END $$;

-- What the merge statement reads from a staging table: the replicated columns, translated
-- references replaced by the ids they resolve to, only rows whose references all resolve, and
-- `extra` columns of the staging table (idsync_ord).
CREATE FUNCTION _merge_source(reg tables, source text, extra text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    translated name[] := ARRAY(SELECT t.column_name FROM idsync._translated(reg.relid) t);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM idsync._references(reg.relid)) THEN
        RETURN format('SELECT * FROM %s', source);
    END IF;
    RETURN format('SELECT %s%s FROM (%s) v WHERE v.idsync_missing IS NULL',
                  (SELECT string_agg(CASE WHEN c = ANY (translated)
                                          THEN format('v.%I AS %I', 'idsync_ref_' || c, c)
                                          ELSE format('v.%I', c) END, ', ')
                   FROM unnest(idsync._replicated_columns(reg)) c) || ', v.idsync_origin',
                  CASE WHEN extra IS NULL THEN '' ELSE ', v.' || extra END,
                  idsync._resolved_sql(reg, source));
END $$;

-- Parks one staged row in idsync.rejects with the error that refused it.
CREATE FUNCTION _park(reg tables, stage regclass, ord bigint, source uuid, state text,
                                 message text, detail text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    parked jsonb;
BEGIN
    EXECUTE format('SELECT jsonb_agg(jsonb_build_object(''point'', s.idsync_point, '
                   '''item'', to_jsonb(s) - ''idsync_ord'' - ''idsync_point'' - ''idsync_origin'', '
                   '''sqlstate'', $1, ''message'', $2, ''detail'', $3)) '
                   'FROM %s s WHERE s.idsync_ord = $4', stage)
    INTO parked USING state, message, detail, ord;
    PERFORM idsync._park_rows(reg.relid, source, coalesce(parked, '[]'));
END $$;

-- Parks the staged rows whose references do not resolve on this node yet (SQLSTATE 23503, the
-- item as it came, natural keys and all) and takes them out of the stage. Returns how many.
-- A natural key that does not convert to the parent's types parks its row with that error.
CREATE FUNCTION _park_waiting(reg tables, stage regclass, source uuid) RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    park text;
    refs text[];
    waiting bigint[];
    one bigint[];
    entry record;
    state text;
    message text;
BEGIN
    IF NOT (idsync._plan(reg) ->> 'has_references')::boolean THEN
        RETURN 0;
    END IF;
    -- Detection and parking in one statement: a parent merged meanwhile by another session
    -- cannot slip in between.
    park := format(
        'WITH w AS (SELECT * FROM (%s) v WHERE v.idsync_missing IS NOT NULL AND ($3 IS NULL OR v.idsync_ord = $3)), '
        'parked AS (SELECT idsync._park_rows($1, $2, coalesce(jsonb_agg(jsonb_build_object('
        '    ''point'', w.idsync_point, '
        '    ''item'', to_jsonb(w) - ''idsync_ord'' - ''idsync_point'' - ''idsync_missing'' - ''idsync_origin'' - $4::text[], '
        '    ''sqlstate'', ''23503'', ''message'', ''waiting for '' || w.idsync_missing, '
        '    ''detail'', ''The referenced row has not reached this node yet; the row is merged when it arrives.'')), '
        '    ''[]'')) AS n FROM w) '
        'SELECT coalesce(array_agg(w.idsync_ord), ''{}'') FROM w, parked',
        idsync._plan(reg) ->> 'resolved');
    refs := ARRAY(SELECT jsonb_array_elements_text(idsync._plan(reg) -> 'reference_ids'));
    BEGIN
        EXECUTE park INTO waiting USING reg.relid, source, NULL::bigint, refs;
    EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
        -- One row at a time, to park the rows whose keys do not convert with their error.
        waiting := '{}';
        FOR entry IN EXECUTE format('SELECT idsync_ord FROM %s ORDER BY idsync_ord', stage) LOOP
            BEGIN
                EXECUTE park INTO one USING reg.relid, source, entry.idsync_ord, refs;
                waiting := waiting || one;
            EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
                GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
                PERFORM idsync._park(reg, stage, entry.idsync_ord, source, state,
                                     'a natural key does not convert: ' || message, NULL);
                waiting := waiting || entry.idsync_ord;
            END;
        END LOOP;
    END;
    EXECUTE format('DELETE FROM %s WHERE idsync_ord = ANY ($1)', stage) USING waiting;
    RETURN cardinality(waiting);
END $$;

-- The statement that merges staged rows: insert what is missing, and in lww tables overwrite a
-- row whose (version, row hash) is smaller. `rows` is a FROM item aliased s that has the
-- replicated columns. The result is (inserted, updated). Rows are inserted in the key index's
-- order, so that concurrent merges of overlapping rows cannot deadlock.
--
-- Rows that would change nothing are filtered out before the INSERT (key columns that may hold
-- NULL, in a NULLS NOT DISTINCT key, compared with IS NOT DISTINCT FROM): PostgreSQL checks
-- CHECK constraints before it looks for a conflict, so an incoming copy that this node's
-- constraints refuse would otherwise be rejected although this node already holds the row (or a
-- newer version). ON CONFLICT still settles races with concurrent writers.
CREATE FUNCTION _merge_statement(reg tables, rows text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cols name[] := idsync._replicated_columns(reg);
    col_list text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) c);
    key_list text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(reg.key_columns) c);
    key_order text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(idsync._key_order(reg)) c);
    key_match text := (SELECT string_agg(format(CASE WHEN a.attnotnull THEN 'old.%1$I = s.%1$I'
                                                     ELSE 'old.%1$I IS NOT DISTINCT FROM s.%1$I' END, a.attname), ' AND ')
                       FROM pg_attribute a WHERE a.attrelid = reg.relid AND a.attname = ANY (reg.key_columns));
    -- The rows with exactly the target's column types, so that row hashes agree.
    typed text := (SELECT string_agg(format('s.%I::%s AS %I', a.attname,
                                            format_type(a.atttypid, a.atttypmod), a.attname), ', ')
                   FROM pg_attribute a WHERE a.attrelid = reg.relid AND a.attname = ANY (cols))
                  || ', s.idsync_origin';
    set_list text;
BEGIN
    -- Every merged row version keeps the node it was written on (`rows` has idsync_origin).
    col_list := col_list || ', idsync_origin';
    IF reg.mode = 'insert_only' THEN
        RETURN format('WITH m AS (INSERT INTO %1$s (%2$s) SELECT %2$s FROM %3$s '
                      '           WHERE NOT EXISTS (SELECT FROM %1$s old WHERE %5$s) ORDER BY %6$s '
                      '           ON CONFLICT (%4$s) DO NOTHING RETURNING 1) '
                      'SELECT count(*)::int, 0 FROM m',
                      reg.relid, col_list, rows, key_list, key_match, key_order);
    END IF;
    SELECT string_agg(format('%I = excluded.%I', c, c), ', ') || ', idsync_origin = excluded.idsync_origin'
    INTO set_list
    FROM unnest(cols) c WHERE c <> ALL (reg.key_columns);
    -- One row per key, the newest, as ON CONFLICT DO UPDATE may touch a row only once; ties
    -- of versions go to the larger row hash, here and against the stored row alike.
    RETURN format(
        'WITH typed AS (SELECT %6$s FROM %4$s), '
        'src AS (SELECT DISTINCT ON (%2$s) * FROM typed t '
        '        ORDER BY %2$s, t.%5$I DESC, %8$s DESC), '
        'm AS (INSERT INTO %1$s AS cur (%3$s) SELECT %3$s FROM src s '
        '      WHERE NOT EXISTS (SELECT FROM %1$s old WHERE %9$s AND '
        '          (old.%5$I, %11$s) >= (s.%5$I, %12$s)) '
        '      ORDER BY %10$s '
        '      ON CONFLICT (%2$s) DO UPDATE SET %7$s '
        '      WHERE (cur.%5$I, %13$s) < (excluded.%5$I, %14$s) '
        '      RETURNING cur.xmax = ''0''::xid AS inserted) '
        'SELECT (count(*) FILTER (WHERE inserted))::int, (count(*) FILTER (WHERE NOT inserted))::int FROM m',
        reg.relid, key_list, col_list, rows, reg.version_column, typed,
        set_list, idsync._row_hash_expr(reg, 't'), key_match, key_order,
        idsync._row_hash_expr(reg, 'old'), idsync._row_hash_expr(reg, 's'),
        idsync._row_hash_expr(reg, 'cur'), idsync._row_hash_expr(reg, 'excluded'));
END $$;

-- Merges the staged rows lo..hi (by idsync_ord) with the table's merge plan (references
-- resolve in the same statement, see _build_plan). A row the
-- target refuses for its data (class 22, 23, 27000, or an exception raised by a trigger) is
-- parked in idsync.rejects: the range is halved until the refused rows stand alone, so k bad
-- rows cost about 2k log n attempts and the good rows all merge. Other errors (serialization,
-- deadlock, cancel) abort the merge.
CREATE FUNCTION _merge_range(reg tables, stage regclass, lo bigint, hi bigint, source uuid,
                             INOUT inserted integer, INOUT updated integer, INOUT rejected integer)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    got_inserted integer;
    got_updated integer;
    mid bigint;
    state text;
    message text;
    detail text;
BEGIN
    IF lo > hi THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE idsync._plan(reg) ->> 'merge' INTO got_inserted, got_updated USING lo, hi;
        inserted := inserted + got_inserted;
        updated := updated + got_updated;
        RETURN;
    EXCEPTION WHEN data_exception OR integrity_constraint_violation
                   OR triggered_data_change_violation OR raise_exception THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                detail = PG_EXCEPTION_DETAIL;
    END;
    IF lo = hi THEN
        -- A row that left the stage (parked as waiting) is not there to park again.
        EXECUTE format('SELECT count(*) FROM %s WHERE idsync_ord = $1', stage) INTO mid USING lo;
        IF mid > 0 THEN
            PERFORM idsync._park(reg, stage, lo, source, state, message, nullif(detail, ''));
            rejected := rejected + 1;
        END IF;
        RETURN;
    END IF;
    mid := lo + (hi - lo) / 2;
    SELECT * INTO inserted, updated, rejected
    FROM idsync._merge_range(reg, stage, lo, mid, source, inserted, updated, rejected);
    SELECT * INTO inserted, updated, rejected
    FROM idsync._merge_range(reg, stage, mid + 1, hi, source, inserted, updated, rejected);
END $$;

-- Merges the numbered stage of `reg`: rows waiting for a referenced row are parked first, the
-- rest merge (by halves around refused rows).
-- Merges the numbered stage of `reg`: rows waiting for a referenced row are parked first, the
-- rest merge (by halves around refused rows).
CREATE FUNCTION _merge_stage(reg tables, stage regclass, received integer, source uuid,
                             OUT inserted integer, OUT updated integer, OUT rejected integer)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    rejected := idsync._park_waiting(reg, stage, source);
    SELECT * INTO inserted, updated, rejected
    FROM idsync._merge_range(reg, stage, 1, received, source, 0, 0, rejected);
END $$;

-- The check of a batch of items in one pass (extension/item_batch.cpp): 22023 naming the first
-- malformed item; else the largest point (NULL for none) and whether an item has a key outside
-- `columns`.
CREATE FUNCTION _check_items(items jsonb, columns text[], OUT last_point bigint,
                             OUT unknown_columns boolean)
AS 'MODULE_PATHNAME', 'idsync_check_items' LANGUAGE C IMMUTABLE SET search_path = pg_catalog, pg_temp;

-- The merge of a batch of items on the insert-missing engine (extension/merge_items.cpp): how
-- many rows were inserted and updated, or NULLs for what it does not take (row-level security,
-- array or composite columns, a row waiting for a referenced row).
CREATE FUNCTION _merge_batch(target regclass, items jsonb, source uuid,
                             OUT inserted integer, OUT updated integer)
AS 'MODULE_PATHNAME', 'idsync_merge_batch' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- merge_staged into an insert_only table on the insert-missing engine (extension/
-- merge_staged_rows.cpp): how many rows were inserted, or NULL for a table or staging table it
-- does not take.
CREATE FUNCTION _merge_staged_rows(target regclass, staging regclass, source uuid) RETURNS integer
AS 'MODULE_PATHNAME', 'idsync_merge_staged_rows' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

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
    plan jsonb := idsync._plan(reg);
    cols text[] := ARRAY(SELECT jsonb_array_elements_text(plan -> 'columns'));
    last_point bigint;
    unknown_columns boolean;
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
    SELECT c.last_point, c.unknown_columns INTO last_point, unknown_columns
    FROM idsync._check_items(items, cols) c;
    PERFORM idsync._begin_apply(target, CASE WHEN raise_point THEN source END, 'merge');
    received := jsonb_array_length(items);

    -- The common case straight from the batch, on the insert-missing engine: no column this node
    -- lacks, no row waiting for a referenced row, and none refused (if one is, the merge is
    -- undone and the rows take the staged way below).
    IF NOT unknown_columns THEN
        BEGIN
            SELECT m.inserted, m.updated INTO inserted, updated
            FROM idsync._merge_batch(target, items, source) m;
            rejected := 0;
        EXCEPTION WHEN data_exception OR integrity_constraint_violation
                       OR triggered_data_change_violation OR raise_exception THEN
            inserted := NULL;
        END;
    END IF;
    IF inserted IS NULL THEN
        SELECT * INTO inserted, updated, rejected FROM idsync._merge_staged_items(reg, items, source);
    END IF;
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

-- The staged way of a batch: the rows go into the stage with the staging types (references as
-- jsonb): all at once, or, when a value does not convert, one by one (a one-item array, its
-- ord shifted by $3) so that only the refused rows are parked; rows with a column this node
-- does not have are parked; then waiting rows are parked and the rest merge by halves.
CREATE FUNCTION _merge_staged_items(reg tables, items jsonb, source uuid,
                                    OUT inserted integer, OUT updated integer, OUT rejected integer)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    plan jsonb := idsync._plan(reg);
    cols text[] := ARRAY(SELECT jsonb_array_elements_text(plan -> 'columns'));
    fill text := plan ->> 'fill';
    stage regclass := idsync._stage(reg);
    target regclass := reg.relid;
    entry record;
    state text;
    message text;
    parked integer := 0;
BEGIN
    BEGIN
        EXECUTE fill USING items, cols, 0::bigint, source;
    -- (integrity: a NOT NULL domain refuses a missing value as the stage is filled)
    EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
        FOR entry IN SELECT x.ord, x.e FROM jsonb_array_elements(items) WITH ORDINALITY x(e, ord)
                     WHERE jsonb_typeof(x.e -> 'item') = 'object' LOOP
            BEGIN
                EXECUTE fill USING jsonb_build_array(entry.e), cols, entry.ord - 1, source;
            EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
                GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
                parked := parked + idsync._park_rows(target, source, jsonb_build_array(jsonb_build_object(
                    'point', (entry.e ->> 'point')::bigint, 'item', entry.e -> 'item',
                    'sqlstate', state, 'message', message)));
            END;
        END LOOP;
    END;
    SELECT parked + coalesce(idsync._park_rows(target, source, jsonb_agg(jsonb_build_object(
               'point', (x.e ->> 'point')::bigint, 'item', x.e -> 'item', 'sqlstate', '42703',
               'message', format('column %s of table %s does not exist on this node', x.unknown, target)))), 0)
    INTO parked
    FROM (SELECT e, (SELECT string_agg(k, ', ') FROM jsonb_object_keys(e -> 'item') k
                     WHERE k <> ALL (cols)) AS unknown
          FROM jsonb_array_elements(items) e WHERE jsonb_typeof(e -> 'item') = 'object') x
    WHERE x.unknown IS NOT NULL;

    SELECT * INTO inserted, updated, rejected
    FROM idsync._merge_stage(reg, stage, jsonb_array_length(items), source);
    rejected := rejected + parked;
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
    cols name[] := idsync._replicated_columns(reg);
    missing text;
    stage regclass;
    rows text;
BEGIN
    IF staging IS NULL THEN
        RAISE EXCEPTION 'staging must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF source IS NOT NULL AND point IS NULL THEN
        RAISE EXCEPTION 'point must not be NULL when source is given' USING ERRCODE = '22004';
    END IF;
    SELECT string_agg(quote_ident(c), ', ') INTO missing FROM unnest(cols) c
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
    inserted := 0;
    updated := 0;
    rejected := 0;
    -- The staged rows with the node each comes from: its idsync_origin when the staging table
    -- has one (bulk_query ships it), else the source.
    rows := format('(SELECT %s, %s AS idsync_origin FROM %s s0)',
                   (SELECT string_agg('s0.' || quote_ident(c), ', ') FROM unnest(cols) c),
                   CASE WHEN EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = staging
                                     AND attname = 'idsync_origin' AND NOT attisdropped)
                        THEN format('coalesce(s0.idsync_origin, %L::uuid)', source)
                        ELSE format('%L::uuid', source) END,
                   staging);
    -- The fast path merges straight from the staging table (insert_only tables on the
    -- insert-missing engine, others in one statement); it is taken when no row waits for a
    -- referenced row and none is refused. Otherwise the rows are numbered into a stage, the
    -- waiting ones parked and the rest merged by halves.
    BEGIN
        inserted := idsync._merge_staged_rows(target, staging, source);
        IF inserted IS NOT NULL THEN
            NULL; -- merged on the engine
        ELSIF NOT EXISTS (SELECT 1 FROM idsync._references(target)) THEN
            EXECUTE idsync._merge_statement(reg, format('%s s', rows)) INTO inserted, updated;
        ELSE
            EXECUTE format('SELECT count(*) FROM (%s) v WHERE v.idsync_missing IS NOT NULL',
                           idsync._resolved_sql(reg, rows)) INTO rejected;
            IF rejected > 0 THEN
                RAISE EXCEPTION USING ERRCODE = '23503';
            END IF;
            EXECUTE idsync._merge_statement(reg, format('(%s) s', idsync._merge_source(reg, rows)))
            INTO inserted, updated;
        END IF;
    EXCEPTION WHEN data_exception OR integrity_constraint_violation
                   OR triggered_data_change_violation OR raise_exception THEN
        stage := idsync._stage(reg);
        EXECUTE format('INSERT INTO %1$s (idsync_ord, %2$s, idsync_origin) '
                       'SELECT row_number() OVER (), %2$s, idsync_origin FROM %3$s x',
                       stage, (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) c), rows);
        SELECT * INTO inserted, updated, rejected FROM idsync._merge_stage(reg, stage, received, source);
    END;
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
    child_reg idsync.tables;
    stage regclass;
    ready bigint[];
    result record;
    total integer := 0;
    rounds integer := 0;
BEGIN
    WHILE cardinality(queue) > 0 LOOP
        current_table := queue[1];
        queue := queue[2:];
        rounds := rounds + 1;
        FOR child IN
            SELECT DISTINCT t.relid FROM idsync.tables t
            WHERE (t.relid = current_table OR EXISTS (
                       SELECT 1 FROM pg_constraint c WHERE c.conrelid = t.relid
                       AND c.confrelid = current_table AND c.contype = 'f'))
              AND EXISTS (SELECT 1 FROM idsync.rejects r WHERE r.relid = t.relid AND r.sqlstate = '23503')
        LOOP
            child_reg := idsync._registration(child);
            stage := idsync._stage(child_reg);
            BEGIN
                EXECUTE format('INSERT INTO %1$s (idsync_ord, idsync_point, %2$s) '
                           'SELECT r.reject_id, r.point, %3$s FROM idsync.rejects r, '
                           'jsonb_populate_record(NULL::%1$s, r.item) x '
                           'WHERE r.relid = $1 AND r.sqlstate = ''23503''',
                           stage,
                           (SELECT string_agg(quote_ident(c), ', ') FROM unnest(idsync._replicated_columns(child_reg)) c),
                           (SELECT string_agg('x.' || quote_ident(c), ', ') FROM unnest(idsync._replicated_columns(child_reg)) c))
                USING child;
                EXECUTE format('SELECT array_agg(v.idsync_ord) FROM (%s) v WHERE v.idsync_missing IS NULL',
                               idsync._plan(child_reg) ->> 'resolved') INTO ready;
            EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
                ready := NULL; -- a key that does not convert stays parked; retry_rejects shows it
            END;
            CONTINUE WHEN ready IS NULL;
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
