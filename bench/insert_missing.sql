-- Benchmark of idsync.insert_missing against the plain alternatives, on the same batches.
-- Timing happens inside the server (clock_timestamp around each statement, arrays passed as
-- parameters as a client would send them), so client transfer costs count for no method.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS idsync;
DROP TABLE IF EXISTS bench_pkg, bench_times;
CREATE TABLE bench_pkg (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
INSERT INTO bench_pkg (name) SELECT 'pkg-' || md5(g::text) FROM generate_series(1, :rows) g;
VACUUM ANALYZE bench_pkg;
CREATE TABLE bench_times (method text, round int, ms float8);

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
CREATE OR REPLACE FUNCTION bench_round(round int, batch int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    existing text[];
    new_a text[];
    new_b text[];
    table_rows bigint := (SELECT max(id) FROM bench_pkg);
    lookups text[] := ARRAY[
        'insert_missing, all existing',
        'plain lookup (nested loop)',
        'CTE pattern, all existing'];
    inserts text[] := ARRAY['insert_missing, all new', 'plain INSERT, all new'];
    method text;
BEGIN
    existing := ARRAY(SELECT name FROM bench_pkg
                      WHERE id = ANY (ARRAY(SELECT (random() * (table_rows - 1))::bigint + 1
                                            FROM generate_series(1, batch)))
                      ORDER BY random());
    new_a := ARRAY(SELECT 'new-' || md5(random()::text) FROM generate_series(1, batch));
    new_b := ARRAY(SELECT 'new-' || md5(random()::text) FROM generate_series(1, batch));
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
