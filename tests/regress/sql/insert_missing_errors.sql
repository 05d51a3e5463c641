-- Bad input gets a clear error with the right SQLSTATE, and inserts nothing.
SET client_min_messages = warning;
CREATE SCHEMA insert_missing_errors;
SET search_path = insert_missing_errors, public;

CREATE TABLE pkg (id bigserial PRIMARY KEY, name text UNIQUE, version int, note text, arr int[], blob json);
CREATE UNIQUE INDEX ON pkg (name, version);
CREATE VIEW pkg_view AS SELECT * FROM pkg;
CREATE TABLE parted (id bigint, name text) PARTITION BY RANGE (id);
CREATE TABLE no_id (name text PRIMARY KEY, other int);
CREATE TABLE no_index (id bigserial PRIMARY KEY, name text);
CREATE TABLE gen (id bigserial PRIMARY KEY, name text UNIQUE, len int GENERATED ALWAYS AS (length(name)) STORED);
CREATE SEQUENCE seq;

-- Unknown column (42703), system column, duplicate column, NULL and empty column lists.
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{nam}', ARRAY['a'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{ctid}', ARRAY['(0,1)'::tid])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name,name}', ARRAY['a'], ARRAY['a'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name,NULL}', ARRAY['a'], ARRAY['a'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{}', ARRAY['a'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', NULL, ARRAY['a'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing(NULL, '{name}', ARRAY['a'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{{name}}', ARRAY['a'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('gen', '{name,len}', ARRAY['a'], ARRAY[1])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{arr}', ARRAY[ARRAY[1]])$$);

-- Not a plain table (42809).
SELECT try($$SELECT * FROM idsync.insert_missing('pkg_view', '{name}', ARRAY['a'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('parted', '{name}', ARRAY['a'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('seq', '{name}', ARRAY['a'])$$);

-- No id column (42P16), no unique index among the columns (42P10).
SELECT try($$SELECT * FROM idsync.insert_missing('no_id', '{name}', ARRAY['a'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('no_index', '{name}', ARRAY['a'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{version}', ARRAY[1])$$);

-- Value arrays: count must match columns, lengths must match (22023).
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name,version}', ARRAY['a'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name}', ARRAY['a'], ARRAY[1])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name,version}', ARRAY['a', 'b'], ARRAY[1])$$);
-- Not an array, multi-dimensional, uncastable element type, VARIADIC array (42804).
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name}', 'a'::text)$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name}', 42)$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name}', ARRAY[['a', 'b'], ['c', 'd']])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name,version}', ARRAY['a'], ARRAY['1'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name,version}', ARRAY['a'], ARRAY[now()])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name}', VARIADIC ARRAY[ARRAY['a']])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name}', NULL::text[])$$);
-- A malformed literal is the type's own input error (22P02).
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name,version}', '{a}', '{x}')$$);
-- A given column without an ordering (json) cannot take part in identity (42883).
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name,blob}', ARRAY['a'], ARRAY['{}'::json])$$);

-- Partial index: a row outside the predicate (22023).
CREATE TABLE tag (id bigserial PRIMARY KEY, name text, live boolean);
CREATE UNIQUE INDEX tag_live ON tag (name) WHERE live;
SELECT try($$SELECT * FROM idsync.insert_missing('tag', '{name,live}', ARRAY['a', 'b'], ARRAY[true, false])$$);

-- No error above inserted anything.
SELECT (SELECT count(*) FROM pkg) + (SELECT count(*) FROM tag) + (SELECT count(*) FROM gen) AS rows_inserted;

-- A table dropped between calls, and the table argument as text.
SELECT try($$SELECT * FROM idsync.insert_missing('missing_table', '{name}', ARRAY['a'])$$);

-- A table with an INSERT rule: ON CONFLICT's 0A000 once rows must be inserted, for a small
-- batch (all looked up) and a large one (sampled) alike; nothing inserted, the rule never ran.
CREATE TABLE ruled (id bigserial PRIMARY KEY, k int UNIQUE);
CREATE TABLE ruled_log (k int);
CREATE RULE ruled_also AS ON INSERT TO ruled DO ALSO INSERT INTO ruled_log VALUES (NEW.k);
SELECT try($$SELECT * FROM idsync.insert_missing('ruled', '{k}', ARRAY[1, 2])$$);
SELECT try($$SELECT * FROM idsync.insert_missing('ruled', '{k}', ARRAY(SELECT g FROM generate_series(1, 1000) g))$$);
SELECT (SELECT count(*) FROM ruled) AS rows, (SELECT count(*) FROM ruled_log) AS rule_ran;
DROP TABLE ruled, ruled_log;
