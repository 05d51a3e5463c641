-- Benchmark of idsync.insert_missing against the plain alternatives, on the same batches.
-- Timing happens inside the server (clock_timestamp around each statement, arrays passed as
-- parameters as a client would send them), so client transfer costs count for no method.
-- psql variables: rows, and order: the keys of the batches
--   shuffled  md5 keys in random order (the table's keys too)
--   sorted    the same, each batch sorted
--   series    60-byte keys numbered by generate_series, loaded in order; each batch a run of
--             consecutive numbers in ascending order (existing: a run inside the table; new:
--             the next numbers past its end, so every insert goes to the right edge of the index)
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS idsync;
DROP TABLE IF EXISTS bench_pkg, bench_times, bench_next;
CREATE TABLE bench_pkg (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE OR REPLACE FUNCTION bench_key(g bigint) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$SELECT 'file-' || lpad(g::text, 12, '0') || '-' || repeat('s', 41)$$;
INSERT INTO bench_pkg (name)
SELECT CASE WHEN :'order' = 'series' THEN bench_key(g) ELSE 'pkg-' || md5(g::text) END
FROM generate_series(1, :rows) g;
VACUUM ANALYZE bench_pkg;
CREATE TABLE bench_times (method text, round int, ms float8);
-- The next number of a series key not in the table yet.
CREATE TABLE bench_next (g bigint);
INSERT INTO bench_next VALUES (:rows + 1);

-- Runs `sql` with $1 = keys and records its time.
CREATE OR REPLACE FUNCTION bench_time(method text, round int, sql text, keys text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE sql USING keys;
    INSERT INTO bench_times VALUES (method, round, extract(epoch FROM clock_timestamp() - t0) * 1000);
END $$;

-- One round: fresh batches; the methods on existing keys run after an untimed warm-up of the
-- same keys, and the order of the methods alternates from round to round.
CREATE OR REPLACE FUNCTION bench_round(round int, batch int, key_order text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    existing text[];
    new_a text[];
    new_b text[];
    table_rows bigint := (SELECT max(id) FROM bench_pkg);
    first bigint;
    lookups text[] := ARRAY[
        'insert_missing, all existing',
        'plain lookup (nested loop)',
        'CTE pattern, all existing'];
    inserts text[] := ARRAY['insert_missing, all new', 'plain INSERT, all new'];
    method text;
BEGIN
    IF key_order = 'series' THEN
        first := (SELECT g FROM bench_next);
        existing := ARRAY(SELECT bench_key(g)
                          FROM (SELECT (random() * (first - batch - 1))::bigint + 1 AS x) r,
                               generate_series(r.x, r.x + batch - 1) g ORDER BY g);
        -- The method that runs first gets the lower numbers, so that both insert at the right
        -- edge of the index (rounds alternate the order of the methods, below).
        new_a := ARRAY(SELECT bench_key(g) FROM generate_series(first, first + batch - 1) g);
        new_b := ARRAY(SELECT bench_key(g) FROM generate_series(first + batch, first + 2 * batch - 1) g);
        IF round % 2 = 1 THEN
            SELECT new_b, new_a INTO new_a, new_b;
        END IF;
        UPDATE bench_next SET g = first + 2 * batch;
    ELSE
        existing := ARRAY(SELECT name FROM bench_pkg
                          WHERE id = ANY (ARRAY(SELECT (random() * (table_rows - 1))::bigint + 1
                                                FROM generate_series(1, batch)))
                          ORDER BY CASE WHEN key_order = 'sorted' THEN name END, random());
        new_a := ARRAY(SELECT k FROM (SELECT 'new-' || md5(random()::text) AS k
                                      FROM generate_series(1, batch)) n
                       ORDER BY CASE WHEN key_order = 'sorted' THEN k END);
        new_b := ARRAY(SELECT k FROM (SELECT 'new-' || md5(random()::text) AS k
                                      FROM generate_series(1, batch)) n
                       ORDER BY CASE WHEN key_order = 'sorted' THEN k END);
    END IF;
    PERFORM count(t.id) FROM unnest(existing) AS k(name) JOIN bench_pkg t ON t.name = k.name;
    IF round % 2 = 1 THEN
        lookups := ARRAY(SELECT lookups[i] FROM generate_series(3, 1, -1) i);
        inserts := ARRAY[inserts[2], inserts[1]];
    END IF;

    FOREACH method IN ARRAY lookups LOOP
        IF method = 'insert_missing, all existing' THEN
            PERFORM bench_time(method, round,
                $q$SELECT count(id) FROM idsync.insert_missing('bench_pkg', '{name}', $1)$q$, existing);
        ELSIF method = 'plain lookup (nested loop)' THEN
            SET LOCAL enable_hashjoin = off;
            SET LOCAL enable_mergejoin = off;
            PERFORM bench_time(method, round,
                $q$SELECT count(t.id) FROM unnest($1) WITH ORDINALITY AS k(name, ord) JOIN bench_pkg t ON t.name = k.name$q$, existing);
            RESET enable_hashjoin;
            RESET enable_mergejoin;
        ELSE
            PERFORM bench_time(method, round,
                $q$WITH input AS (SELECT * FROM unnest($1) WITH ORDINALITY AS u(name, ord)),
                        ins AS (INSERT INTO bench_pkg (name) SELECT name FROM input
                                ON CONFLICT (name) DO NOTHING RETURNING id, name)
                   SELECT count(coalesce(ins.id, t.id))
                   FROM input i LEFT JOIN ins ON ins.name = i.name LEFT JOIN bench_pkg t ON t.name = i.name$q$,
                existing);
        END IF;
    END LOOP;
    FOREACH method IN ARRAY inserts LOOP
        IF method = 'insert_missing, all new' THEN
            PERFORM bench_time(method, round,
                $q$SELECT count(id) FROM idsync.insert_missing('bench_pkg', '{name}', $1)$q$, new_a);
        ELSE
            PERFORM bench_time(method, round, $q$INSERT INTO bench_pkg (name) SELECT unnest($1)$q$, new_b);
        END IF;
    END LOOP;
END $$;
