-- Crash fuzzer: every function of schema idsync, called with every kind of relation, NULLs,
-- empty and huge arrays, extreme numbers and malformed jsonb, as a superuser and as a role
-- with USAGE on the schema only. Each call either succeeds or ends in an error with its
-- SQLSTATE, and is rolled back. A crash would break this file's connection (and scripts/test
-- also checks that the postmaster never restarted); an internal error (XX000) or a statement
-- that runs into the timeout is listed below, and none may be.
SET client_min_messages = warning;
CREATE SCHEMA fz;
CREATE TABLE fz.reg (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, note text);
CREATE TABLE fz.lww (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE fz.child (id bigserial PRIMARY KEY, reg_id bigint NOT NULL REFERENCES fz.reg,
                       name text NOT NULL, UNIQUE (reg_id, name));
CREATE TABLE fz.plain (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
SELECT idsync.replicate('fz.reg', '{name}');
SELECT idsync.replicate('fz.lww', '{name}', 'lww');
SELECT idsync.replicate('fz.child', '{reg_id,name}');
INSERT INTO fz.reg (name, note) VALUES ('a', repeat('x', 5000)), ('b', NULL);
INSERT INTO fz.child (reg_id, name) SELECT id, 'c' FROM fz.reg;
INSERT INTO fz.lww (name) VALUES ('a');
INSERT INTO fz.plain (name) VALUES ('a');
CREATE VIEW fz.v AS SELECT * FROM fz.plain;
CREATE MATERIALIZED VIEW fz.mv AS SELECT * FROM fz.plain;
CREATE SEQUENCE fz.seq;
CREATE TABLE fz.part (id bigint NOT NULL, name text NOT NULL, UNIQUE (id, name)) PARTITION BY RANGE (id);
CREATE TYPE fz.comp AS (a int);
CREATE ROLE idsync_fuzz_usage;
GRANT USAGE ON SCHEMA idsync, fz TO idsync_fuzz_usage;
GRANT SELECT ON ALL TABLES IN SCHEMA fz TO idsync_fuzz_usage;

-- SQL literals to try for an argument of type `typ`.
CREATE FUNCTION fz.candidates(typ regtype) RETURNS SETOF text LANGUAGE sql AS $$
    SELECT unnest(CASE typ
    WHEN 'regclass'::regtype THEN ARRAY['''fz.reg''', '''fz.lww''', '''fz.child''', '''fz.plain''',
        '''fz.v''', '''fz.mv''', '''fz.seq''', '''fz.plain_pkey''', '''fz.part''', '''fz.comp''',
        quote_literal((SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'fz.reg'::regclass)),
        '''pg_catalog.pg_class''', '''pg_catalog.pg_authid''', '''idsync.tables''', '0::oid::regclass',
        '4000000000::oid::regclass', 'NULL::regclass']
    WHEN 'text[]'::regtype THEN ARRAY['''{name}''::text[]', '''{}''::text[]', '''{id}''::text[]',
        '''{nope}''::text[]', '''{NULL}''::text[]', '''{{name}}''::text[]', '''{name,name}''::text[]',
        'ARRAY(SELECT ''c'' || g FROM generate_series(1, 10000) g)', 'NULL::text[]']
    WHEN 'name[]'::regtype THEN ARRAY['''{name}''::name[]', '''{}''::name[]', '''{NULL}''::name[]', 'NULL::name[]']
    WHEN 'bigint[]'::regtype THEN ARRAY['''{1,2}''::bigint[]', '''{}''::bigint[]', '''{-1,NULL}''::bigint[]',
        'ARRAY(SELECT g FROM generate_series(1, 100000) g)::bigint[]', 'NULL::bigint[]']
    WHEN 'text'::regtype THEN ARRAY['''merge''', '''''', '''reclaim''', '''lww''', '''insert_only''',
        '''admin''', '''peer''', 'repeat(''x'', 100000)', 'NULL::text']
    WHEN 'name'::regtype THEN ARRAY['''fz_stage''::name', '''''::name', '''name''::name', 'repeat(''n'', 100)::name', 'NULL::name']
    WHEN 'bigint'::regtype THEN ARRAY['1::bigint', '0::bigint', '-1::bigint', '-9223372036854775808::bigint',
        '9223372036854775807::bigint', 'NULL::bigint']
    WHEN 'integer'::regtype THEN ARRAY['10', '0', '-1', '2147483647', '-2147483648', 'NULL::integer']
    WHEN 'boolean'::regtype THEN ARRAY['true', 'false', 'NULL::boolean']
    WHEN 'uuid'::regtype THEN ARRAY['''00000000-0000-0000-0000-0000000000aa''::uuid',
        '(SELECT node_id FROM idsync.node)', 'NULL::uuid']
    WHEN 'interval'::regtype THEN ARRAY['''1 day''::interval', '''-1 day''::interval', '''0''::interval',
        '''178000000 years''::interval', 'NULL::interval']
    WHEN 'jsonb'::regtype THEN ARRAY['''[{"point": 1, "item": {"name": "n"}}]''::jsonb', '''[]''::jsonb',
        '''{}''::jsonb', '''"x"''::jsonb', '''null''::jsonb', '''[null]''::jsonb',
        '''[{"point": -1, "item": {}}]''::jsonb', '''[{"point": 1e300, "item": {}}]''::jsonb',
        '''[{"point": 1.5, "item": {"name": 1}}]''::jsonb',
        '''[{"point": 1, "item": {"name": {"x": [1, 2]}, "reg_id": {"name": [1]}}}]''::jsonb',
        '''[{"point": 1, "item": {"name": "n", "idsync_version": 9223372036854775807, "idsync_deleted": true}}]''::jsonb',
        '''[{"remote_id": "zzz", "sync_point": 1}]''::jsonb',
        '''[{"remote_id": "00000000-0000-0000-0000-0000000000bb", "sync_point": 1e30}]''::jsonb',
        '''[{"item": {"name": "x"}, "sqlstate": "23505", "message": "m"}]''::jsonb',
        '(repeat(''['', 5000) || repeat('']'', 5000))::jsonb', 'NULL::jsonb']
    WHEN 'regrole'::regtype THEN ARRAY['''idsync_fuzz_usage''::regrole', '''pg_read_all_data''::regrole', 'NULL::regrole']
    WHEN 'record'::regtype THEN ARRAY['(SELECT r FROM fz.reg r LIMIT 1)', 'ROW(1, ''a'')', 'NULL::fz.comp']
    WHEN '"any"'::regtype THEN ARRAY['ARRAY[''a'', ''b'']', 'ARRAY[1, 2]', '''{}''::text[]', 'NULL::text[]',
        'ARRAY[[1], [2]]', '''x''::text', 'ARRAY(SELECT ''k'' || g FROM generate_series(1, 100000) g)',
        'ARRAY[NULL::text]']
    ELSE ARRAY['NULL'] END)
$$;

-- Calls every function with each candidate in each position (the others at their first
-- candidate), and once with every argument NULL; returns what went wrong.
CREATE FUNCTION fz.run() RETURNS TABLE (functions integer, calls integer, failures text[])
LANGUAGE plpgsql AS $$
DECLARE
    fn record;
    arg_sets text[];
    baseline text[];
    args text;
    i integer;
    c text;
    state text;
BEGIN
    functions := 0;
    calls := 0;
    failures := '{}';
    FOR fn IN SELECT p.oid, p.proname, ARRAY(SELECT unnest(p.proargtypes::regtype[])) AS types
              FROM pg_proc p WHERE p.pronamespace = 'idsync'::regnamespace ORDER BY p.proname, p.oid LOOP
        functions := functions + 1;
        baseline := ARRAY(SELECT (SELECT fz.candidates(t) LIMIT 1) FROM unnest(fn.types) t);
        arg_sets := ARRAY[array_to_string(baseline, ', '),
                          coalesce((SELECT string_agg('NULL', ', ') FROM unnest(fn.types)), '')];
        FOR i IN 1 .. coalesce(array_length(fn.types, 1), 0) LOOP
            FOR c IN SELECT fz.candidates(fn.types[i]) LOOP
                arg_sets := arg_sets || array_to_string(baseline[1:i - 1] || c || baseline[i + 1:], ', ');
            END LOOP;
        END LOOP;
        FOREACH args IN ARRAY arg_sets LOOP
            calls := calls + 1;
            BEGIN
                EXECUTE format('SELECT * FROM idsync.%I(%s)', fn.proname, args);
                RAISE EXCEPTION USING ERRCODE = 'ZZ999'; -- undo what the call did
            EXCEPTION WHEN OTHERS THEN
                state := SQLSTATE;
                IF state LIKE 'XX%' OR state = '57014' THEN
                    failures := failures || format('%s(%s): %s %s', fn.proname, left(args, 200), state, SQLERRM);
                END IF;
            END;
        END LOOP;
    END LOOP;
    RETURN NEXT;
END $$;
GRANT EXECUTE ON FUNCTION fz.run(), fz.candidates(regtype) TO idsync_fuzz_usage;
GRANT USAGE ON SCHEMA fz TO idsync_fuzz_usage;

SET statement_timeout = '60s';
SELECT functions > 70 AS every_function, calls > 1000 AS many_calls, failures FROM fz.run();
SET ROLE idsync_fuzz_usage;
SELECT functions > 70 AS every_function, calls > 1000 AS many_calls, failures FROM fz.run();
RESET ROLE;
RESET statement_timeout;
-- Still whole: the registered tables and their state.
SELECT (SELECT row_count FROM idsync.sync_info('fz.reg')) AS reg_rows,
       (SELECT count(*) FROM fz.reg) AS reg_count;
DISCARD TEMP;
DROP SCHEMA fz CASCADE;
DROP OWNED BY idsync_fuzz_usage;
DROP ROLE idsync_fuzz_usage;
