-- idsync 0.3.0 -> 0.4.0: normalized data. A registered table whose foreign key points at the
-- node-local id of another registered table replicates the reference as the natural key of the
-- referenced row (nested when that key holds references itself); a receiver resolves it to its
-- own id in one set-based join per batch, and a row whose referenced row has not arrived yet
-- waits in idsync.rejects until it does. README.md, "Normalized data", has the model.
\echo Use "ALTER EXTENSION idsync UPDATE TO '0.4.0'" to load this file. \quit

---------------------------------------------------------------------------------------------
-- References
---------------------------------------------------------------------------------------------

-- Natural keys nest through references; deeper than this is a mistake (or a cycle).
CREATE FUNCTION _max_nesting() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 8';

-- The foreign keys of a registered table that matter to replication, by constraint name:
--   translated: the key references one local column of the parent (its surrogate id); the
--               value travels as the parent row's natural key;
--   otherwise:  the key references replicated columns, whose values are equal on every node,
--               and travels as it is.
-- Foreign keys on local columns of the table are not replicated and not listed. Refused with a
-- clear error: a parent that is not registered, a reference to a local column together with
-- other columns, a reference to columns that hold node-local ids, and a mix of local and
-- replicated columns. `target_locals` stands in for the registration while it is being made.
CREATE FUNCTION _references(target regclass, target_locals name[] DEFAULT NULL)
RETURNS TABLE (constraint_name name, columns name[], parent regclass, parent_columns name[],
               translated boolean)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    own_locals name[] := coalesce(target_locals,
        (SELECT t.local_columns FROM idsync.tables t WHERE t.relid = target));
    parent_locals name[];
    fk record;
BEGIN
    FOR fk IN
        SELECT c.conname, c.confrelid::regclass AS parent_table, c.condeferrable,
               ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(attnum, i)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                     ORDER BY k.i) AS child_columns,
               ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(attnum, i)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
                     ORDER BY k.i) AS referenced
        FROM pg_constraint c
        WHERE c.conrelid = target AND c.contype = 'f'
        ORDER BY c.conname
    LOOP
        CONTINUE WHEN fk.child_columns <@ own_locals;
        IF fk.child_columns && own_locals THEN
            RAISE EXCEPTION 'foreign key % of table % mixes local and replicated columns',
                quote_ident(fk.conname), target
                USING ERRCODE = '0A000',
                      HINT = 'Make all its columns local, or none of them.';
        END IF;
        IF fk.parent_table = target THEN
            parent_locals := own_locals;
        ELSE
            SELECT t.local_columns INTO parent_locals FROM idsync.tables t WHERE t.relid = fk.parent_table;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'foreign key % of table % references table %, which is not registered for replication',
                    quote_ident(fk.conname), target, fk.parent_table
                    USING ERRCODE = '55000',
                          DETAIL = 'Its rows would reference rows that never reach the other nodes.',
                          HINT = format('Register %s first: parents before children.', fk.parent_table);
            END IF;
        END IF;
        IF fk.referenced && parent_locals THEN
            IF cardinality(fk.referenced) > 1 THEN
                RAISE EXCEPTION 'foreign key % of table % references local column % of % together with other columns',
                    quote_ident(fk.conname), target,
                    (SELECT string_agg(quote_ident(r), ', ') FROM unnest(fk.referenced) r
                     WHERE r = ANY (parent_locals)), fk.parent_table
                    USING ERRCODE = '0A000',
                          DETAIL = 'A local column holds values of this node only; idsync translates a reference to a single local id column.';
            END IF;
            -- The content hash of a row takes the natural key of the row it references when the
            -- statement ends; a deferred check would let that row come later.
            IF fk.condeferrable THEN
                RAISE EXCEPTION 'foreign key % of table % is deferrable', quote_ident(fk.conname), target
                    USING ERRCODE = '0A000',
                          DETAIL = 'A reference to a local id must find its row when the statement that writes it ends.',
                          HINT = 'Make the foreign key NOT DEFERRABLE.';
            END IF;
            RETURN QUERY SELECT fk.conname, fk.child_columns, fk.parent_table, fk.referenced, true;
        ELSE
            -- Replicated columns of the parent that are themselves translated references hold
            -- local ids, so a reference to them would need translating twice.
            IF EXISTS (
                SELECT 1 FROM pg_constraint c2
                JOIN idsync.tables t2 ON t2.relid = c2.confrelid
                JOIN pg_attribute ca ON ca.attrelid = c2.conrelid AND ca.attnum = c2.conkey[1]
                JOIN pg_attribute pa ON pa.attrelid = c2.confrelid AND pa.attnum = c2.confkey[1]
                WHERE c2.conrelid = fk.parent_table AND c2.contype = 'f'
                  AND cardinality(c2.conkey) = 1 AND ca.attname = ANY (fk.referenced)
                  AND pa.attname = ANY (t2.local_columns)) THEN
                RAISE EXCEPTION 'foreign key % of table % references columns (%) of %, which hold node-local ids',
                    quote_ident(fk.conname), target, array_to_string(fk.referenced, ', '), fk.parent_table
                    USING ERRCODE = '0A000',
                          HINT = format('Reference %s by its id instead.', fk.parent_table);
            END IF;
            RETURN QUERY SELECT fk.conname, fk.child_columns, fk.parent_table, fk.referenced, false;
        END IF;
    END LOOP;
END $$;

-- The translated references of a table: column -> (parent, parent's id column).
CREATE FUNCTION _translated(target regclass)
RETURNS TABLE (column_name name, parent regclass, parent_column name)
LANGUAGE sql STABLE AS $$
    SELECT r.columns[1], r.parent, r.parent_columns[1]
    FROM idsync._references(target) r WHERE r.translated
$$;

---------------------------------------------------------------------------------------------
-- Natural form: what leaves a node
---------------------------------------------------------------------------------------------

-- The natural key of the `parent` row whose `parent_column` equals the SQL expression `ref`,
-- as an SQL expression: a jsonb object of the key columns (purpose 'json'), or the row hash of
-- the key columns (purpose 'hash', for content hashes). Key columns that are references nest.
-- The joins it needs are appended to `joins`, the parent row joined as `alias`.
CREATE FUNCTION _natural_key(parent regclass, parent_column name, ref text, alias text,
                             purpose text, INOUT joins text, depth integer DEFAULT 1,
                             OUT expr text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    reg idsync.tables := idsync._registration(parent);
    nested record;
    parts text[] := '{}';
    part text;
    key_column name;
    i integer := 0;
BEGIN
    IF depth > idsync._max_nesting() THEN
        RAISE EXCEPTION 'natural keys nest deeper than % levels at table %', idsync._max_nesting(), parent
            USING ERRCODE = '54001', HINT = 'A chain of key columns that reference each other in a cycle cannot be replicated.';
    END IF;
    joins := joins || format(' LEFT JOIN %s %I ON %I.%I = %s', parent, alias, alias, parent_column, ref);
    FOREACH key_column IN ARRAY reg.key_columns LOOP
        i := i + 1;
        SELECT * INTO nested FROM idsync._translated(parent) t WHERE t.column_name = key_column;
        IF FOUND THEN
            SELECT * INTO joins, part FROM idsync._natural_key(
                nested.parent, nested.parent_column, format('%I.%I', alias, key_column),
                alias || '_' || i, purpose, joins, depth + 1);
        ELSE
            part := format('%I.%I', alias, key_column);
        END IF;
        parts := parts || CASE purpose WHEN 'json' THEN format('%L, %s', key_column, part)
                                       ELSE format('%s AS %I', part, key_column) END;
    END LOOP;
    expr := format('CASE WHEN %s IS NULL THEN NULL ELSE %s END', ref,
                   CASE purpose
                   WHEN 'json' THEN format('jsonb_build_object(%s)', array_to_string(parts, ', '))
                   ELSE format('(SELECT idsync.row_hash(k, ''{}'') FROM (SELECT %s) k)',
                               array_to_string(parts, ', ')) END);
END $$;

-- SELECT <replicated columns, translated references in natural form> [, extra] FROM source c:
-- what a sender ships ('json') or what the content hash covers ('hash').
CREATE FUNCTION _natural_select(reg tables, source text, purpose text, extra text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    items text[] := '{}';
    joins text := '';
    part text;
    ref record;
    col name;
    i integer := 0;
BEGIN
    FOREACH col IN ARRAY idsync._replicated_columns(reg) LOOP
        i := i + 1;
        SELECT * INTO ref FROM idsync._translated(reg.relid) t WHERE t.column_name = col;
        IF FOUND THEN
            SELECT * INTO joins, part FROM idsync._natural_key(
                ref.parent, ref.parent_column, format('c.%I', col), 'p' || i, purpose, joins);
            items := items || format('%s AS %I', part, col);
        ELSE
            items := items || format('c.%I', col);
        END IF;
    END LOOP;
    IF extra IS NOT NULL THEN
        items := items || extra;
    END IF;
    RETURN format('SELECT %s FROM %s c%s', array_to_string(items, ', '), source, joins);
END $$;

CREATE FUNCTION bulk_query(target regclass, up_to bigint DEFAULT NULL) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
BEGIN
    RETURN idsync._natural_select(reg, target::text, 'json')
           || CASE WHEN up_to IS NULL THEN ''
                   ELSE format(' WHERE c.%I <= %s', reg.point_column, up_to) END;
END $$;
COMMENT ON FUNCTION bulk_query(regclass, bigint) IS
'the SELECT a bulk copy of a table streams: its replicated columns, references as natural keys (jsonb); with up_to, the rows whose point is at most up_to';

-- items_since: references in natural form, and an upper bound. The point index is walked and
-- cut at max_rows before the referenced rows are joined. `up_to` lets a sender cut every table
-- of a pass at one point: a row is written after the rows it references, so its point is
-- larger, and a pass that sends parents first up to one point sends every parent its children
-- need.
DROP FUNCTION items_since(regclass, bigint, integer);
DROP FUNCTION _items_since(regclass, bigint, integer);
CREATE FUNCTION _items_since(target regclass, after bigint, max_rows integer, up_to bigint)
RETURNS TABLE (point bigint, item jsonb)
LANGUAGE plpgsql VOLATILE SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off AS $$
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
    IF NOT EXISTS (SELECT 1 FROM idsync._translated(target)) THEN
        RETURN QUERY EXECUTE format(
            'SELECT r.%1$I, to_jsonb(r) - $4 FROM %2$s r WHERE r.%1$I > $1 AND r.%1$I <= $2 '
            'ORDER BY r.%1$I LIMIT $3', reg.point_column, target)
        USING after, bound, max_rows, reg.local_columns::text[];
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT n.%1$I, to_jsonb(n) - %1$L FROM (%2$s) n ORDER BY n.%1$I', reg.point_column,
        idsync._natural_select(reg, format(
            '(SELECT * FROM %2$s r WHERE r.%1$I > $1 AND r.%1$I <= $2 ORDER BY r.%1$I LIMIT $3)',
            reg.point_column, target), 'json', format('c.%I', reg.point_column)))
    USING after, bound, max_rows;
END $$;

CREATE FUNCTION items_since(target regclass, point bigint, max_rows integer DEFAULT 1000,
                            up_to bigint DEFAULT NULL)
RETURNS TABLE (point bigint, item jsonb)
LANGUAGE sql VOLATILE AS $$
    SELECT * FROM idsync._items_since($1, $2, $3, $4)
$$;
COMMENT ON FUNCTION items_since(regclass, bigint, integer, bigint) IS
'the next changes after a point, in point order, up to the stable point (and up_to): (point, the row by column name without local columns, references as natural keys)';

-- sync_info with an upper bound for max_point (the pass's cut, see items_since).
DROP FUNCTION sync_info(regclass);
CREATE FUNCTION sync_info(target regclass, up_to bigint DEFAULT NULL,
                          OUT node_id uuid, OUT max_point bigint, OUT row_count bigint,
                          OUT content_hash text, OUT rejects bigint)
LANGUAGE plpgsql VOLATILE AS $$
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

---------------------------------------------------------------------------------------------
-- Content hashes of tables with translated references
---------------------------------------------------------------------------------------------

-- (row_count, hash1, hash2) of the rows of `source` (a table or transition table with the
-- target's columns), references hashed as the natural keys they point at, so that equal
-- content hashes equal on every node whatever its ids. `sign` -1 counts the rows negatively
-- (the rows a statement removed).
CREATE FUNCTION _natural_state_sql(reg tables, source text, sign integer DEFAULT 1) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format(
        'SELECT (%s * count(*))::bigint AS row_count, '
        'coalesce(bit_xor((''x'' || left(h, 16))::bit(64)::bigint), 0) AS hash1, '
        'coalesce(bit_xor((''x'' || right(h, 16))::bit(64)::bigint), 0) AS hash2 '
        'FROM (SELECT replace(idsync.row_hash(n, ''{}'')::text, ''-'', '''') AS h FROM (%s) n) x',
        sign, idsync._natural_select(reg, source, 'hash'))
$$;

-- The query the content trigger runs for a translated reference to `parent`: (id, the row hash
-- of the natural key of the parent row with that id) for the ids in $1 (bigint[]), the same
-- hash _natural_select computes for the reference.
CREATE FUNCTION _ref_hash_query(parent regclass, parent_column name) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    joins text;
    expr text;
BEGIN
    SELECT * INTO joins, expr FROM idsync._natural_key(parent, parent_column, 'c.x', 'p1', 'hash', '');
    -- An id whose row this snapshot does not show gives no row (the trigger then raises), not
    -- the hash of a key of NULLs.
    RETURN format('SELECT c.x, %s FROM unnest($1::bigint[]) AS c(x)%s WHERE p1.%I IS NOT NULL',
                  expr, joins, parent_column);
END $$;

-- Puts the content triggers that fit the table's references in place: the C trigger hashing
-- the stored columns for plain tables; for tables with translated references the same C
-- trigger hashing each reference as the natural key it points at, with the lookup queries
-- generated here (kept in its arguments, so no statement pays for generating them). When the kind changes, the content state is computed afresh.
-- Called at registration and after every ALTER TABLE of the table or of a table it references.
CREATE FUNCTION _refresh_content_triggers(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    by_key boolean := EXISTS (SELECT 1 FROM idsync._translated(target));
    was_by_key boolean;
    args text;
    state record;
BEGIN
    SELECT split_part(encode(t.tgargs, 'escape'), '\000', 1) = 'natural'
    INTO was_by_key FROM pg_trigger t
    WHERE t.tgrelid = target AND t.tgname = 'idsync_content_insert';
    -- No trigger: the table is being unregistered (its ALTER TABLE calls us).
    IF was_by_key IS NULL OR (NOT by_key AND NOT was_by_key) THEN
        RETURN;
    END IF;
    args := (SELECT string_agg(quote_literal(c), ', ') FROM unnest(reg.local_columns) c);
    IF by_key THEN
        args := format('''natural'', %s, ''--'', %s', args,
                       (SELECT string_agg(format('%L, %L', t.column_name,
                                                 idsync._ref_hash_query(t.parent, t.parent_column)), ', ')
                        FROM idsync._translated(target) t));
    END IF;
    EXECUTE format('DROP TRIGGER idsync_content_insert ON %1$s; '
                   'DROP TRIGGER idsync_content_update ON %1$s; '
                   'DROP TRIGGER idsync_content_delete ON %1$s; '
                   'CREATE TRIGGER idsync_content_insert AFTER INSERT ON %1$s '
                   'REFERENCING NEW TABLE AS idsync_new FOR EACH STATEMENT EXECUTE FUNCTION idsync.content_trigger(%2$s); '
                   'CREATE TRIGGER idsync_content_update AFTER UPDATE ON %1$s '
                   'REFERENCING OLD TABLE AS idsync_old NEW TABLE AS idsync_new FOR EACH STATEMENT '
                   'EXECUTE FUNCTION idsync.content_trigger(%2$s); '
                   'CREATE TRIGGER idsync_content_delete AFTER DELETE ON %1$s '
                   'REFERENCING OLD TABLE AS idsync_old FOR EACH STATEMENT EXECUTE FUNCTION idsync.content_trigger(%2$s)',
                   target, args);
    IF by_key = was_by_key THEN
        RETURN;
    END IF;
    IF by_key THEN
        EXECUTE idsync._natural_state_sql(reg, target::text) INTO state;
    ELSE
        SELECT * INTO state FROM idsync.table_hash(target, reg.local_columns::text[]);
    END IF;
    DELETE FROM idsync.table_deltas d WHERE d.relid = target;
    UPDATE idsync.tables t SET row_count = state.row_count, hash1 = state.hash1, hash2 = state.hash2
    WHERE t.relid = target;
END $$;

-- The registered tables whose natural form involves `target`: it and the tables that
-- reference it, transitively.
CREATE FUNCTION _dependents(target regclass) RETURNS SETOF regclass
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE d(relid) AS (
        SELECT target::oid
        UNION
        SELECT c.conrelid FROM d
        JOIN pg_constraint c ON c.confrelid = d.relid AND c.contype = 'f'
        JOIN idsync.tables t ON t.relid = c.conrelid
    )
    SELECT d.relid::regclass FROM d JOIN idsync.tables t ON t.relid = d.relid
$$;

---------------------------------------------------------------------------------------------
-- Natural form: what arrives at a node
---------------------------------------------------------------------------------------------

-- The columns of a staging table for `reg`: the replicated columns with the target's types,
-- translated references as jsonb (the natural key of the referenced row).
CREATE FUNCTION _staging_definition(reg tables) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT string_agg(format('%I %s', a.attname,
                             CASE WHEN t.column_name IS NULL THEN format_type(a.atttypid, a.atttypmod)
                                  ELSE 'jsonb' END), ', ' ORDER BY a.attnum)
    FROM pg_attribute a
    LEFT JOIN idsync._translated(reg.relid) t ON t.column_name = a.attname
    WHERE a.attrelid = reg.relid AND a.attname = ANY (idsync._replicated_columns(reg))
$$;

CREATE FUNCTION create_staging(target regclass, staging_name name DEFAULT 'idsync_bulk')
RETURNS regclass
LANGUAGE plpgsql VOLATILE AS $$
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

CREATE OR REPLACE FUNCTION _stage(reg tables) RETURNS regclass
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    stage_name text := 'idsync_stage_' || reg.relid::oid;
    stage regclass := to_regclass('pg_temp.' || stage_name);
    definition text := 'idsync_ord bigint, idsync_point bigint, ' || idsync._staging_definition(reg);
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
LANGUAGE plpgsql STABLE AS $$
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
CREATE FUNCTION _resolved_sql(reg tables, source regclass) RETURNS text
LANGUAGE plpgsql STABLE AS $$
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
CREATE FUNCTION _merge_source(reg tables, source regclass, extra text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql STABLE AS $$
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
                   FROM unnest(idsync._replicated_columns(reg)) c),
                  CASE WHEN extra IS NULL THEN '' ELSE ', v.' || extra END,
                  idsync._resolved_sql(reg, source));
END $$;

-- Parks the staged rows whose references do not resolve on this node yet (SQLSTATE 23503, the
-- item as it came, natural keys and all) and takes them out of the stage. Returns how many.
-- A natural key that does not convert to the parent's types parks its row with that error.
CREATE FUNCTION _park_waiting(reg tables, stage regclass, source uuid) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    park text;
    refs text[];
    waiting bigint[];
    one bigint[];
    entry record;
    state text;
    message text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM idsync._references(reg.relid)) THEN
        RETURN 0;
    END IF;
    -- Detection and parking in one statement: a parent merged meanwhile by another session
    -- cannot slip in between.
    park := format(
        'WITH w AS (SELECT * FROM (%s) v WHERE v.idsync_missing IS NOT NULL AND ($3 IS NULL OR v.idsync_ord = $3)), '
        'parked AS (INSERT INTO idsync.rejects (relid, source, point, item, sqlstate, message, detail) '
        '    SELECT $1, $2, w.idsync_point, '
        '           to_jsonb(w) - ''idsync_ord'' - ''idsync_point'' - ''idsync_missing'' - $4::text[], '
        '           ''23503'', ''waiting for '' || w.idsync_missing, '
        '           ''The referenced row has not reached this node yet; the row is merged when it arrives.'' '
        '    FROM w) '
        'SELECT coalesce(array_agg(w.idsync_ord), ''{}'') FROM w',
        idsync._resolved_sql(reg, stage));
    refs := ARRAY(SELECT 'idsync_ref_' || t.column_name FROM idsync._translated(reg.relid) t);
    BEGIN
        EXECUTE park INTO waiting USING reg.relid, source, NULL::bigint, refs;
    EXCEPTION WHEN data_exception THEN
        -- One row at a time, to park the rows whose keys do not convert with their error.
        waiting := '{}';
        FOR entry IN EXECUTE format('SELECT idsync_ord FROM %s ORDER BY idsync_ord', stage) LOOP
            BEGIN
                EXECUTE park INTO one USING reg.relid, source, entry.idsync_ord, refs;
                waiting := waiting || one;
            EXCEPTION WHEN data_exception THEN
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

---------------------------------------------------------------------------------------------
-- Merges
---------------------------------------------------------------------------------------------

-- As before, but the rows come from `rows_sql` (a query over the stage with idsync_ord, see
-- _merge_source), so references are resolved in the same statement.
DROP FUNCTION _merge_range(tables, regclass, bigint, bigint, uuid, integer, integer, integer);
CREATE FUNCTION _merge_range(reg tables, stage regclass, rows_sql text, lo bigint, hi bigint,
                             source uuid, INOUT inserted integer, INOUT updated integer,
                             INOUT rejected integer)
LANGUAGE plpgsql VOLATILE AS $$
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
        EXECUTE idsync._merge_statement(reg, format(
            '(SELECT * FROM (%s) r WHERE r.idsync_ord BETWEEN %s AND %s) s', rows_sql, lo, hi))
        INTO got_inserted, got_updated;
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
    FROM idsync._merge_range(reg, stage, rows_sql, lo, mid, source, inserted, updated, rejected);
    SELECT * INTO inserted, updated, rejected
    FROM idsync._merge_range(reg, stage, rows_sql, mid + 1, hi, source, inserted, updated, rejected);
END $$;

-- Merges the numbered stage of `reg`: rows waiting for a referenced row are parked first, the
-- rest merge (by halves around refused rows).
CREATE FUNCTION _merge_stage(reg tables, stage regclass, received integer, source uuid,
                             OUT inserted integer, OUT updated integer, OUT rejected integer)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    rejected := idsync._park_waiting(reg, stage, source);
    SELECT * INTO inserted, updated, rejected
    FROM idsync._merge_range(reg, stage, idsync._merge_source(reg, stage, 'idsync_ord'),
                             1, received, source, 0, 0, rejected);
END $$;

CREATE OR REPLACE FUNCTION merge_items(target regclass, items jsonb, source uuid DEFAULT NULL)
RETURNS TABLE (received integer, inserted integer, updated integer, unchanged integer,
               rejected integer, sync_point bigint)
LANGUAGE plpgsql VOLATILE SET idsync.applying = on AS $$
#variable_conflict use_variable
DECLARE
    reg idsync.tables := idsync._registration(target);
    cols name[] := idsync._replicated_columns(reg);
    stage regclass;
    fill text;
    bad jsonb;
    last_point bigint;
    entry record;
    state text;
    message text;
    parked integer := 0;
BEGIN
    IF items IS NULL THEN
        RAISE EXCEPTION 'items must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF jsonb_typeof(items) <> 'array' THEN
        RAISE EXCEPTION 'items must be a JSON array' USING ERRCODE = '22023',
            HINT = 'Pass jsonb_agg(i) over the rows of idsync.items_since: [{"point": ..., "item": {...}}, ...].';
    END IF;
    SELECT e INTO bad FROM jsonb_array_elements(items) e
    WHERE jsonb_typeof(e) <> 'object' OR jsonb_typeof(e -> 'item') IS DISTINCT FROM 'object'
       OR jsonb_typeof(e -> 'point') IS DISTINCT FROM 'number'
       OR (e ->> 'point')::numeric <> trunc((e ->> 'point')::numeric)
       OR (e ->> 'point')::numeric NOT BETWEEN 0 AND 9223372036854775807
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'malformed item: %', left(bad::text, 200) USING ERRCODE = '22023',
            HINT = 'Each item is {"point": bigint, "item": {column: value, ...}}, as idsync.items_since returns.';
    END IF;
    received := jsonb_array_length(items);
    SELECT max((e ->> 'point')::bigint) INTO last_point FROM jsonb_array_elements(items) e;

    -- Stage the rows with the staging types (references as jsonb): all at once, or, when a
    -- value does not convert, one by one (a one-item array, its ord shifted by $3) so that only
    -- the refused rows are parked. Rows with a column this node does not have are parked below.
    stage := idsync._stage(reg);
    fill := format('INSERT INTO %1$s (idsync_ord, idsync_point, %2$s) '
                   'SELECT x.ord + $3, (x.e ->> ''point'')::bigint, %3$s '
                   'FROM jsonb_array_elements($1) WITH ORDINALITY x(e, ord), '
                   'jsonb_populate_record(NULL::%1$s, x.e -> ''item'') r '
                   'WHERE NOT EXISTS (SELECT FROM jsonb_object_keys(x.e -> ''item'') k WHERE k <> ALL ($2))',
                   stage, (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) c),
                   (SELECT string_agg('r.' || quote_ident(c), ', ') FROM unnest(cols) c));
    BEGIN
        EXECUTE fill USING items, cols::text[], 0::bigint;
    EXCEPTION WHEN data_exception THEN
        FOR entry IN SELECT x.ord, x.e FROM jsonb_array_elements(items) WITH ORDINALITY x(e, ord) LOOP
            BEGIN
                EXECUTE fill USING jsonb_build_array(entry.e), cols::text[], entry.ord - 1;
            EXCEPTION WHEN data_exception THEN
                GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
                INSERT INTO idsync.rejects (relid, source, point, item, sqlstate, message)
                VALUES (target, source, (entry.e ->> 'point')::bigint, entry.e -> 'item', state, message);
                parked := parked + 1;
            END;
        END LOOP;
    END;
    FOR entry IN SELECT x.e, (SELECT string_agg(k, ', ') FROM jsonb_object_keys(x.e -> 'item') k
                              WHERE k <> ALL (cols)) AS unknown
                 FROM jsonb_array_elements(items) x(e) LOOP
        CONTINUE WHEN entry.unknown IS NULL;
        INSERT INTO idsync.rejects (relid, source, point, item, sqlstate, message)
        VALUES (target, source, (entry.e ->> 'point')::bigint, entry.e -> 'item', '42703',
                format('column %s of table %s does not exist on this node', entry.unknown, target));
        parked := parked + 1;
    END LOOP;

    SELECT * INTO inserted, updated, rejected FROM idsync._merge_stage(reg, stage, received, source);
    rejected := rejected + parked;
    unchanged := received - inserted - updated - rejected;

    -- Always, also when nothing changed: a receiver whose rows are all newer must still move
    -- the sender's point forward, or the sender stays diff-capped for ever.
    IF source IS NOT NULL AND last_point IS NOT NULL THEN
        PERFORM idsync._raise_sync(target, source, last_point, true);
    END IF;
    PERFORM idsync.retry_waiting(target);
    sync_point := CASE WHEN source IS NULL THEN NULL ELSE idsync.get_sync(target, source) END;
    RETURN NEXT;
END $$;

CREATE OR REPLACE FUNCTION merge_staged(target regclass, staging regclass, source uuid, point bigint)
RETURNS TABLE (received integer, inserted integer, updated integer, unchanged integer,
               rejected integer, sync_point bigint)
LANGUAGE plpgsql VOLATILE SET idsync.applying = on AS $$
#variable_conflict use_variable
DECLARE
    reg idsync.tables := idsync._registration(target);
    cols name[] := idsync._replicated_columns(reg);
    missing text;
    stage regclass;
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
    EXECUTE format('SELECT count(*) FROM %s', staging) INTO received;
    inserted := 0;
    updated := 0;
    rejected := 0;
    -- The fast path merges straight from the staging table; it is taken when no row waits for a
    -- referenced row and none is refused. Otherwise the rows are numbered into a stage, the
    -- waiting ones parked and the rest merged by halves.
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM idsync._references(target)) THEN
            EXECUTE idsync._merge_statement(reg, format('%s s', staging)) INTO inserted, updated;
        ELSE
            EXECUTE format('SELECT count(*) FROM (%s) v WHERE v.idsync_missing IS NOT NULL',
                           idsync._resolved_sql(reg, staging)) INTO rejected;
            IF rejected > 0 THEN
                RAISE EXCEPTION USING ERRCODE = '23503';
            END IF;
            EXECUTE idsync._merge_statement(reg, format('(%s) s', idsync._merge_source(reg, staging)))
            INTO inserted, updated;
        END IF;
    EXCEPTION WHEN data_exception OR integrity_constraint_violation
                   OR triggered_data_change_violation OR raise_exception THEN
        stage := idsync._stage(reg);
        EXECUTE format('INSERT INTO %1$s (idsync_ord, %2$s) SELECT row_number() OVER (), %2$s FROM %3$s',
                       stage, (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) c), staging);
        SELECT * INTO inserted, updated, rejected FROM idsync._merge_stage(reg, stage, received, source);
    END;
    unchanged := received - inserted - updated - rejected;
    IF source IS NOT NULL THEN
        PERFORM idsync._raise_sync(target, source, point, true);
    END IF;
    PERFORM idsync.retry_waiting(target);
    sync_point := CASE WHEN source IS NULL THEN NULL ELSE idsync.get_sync(target, source) END;
    RETURN NEXT;
END $$;

---------------------------------------------------------------------------------------------
-- Waiting rows and retries
---------------------------------------------------------------------------------------------

-- Merges the parked rows of `target` picked by `reject_ids` (all when NULL) once more; rows
-- refused again are parked again with their source. Returns how many were retried, merged
-- (inserted + updated + unchanged) and inserted.
CREATE FUNCTION _retry(target regclass, reject_ids bigint[],
                       OUT retried integer, OUT merged integer, OUT inserted integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    batch record;
    result record;
BEGIN
    retried := 0;
    merged := 0;
    inserted := 0;
    FOR batch IN
        WITH taken AS (
            DELETE FROM idsync.rejects r
            WHERE r.reject_id IN (SELECT x.reject_id FROM idsync.rejects x
                                  WHERE x.relid = target
                                    AND (reject_ids IS NULL OR x.reject_id = ANY (reject_ids))
                                  ORDER BY x.reject_id FOR UPDATE SKIP LOCKED)
            RETURNING r.source, r.point, r.item, r.reject_id)
        SELECT t.source, jsonb_agg(jsonb_build_object('point', coalesce(t.point, 0), 'item', t.item)
                                   ORDER BY t.reject_id) AS items
        FROM taken t GROUP BY t.source
    LOOP
        -- Merged without a source: the sync point already moved past these rows.
        SELECT * INTO result FROM idsync.merge_items(target, batch.items);
        UPDATE idsync.rejects r SET source = batch.source
        WHERE r.relid = target AND r.source IS NULL AND r.rejected_at = now();
        retried := retried + result.received;
        merged := merged + result.received - result.rejected;
        inserted := inserted + result.inserted;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION retry_rejects(target regclass)
RETURNS TABLE (retried integer, merged integer, still_rejected integer)
LANGUAGE plpgsql VOLATILE AS $$
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

-- After rows were merged into `target`: the rows parked as waiting (SQLSTATE 23503) in target
-- and in the registered tables that reference it, whose references now resolve, are merged;
-- a table that gained rows that way wakes its own dependents in turn. Only rows that resolve
-- are taken, so rows still waiting cost one join per merge and are not rewritten.
CREATE FUNCTION retry_waiting(target regclass) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- A retry merges through merge_items, which calls back here: the round in progress goes on.
    IF current_setting('idsync.retrying', true) = 'on' THEN
        RETURN 0;
    END IF;
    RETURN idsync._retry_round(target);
END $$;
COMMENT ON FUNCTION retry_waiting(regclass) IS
'merge the rows of a table, and of the registered tables that reference it, that wait for a referenced row which is now here; returns how many';

CREATE FUNCTION _retry_round(target regclass) RETURNS integer
LANGUAGE plpgsql VOLATILE SET idsync.retrying = on AS $$
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
                               idsync._resolved_sql(child_reg, stage)) INTO ready;
            EXCEPTION WHEN data_exception THEN
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

---------------------------------------------------------------------------------------------
-- Registration
---------------------------------------------------------------------------------------------

-- lww: a natural key identifies the row on every node (and, in natural form, the rows that
-- reference it), so it cannot change in place.
CREATE FUNCTION _refuse_key_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('idsync.applying', true) = 'on' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'cannot change the natural key of a row of %', TG_RELID::regclass
        USING ERRCODE = '55000',
              DETAIL = 'The key identifies the row on every node: the others would keep the row under its old key.',
              HINT = 'Delete the row and insert it again with the new key.';
END $$;

CREATE FUNCTION _add_key_trigger(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
BEGIN
    IF reg.mode <> 'lww' THEN
        RETURN; -- insert_only tables refuse every update
    END IF;
    EXECUTE format('CREATE TRIGGER idsync_key BEFORE UPDATE OF %s ON %s FOR EACH ROW WHEN (%s) '
                   'EXECUTE FUNCTION idsync._refuse_key_change()',
                   (SELECT string_agg(quote_ident(k), ', ') FROM unnest(reg.key_columns) k), target,
                   (SELECT string_agg(format('OLD.%1$I IS DISTINCT FROM NEW.%1$I', k), ' OR ')
                    FROM unnest(reg.key_columns) k));
END $$;

ALTER FUNCTION replicate(regclass, text[], text, name, name, text[]) RENAME TO _replicate_table;
COMMENT ON FUNCTION _replicate_table(regclass, text[], text, name, name, text[]) IS
'the registration itself, without the checks of foreign keys (see replicate)';

CREATE FUNCTION replicate(target regclass, key_columns text[], mode text DEFAULT 'insert_only',
                          version_column name DEFAULT NULL, tombstone_column name DEFAULT NULL,
                          local_columns text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables;
    self_key text;
BEGIN
    PERFORM idsync._replicate_table(target, key_columns, mode, version_column, tombstone_column,
                                    local_columns);
    reg := idsync._registration(target);
    -- Every foreign key is checked here; an error undoes the whole registration.
    PERFORM idsync._references(target);
    SELECT string_agg(quote_ident(t.column_name), ', ') INTO self_key
    FROM idsync._translated(target) t
    WHERE t.parent = target AND t.column_name = ANY (reg.key_columns);
    IF self_key IS NOT NULL THEN
        RAISE EXCEPTION 'key column % of table % references the table itself', self_key, target
            USING ERRCODE = '0A000',
                  DETAIL = 'A natural key that contains a reference to a row of its own table would nest without end.',
                  HINT = 'Keep the reference out of the key.';
    END IF;
    PERFORM idsync._natural_select(reg, target::text, 'json'); -- nesting depth
    PERFORM idsync._refresh_content_triggers(target);
    PERFORM idsync._add_key_trigger(target);
END $$;
COMMENT ON FUNCTION replicate(regclass, text[], text, name, name, text[]) IS
'register a table for replication, identified across nodes by the natural key key_columns';

ALTER FUNCTION unreplicate(regclass) RENAME TO _unreplicate_table;

CREATE FUNCTION unreplicate(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    children text;
BEGIN
    SELECT string_agg(DISTINCT c.conrelid::regclass::text, ', ') INTO children
    FROM pg_constraint c JOIN idsync.tables t ON t.relid = c.conrelid
    WHERE c.confrelid = target AND c.contype = 'f' AND c.conrelid <> target;
    IF children IS NOT NULL THEN
        RAISE EXCEPTION 'cannot unregister table %: registered tables reference it', target
            USING ERRCODE = '2BP01', DETAIL = 'Referencing tables: ' || children || '.',
                  HINT = 'Unregister them first.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = target AND tgname = 'idsync_key') THEN
        EXECUTE format('DROP TRIGGER idsync_key ON %s', target);
    END IF;
    PERFORM idsync._unreplicate_table(target);
END $$;
COMMENT ON FUNCTION unreplicate(regclass) IS
'stop replicating a table: drops its triggers, change points and replication state';

-- ALTER TABLE on a registered table: a new foreign key is checked like one at registration (an
-- error undoes the ALTER), and the content triggers follow the table's references.
CREATE FUNCTION _on_alter() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed regclass;
BEGIN
    FOR changed IN
        SELECT DISTINCT d.objid::regclass FROM pg_event_trigger_ddl_commands() d
        JOIN idsync.tables t ON t.relid = d.objid
        WHERE d.classid = 'pg_class'::regclass
    LOOP
        PERFORM idsync._references(changed);
        PERFORM idsync._refresh_content_triggers(d) FROM idsync._dependents(changed) d;
    END LOOP;
END $$;
CREATE EVENT TRIGGER idsync_on_alter ON ddl_command_end
WHEN TAG IN ('ALTER TABLE')
EXECUTE FUNCTION _on_alter();

---------------------------------------------------------------------------------------------
-- Reclaim keeps tombstones that rows still reference
---------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION reclaim(target regclass, older_than interval)
RETURNS TABLE (tombstones bigint, sync_rows bigint)
LANGUAGE plpgsql VOLATILE SET idsync.applying = on AS $$
#variable_conflict use_variable
DECLARE
    reg idsync.tables := idsync._registration(target);
    referenced text;
    n bigint;
BEGIN
    IF older_than IS NULL THEN
        RAISE EXCEPTION 'older_than must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must not be negative' USING ERRCODE = '22023';
    END IF;
    tombstones := 0;
    IF reg.mode = 'lww' THEN
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
    END IF;
    DELETE FROM idsync.incoming_sync s WHERE s.relid = target AND s.updated_at < now() - older_than;
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM idsync.outgoing_sync s WHERE s.relid = target AND s.updated_at < now() - older_than;
    GET DIAGNOSTICS sync_rows = ROW_COUNT;
    sync_rows := sync_rows + n;
    RETURN NEXT;
END $$;

---------------------------------------------------------------------------------------------
-- Registrations made before 0.4.0
---------------------------------------------------------------------------------------------

DO $$
DECLARE
    registered regclass;
BEGIN
    FOR registered IN SELECT relid FROM idsync.tables LOOP
        PERFORM idsync._add_key_trigger(registered);
        BEGIN
            PERFORM idsync._refresh_content_triggers(registered);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'table % cannot replicate its foreign keys: %', registered, SQLERRM;
        END;
    END LOOP;
END $$;

-- A DELETE of a row whose key holds a NULL (a NULLS NOT DISTINCT key) found no row to turn
-- into a tombstone: key columns that are NULL in the old row now match IS NULL.
CREATE OR REPLACE FUNCTION _tombstone_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_row jsonb;
    key_match text;
BEGIN
    IF current_setting('idsync.applying', true) = 'on' THEN
        RETURN OLD;
    END IF;
    old_row := to_jsonb(OLD);
    SELECT string_agg(CASE WHEN old_row -> k = 'null'::jsonb THEN format('%I IS NULL', k)
                           ELSE format('%I = $1.%I', k, k) END, ' AND ')
    INTO key_match FROM unnest(TG_ARGV[1:]) AS k;
    EXECUTE format('UPDATE %s SET %I = true WHERE %s AND NOT %I',
                   TG_RELID::regclass, TG_ARGV[0], key_match, TG_ARGV[0])
    USING OLD;
    RETURN NULL;
END $$;

---------------------------------------------------------------------------------------------
-- Merges insert in key order
---------------------------------------------------------------------------------------------

-- The key columns in the order of the unique index that enforces the key: the order in which
-- merges and insert_missing take the index's locks, so that concurrent merges of overlapping
-- rows (two peers bulk-copying the same table into this node) cannot deadlock.
CREATE FUNCTION _key_order(reg tables) RETURNS name[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce((
        SELECT ARRAY(SELECT a.attname FROM unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = reg.relid AND a.attnum = k.attnum ORDER BY k.n)
        FROM pg_index i
        WHERE i.indrelid = reg.relid AND i.indisunique AND i.indisvalid AND i.indnkeyatts = cardinality(reg.key_columns)
          AND i.indpred IS NULL AND i.indexprs IS NULL
          AND (SELECT array_agg(a.attname ORDER BY a.attname) FROM pg_attribute a
               WHERE a.attrelid = reg.relid AND a.attnum = ANY (i.indkey[0:i.indnkeyatts - 1]))
              = (SELECT array_agg(k ORDER BY k) FROM unnest(reg.key_columns) k)
        ORDER BY i.indisprimary DESC, i.indnullsnotdistinct DESC
        LIMIT 1), reg.key_columns)
$$;

-- The row hash of the row `alias` as every node computes it: translated references hashed as
-- the natural keys they point at, by correlated subqueries (it is used inside the merge
-- statement, where joins cannot go). Versions that tie in lww merges are broken by it, so two
-- nodes keep the same row whatever their ids.
CREATE FUNCTION _ref_hash_expr(parent regclass, parent_column name, ref text, depth integer DEFAULT 1)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    reg idsync.tables := idsync._registration(parent);
    alias text := 'h' || depth;
    nested record;
    parts text[] := '{}';
    key_column name;
BEGIN
    IF depth > idsync._max_nesting() THEN
        RAISE EXCEPTION 'natural keys nest deeper than % levels at table %', idsync._max_nesting(), parent
            USING ERRCODE = '54001';
    END IF;
    FOREACH key_column IN ARRAY reg.key_columns LOOP
        SELECT * INTO nested FROM idsync._translated(parent) t WHERE t.column_name = key_column;
        parts := parts || format('%s AS %I', CASE WHEN FOUND
            THEN idsync._ref_hash_expr(nested.parent, nested.parent_column, format('%I.%I', alias, key_column), depth + 1)
            ELSE format('%I.%I', alias, key_column) END, key_column);
    END LOOP;
    RETURN format('(SELECT idsync.row_hash(k, ''{}'') FROM (SELECT %s FROM %s %I WHERE %I.%I = %s) k)',
                  array_to_string(parts, ', '), parent, alias, alias, parent_column, ref);
END $$;

CREATE FUNCTION _row_hash_expr(reg tables, alias text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    parts text[] := '{}';
    ref record;
    col name;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM idsync._translated(reg.relid)) THEN
        RETURN format('idsync.row_hash(%s, %L)', alias, reg.local_columns::text[]);
    END IF;
    FOREACH col IN ARRAY idsync._replicated_columns(reg) LOOP
        SELECT * INTO ref FROM idsync._translated(reg.relid) t WHERE t.column_name = col;
        parts := parts || format('%s AS %I', CASE WHEN FOUND
            THEN idsync._ref_hash_expr(ref.parent, ref.parent_column, format('%s.%I', alias, col))
            ELSE format('%s.%I', alias, col) END, col);
    END LOOP;
    RETURN format('(SELECT idsync.row_hash(n, ''{}'') FROM (SELECT %s) n)', array_to_string(parts, ', '));
END $$;

-- As in 0.2.0, with the rows inserted in key order, and key columns that may hold NULL (a
-- NULLS NOT DISTINCT key) compared with IS NOT DISTINCT FROM when unchanged rows are skipped.
CREATE OR REPLACE FUNCTION _merge_statement(reg tables, rows text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
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
                   FROM pg_attribute a WHERE a.attrelid = reg.relid AND a.attname = ANY (cols));
    set_list text;
BEGIN
    IF reg.mode = 'insert_only' THEN
        RETURN format('WITH m AS (INSERT INTO %1$s (%2$s) SELECT %2$s FROM %3$s '
                      '           WHERE NOT EXISTS (SELECT FROM %1$s old WHERE %5$s) ORDER BY %6$s '
                      '           ON CONFLICT (%4$s) DO NOTHING RETURNING 1) '
                      'SELECT count(*)::int, 0 FROM m',
                      reg.relid, col_list, rows, key_list, key_match, key_order);
    END IF;
    SELECT string_agg(format('%I = excluded.%I', c, c), ', ') INTO set_list
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
