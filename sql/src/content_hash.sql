-- Natural form and content hashes: references to local ids leave a node as the natural keys
-- they point at, and hash as those keys, so equal rows hash equal on every node whatever their
-- ids.

-- Natural form: what leaves a node

-- The natural key of the `parent` row whose `parent_column` equals the SQL expression `ref`,
-- as an SQL expression: a jsonb object of the key columns (purpose 'json'), or the row hash of
-- the key columns (purpose 'hash', for content hashes). Key columns that are references nest.
-- The joins it needs are appended to `joins`, the parent row joined as `alias`.
CREATE FUNCTION _natural_key(parent regclass, parent_column name, ref text, alias text,
                             purpose text, INOUT joins text, depth integer DEFAULT 1,
                             OUT expr text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
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
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
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

-- (row_count, hash1, hash2) of the rows of `source` (a table or transition table with the
-- target's columns), references hashed as the natural keys they point at, so that equal
-- content hashes equal on every node whatever its ids. `sign` -1 counts the rows negatively
-- (the rows a statement removed).
CREATE FUNCTION _natural_state_sql(reg tables, source text, sign integer DEFAULT 1) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
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
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
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

-- The content state of a table (row count and hash) computed afresh from its rows, references
-- hashed as the natural keys they point at. SECURITY DEFINER: it reads every row whatever the
-- policies, and its effect is fixed by the table's rows and registration alone.
CREATE FUNCTION _recompute_content_state(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    state record;
BEGIN
    -- As the content trigger hashes now: by natural key once the registration holds the queries
    -- for the table's references (_refresh_content_triggers), by stored columns before.
    EXECUTE format('LOCK TABLE %s IN SHARE MODE', target);
    IF cardinality(reg.reference_columns) > 0 THEN
        EXECUTE idsync._natural_state_sql(reg, target::text) INTO state;
    ELSE
        SELECT * INTO state FROM idsync.table_hash(target, reg.local_columns::text[]);
    END IF;
    DELETE FROM idsync.table_deltas d WHERE d.relid = target;
    UPDATE idsync.tables t SET row_count = state.row_count, hash1 = state.hash1, hash2 = state.hash2
    WHERE t.relid = target;
END $$;

-- Keeps the content trigger's reference queries in the registration (generated here from the
-- catalogs, never given by a caller), and recomputes the content state when the table starts
-- or stops having translated references. Called at registration and after every ALTER TABLE
-- of the table or of a table it references. SECURITY DEFINER for the same reason as above.
CREATE FUNCTION _refresh_content_triggers(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    was_by_key boolean := cardinality(reg.reference_columns) > 0;
    ref_columns name[];
    ref_queries text[];
BEGIN
    -- No change trigger: the table is being unregistered (its ALTER TABLE calls us).
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = target AND tgname = 'idsync_change') THEN
        RETURN;
    END IF;
    SELECT coalesce(array_agg(t.column_name ORDER BY t.column_name), '{}'),
           coalesce(array_agg(idsync._ref_hash_query(t.parent, t.parent_column) ORDER BY t.column_name), '{}')
    INTO ref_columns, ref_queries
    FROM idsync._translated(target) t;
    UPDATE idsync.tables t SET reference_columns = ref_columns, reference_queries = ref_queries
    WHERE t.relid = target;
    PERFORM idsync._registration_changed(target);
    PERFORM idsync._build_plan(target);
    IF (cardinality(ref_columns) > 0) <> was_by_key THEN
        -- The trigger hashes the other way from now on: the kept state must too.
        PERFORM idsync._recompute_content_state(target);
    END IF;
END $$;

-- Folds the committed deltas of a table into idsync.tables. Concurrent calls are safe: a delta
-- is deleted once, and the UPDATE re-reads the row another call just changed.
CREATE FUNCTION compact(target regclass) RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp SECURITY DEFINER AS $$
    WITH folded AS (
        DELETE FROM idsync.table_deltas WHERE relid = target
        RETURNING hash1, hash2, row_count
    ), total AS (
        SELECT count(*) AS n, bit_xor(hash1) AS h1, bit_xor(hash2) AS h2, sum(row_count) AS rows
        FROM folded
    ), updated AS (
        UPDATE idsync.tables t
        SET hash1 = t.hash1 # total.h1, hash2 = t.hash2 # total.h2,
            row_count = t.row_count + total.rows
        FROM total WHERE t.relid = target AND total.n > 0
    )
    SELECT n FROM total
$$;
COMMENT ON FUNCTION compact(regclass) IS
'fold the content deltas of a table into its registration; returns how many were folded';

-- The row hash of a row of `target` as every node computes it: translated references hashed as
-- the natural keys they point at (extension/natural_hash.cpp, the content trigger's rule).
-- Versions that tie in lww merges are broken by it, so two nodes keep the same row whatever
-- their ids.
CREATE FUNCTION _natural_row_hash(target regclass, row_value record) RETURNS uuid
AS 'MODULE_PATHNAME', 'idsync_natural_row_hash' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
