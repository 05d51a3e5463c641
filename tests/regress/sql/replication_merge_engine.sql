-- merge_items runs on the insert-missing engine (_merge_batch), which reads each item's values
-- from the jsonb itself. The same batch must leave the same rows when its values are read by
-- jsonb_populate_record into a staging table and merged by merge_staged (staged_merge below):
-- into `fast` by merge_items, into `slow` by staged_merge.
CREATE SCHEMA eng;
SET search_path = eng, public;
CREATE FUNCTION staged_merge(target regclass, items jsonb, source uuid DEFAULT NULL,
                             OUT inserted integer, OUT updated integer, OUT rejected integer)
LANGUAGE plpgsql AS $$
DECLARE
    stage regclass := idsync.create_staging(target, 'items_stage');
BEGIN
    EXECUTE format('INSERT INTO %s SELECT (jsonb_populate_record(NULL::%s, (e -> %L) '
                   '|| jsonb_build_object(%L, e -> %L))).* '
                   'FROM jsonb_array_elements($1) e WHERE jsonb_typeof(e -> %L) = %L',
                   stage, stage, 'item', 'idsync_origin', 'origin', 'item', 'object') USING items;
    EXECUTE format('UPDATE %s SET idsync_origin = coalesce(idsync_origin, $1)', stage) USING source;
    SELECT m.inserted, m.updated, m.rejected INTO inserted, updated, rejected
    FROM idsync.merge_staged(target, stage, NULL, NULL) m;
    EXECUTE format('DROP TABLE %s', stage);
END $$;
CREATE TABLE fast (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, n int, big numeric(10,2),
                   flag boolean, at timestamptz, code varchar(4), doc jsonb, raw json,
                   born date CHECK (born > '2000-01-01'));
CREATE TABLE slow (LIKE fast INCLUDING ALL);
ALTER TABLE slow ALTER id SET DEFAULT nextval('fast_id_seq');
SELECT idsync.replicate('fast', '{name}'), idsync.replicate('slow', '{name}');
INSERT INTO fast (name, n) VALUES ('kept', 1);
INSERT INTO slow (name, n) VALUES ('kept', 1);

-- Values of every kind, as items carry them; keys missing from an item are NULL; a JSON scalar
-- in a json/jsonb column stays JSON; an existing key keeps its row; a key twice in a batch is
-- inserted once; origin defaults to the source.
\set batch '[{"point": 1, "item": {"name": "a", "n": 7, "big": 12.5, "flag": true, "at": "2026-11-29T10:00:00+00:00", "code": "ab", "doc": {"k": [1, 2]}, "raw": "text", "born": "2020-02-02"}, "origin": "00000000-0000-0000-0000-00000000000a"}, {"point": 2, "item": {"name": "b", "doc": "scalar", "raw": {"x": 1}, "flag": false}}, {"point": 3, "item": {"name": "kept", "n": 99}}, {"point": 4, "item": {"name": "c", "n": -1, "big": 0.001}}, {"point": 5, "item": {"name": "c", "n": -2}}, {"point": 6, "item": null}]'
SELECT received, inserted, updated, unchanged, rejected
FROM idsync.merge_items('fast', :'batch', '00000000-0000-0000-0000-0000000000b0');
SELECT * FROM staged_merge('slow', :'batch', '00000000-0000-0000-0000-0000000000b0');
SELECT name, n, big, flag, at, code, doc, raw::text, born, idsync_origin FROM fast ORDER BY name;
SELECT (SELECT array_agg(f ORDER BY f.name) FROM (SELECT name, n, big, flag, at, code, doc,
        raw::text, born, idsync_origin FROM fast) f)::text
     = (SELECT array_agg(s ORDER BY s.name) FROM (SELECT name, n, big, flag, at, code, doc,
        raw::text, born, idsync_origin FROM slow) s)::text AS both_ways_agree;
SELECT (SELECT content_hash FROM idsync.sync_info('fast'))
     = (SELECT content_hash FROM idsync.sync_info('slow')) AS content_hashes_agree;

-- Rows this node refuses are parked, the others merge: a value that does not convert, a
-- varchar too long, a CHECK, a NOT NULL key.
\set bad '[{"point": 7, "item": {"name": "d", "n": "seven"}}, {"point": 8, "item": {"name": "e", "code": "toolong"}}, {"point": 9, "item": {"name": "f", "born": "1999-01-01"}}, {"point": 10, "item": {"n": 5}}, {"point": 11, "item": {"name": "g", "n": 70000}}]'
SELECT received, inserted, updated, unchanged, rejected
FROM idsync.merge_items('fast', :'bad', '00000000-0000-0000-0000-0000000000b0');
SELECT relid::regclass, point, sqlstate FROM idsync.rejects
WHERE relid = 'fast'::regclass ORDER BY point;
SELECT name, n FROM fast WHERE name = 'g';
SELECT idsync._begin_apply('fast', NULL, 'merge'),
       (idsync._merge_batch('fast', '[{"point": 12, "item": {"name": "h"}}, {"point": 13, "item": {"name": "a"}}]', NULL)).inserted AS engine_inserted,
       idsync._end_apply('fast');

-- A table without an id column merges on the engine too.
CREATE TABLE settings (key text PRIMARY KEY, value text);
SELECT idsync.replicate('settings', '{key}');
SELECT received, inserted, unchanged
FROM idsync.merge_items('settings', '[{"point": 1, "item": {"key": "a", "value": "1"}}, {"point": 2, "item": {"key": "a", "value": "2"}}, {"point": 3, "item": {"key": "b"}}]');
SELECT key, value, idsync_origin FROM settings ORDER BY key;
SELECT (idsync._merge_batch('settings', '[{"point": 4, "item": {"key": "c", "value": "3"}}]', NULL)).inserted AS inserted_directly;

-- The engine takes only what the caller may write: a role without rights gets 42501 before
-- anything is locked.
CREATE ROLE eng_nobody;
GRANT USAGE ON SCHEMA idsync, eng TO eng_nobody;
GRANT EXECUTE ON FUNCTION idsync._merge_batch(regclass, jsonb, uuid) TO eng_nobody;
SET ROLE eng_nobody;
SELECT try($$SELECT * FROM idsync._merge_batch('eng.settings', '[{"point": 5, "item": {"key": "x"}}]', NULL)$$);
RESET ROLE;
SELECT count(*) AS still_three FROM settings;
REVOKE ALL ON SCHEMA idsync, eng FROM eng_nobody;
REVOKE ALL ON FUNCTION idsync._merge_batch(regclass, jsonb, uuid) FROM eng_nobody;
DROP ROLE eng_nobody;

-- An operator planted in public for text = text does not run: the engine compares with the
-- index's own operators and its statements are qualified.
CREATE FUNCTION public.planted_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'planted operator ran'; END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.planted_eq);
SET search_path = public, eng;
SELECT received, inserted, unchanged
FROM idsync.merge_items('eng.settings', '[{"point": 6, "item": {"key": "d", "value": "4"}}, {"point": 7, "item": {"key": "a", "value": "9"}}]');
DROP OPERATOR public.= (text, text);
DROP FUNCTION public.planted_eq(text, text);
SET search_path = eng, public;
SELECT key, value, idsync_origin FROM settings ORDER BY key;

-- Translated references resolve on the engine too: each natural key (nested for g, whose
-- reference points at c, whose key holds a reference to p) becomes the local id of its row
-- through the referenced table's key index. The same items merged into a twin set of tables by
-- the staged SQL merge must give the same rows and content hashes. Ids differ between the twins
-- on purpose (p2 draws from p's sequence, c2 starts at 1000).
CREATE TABLE p (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE c (id bigserial PRIMARY KEY, p_id bigint NOT NULL REFERENCES p, name text NOT NULL,
                note text, UNIQUE (p_id, name));
CREATE TABLE g (id bigserial PRIMARY KEY, c_id bigint REFERENCES c, label text NOT NULL UNIQUE);
CREATE TABLE p2 (LIKE p INCLUDING ALL);
CREATE TABLE c2 (id bigserial PRIMARY KEY, p_id bigint NOT NULL REFERENCES p2, name text NOT NULL,
                 note text, UNIQUE (p_id, name));
CREATE TABLE g2 (id bigserial PRIMARY KEY, c_id bigint REFERENCES c2, label text NOT NULL UNIQUE);
ALTER SEQUENCE c2_id_seq RESTART 1000;
SELECT idsync.replicate(t, k) FROM (VALUES ('p', '{name}'::text[]), ('c', '{p_id,name}'),
    ('g', '{label}'), ('p2', '{name}'), ('c2', '{p_id,name}'), ('g2', '{label}')) x(t, k);
\set parents '[{"point": 1, "item": {"name": "x"}}, {"point": 2, "item": {"name": "y"}}]'
\set children '[{"point": 3, "item": {"p_id": {"name": "x"}, "name": "one", "note": "x1"}}, {"point": 4, "item": {"p_id": {"name": "y"}, "name": "one"}}, {"point": 5, "item": {"p_id": {"name": "x"}, "name": "two"}}]'
\set grandchildren '[{"point": 6, "item": {"c_id": {"p_id": {"name": "x"}, "name": "two"}, "label": "L1"}}, {"point": 7, "item": {"c_id": null, "label": "L2"}}, {"point": 8, "item": {"label": "L3"}}]'
SELECT inserted FROM idsync.merge_items('p', :'parents');
SELECT inserted, rejected FROM staged_merge('p2', :'parents');
SELECT idsync._begin_apply('c', NULL, 'merge'),
       (idsync._merge_batch('c', :'children', NULL)).inserted AS engine_inserted,
       idsync._end_apply('c');
SELECT inserted, rejected FROM staged_merge('c2', :'children');
SELECT inserted, rejected FROM idsync.merge_items('g', :'grandchildren');
SELECT inserted, rejected FROM staged_merge('g2', :'grandchildren');
SELECT g.label, c.name, p.name AS parent FROM g LEFT JOIN c ON c.id = g.c_id
LEFT JOIN p ON p.id = c.p_id ORDER BY g.label;
SELECT (SELECT array_agg(row(p.name, c.name, c.note) ORDER BY p.name, c.name) FROM c JOIN p ON p.id = c.p_id)::text
     = (SELECT array_agg(row(p2.name, c2.name, c2.note) ORDER BY p2.name, c2.name) FROM c2 JOIN p2 ON p2.id = c2.p_id)::text
       AS children_agree,
       (SELECT content_hash FROM idsync.sync_info('c')) = (SELECT content_hash FROM idsync.sync_info('c2'))
       AS child_hashes_agree,
       (SELECT content_hash FROM idsync.sync_info('g')) = (SELECT content_hash FROM idsync.sync_info('g2'))
       AS grandchild_hashes_agree;

-- A child whose parent is not here yet: the engine merges the rest and parks the child as
-- waiting; it merges when its parent arrives.
\set waiting '[{"point": 9, "item": {"p_id": {"name": "z"}, "name": "one"}}, {"point": 10, "item": {"p_id": {"name": "y"}, "name": "two"}}]'
SELECT inserted, rejected FROM idsync.merge_items('c', :'waiting');
SELECT point, sqlstate FROM idsync.rejects WHERE relid = 'c'::regclass;
SELECT inserted FROM idsync.merge_items('p', '[{"point": 11, "item": {"name": "z"}}]');
SELECT count(*) AS still_waiting FROM idsync.rejects WHERE relid = 'c'::regclass;
SELECT p.name, c.name FROM c JOIN p ON p.id = c.p_id ORDER BY 1, 2;
-- A natural key that is not an object is refused (22023) and parked.
SELECT inserted, rejected FROM idsync.merge_items('c', '[{"point": 12, "item": {"p_id": 5, "name": "three"}}]');
SELECT point, sqlstate FROM idsync.rejects WHERE relid = 'c'::regclass;

-- merge_staged (bulk) takes the engine too, references resolved (g's c_id); also a table whose
-- key holds a reference (c: read as one chunk), and a staging table whose types differ (cast to
-- the target's types).
BEGIN;
SELECT idsync.create_staging('g', 'g_bulk');
INSERT INTO g_bulk (label, c_id) VALUES ('S1', '{"p_id": {"name": "y"}, "name": "one"}'),
    ('S2', NULL), ('L1', '{"p_id": {"name": "x"}, "name": "one"}');
SELECT idsync._begin_apply('g', NULL, 'merge'),
       (idsync._merge_staged_rows('g', 'pg_temp.g_bulk', NULL)).inserted AS engine_inserted,
       idsync._end_apply('g');
SELECT idsync.create_staging('c', 'c_bulk');
INSERT INTO c_bulk (p_id, name) VALUES ('{"name": "y"}', 'three'), ('{"name": "x"}', 'one');
SELECT idsync._begin_apply('c', NULL, 'merge'),
       (idsync._merge_staged_rows('c', 'pg_temp.c_bulk', NULL)).inserted AS key_reference_inserted,
       idsync._end_apply('c');
CREATE TEMPORARY TABLE fast_text (name text, n text, big text, flag text, at text, code text,
                                  doc text, raw text, born text);
INSERT INTO fast_text (name, n, big, flag) VALUES ('t1', '5', '1.5', 'yes');
SELECT idsync._begin_apply('fast', NULL, 'merge'),
       (idsync._merge_staged_rows('fast', 'pg_temp.fast_text', NULL)).inserted AS other_types_cast,
       idsync._end_apply('fast');
SELECT name, n, big, flag FROM fast WHERE name = 't1';
ROLLBACK;
BEGIN;
SELECT idsync.create_staging('g', 'g_bulk');
INSERT INTO g_bulk (label, c_id) VALUES ('S1', '{"p_id": {"name": "y"}, "name": "one"}'),
    ('S2', NULL), ('S3', '{"p_id": {"name": "nowhere"}, "name": "one"}');
SELECT received, inserted, unchanged, rejected
FROM idsync.merge_staged('g', 'pg_temp.g_bulk', '00000000-0000-0000-0000-0000000000b0', 20);
COMMIT;
SELECT g.label, c.name, p.name AS parent, g.idsync_origin FROM g LEFT JOIN c ON c.id = g.c_id
LEFT JOIN p ON p.id = c.p_id WHERE g.label LIKE 'S%' ORDER BY g.label;
SELECT point, sqlstate, item ->> 'label' AS label FROM idsync.rejects WHERE relid = 'g'::regclass;
-- A staging table that does not exist is 42P01, as for insert_missing_staged.
SELECT try($$SELECT idsync._merge_staged_rows('eng.g', 0::oid::regclass, NULL)$$);

-- A domain judges a NULL too, as jsonb_populate_record has it judged: an item without a value
-- for a NOT NULL domain is parked (23502), not stored as NULL.
CREATE DOMAIN eng.label_text AS text NOT NULL;
CREATE TABLE labelled (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, label eng.label_text);
SELECT idsync.replicate('labelled', '{name}');
SELECT inserted, rejected FROM idsync.merge_items('labelled',
    '[{"point": 1, "item": {"name": "a", "label": "x"}}, {"point": 2, "item": {"name": "b"}}, {"point": 3, "item": {"name": "c", "label": null}}]');
SELECT point, sqlstate FROM idsync.rejects WHERE relid = 'labelled'::regclass ORDER BY point;
SELECT name, label FROM labelled;

-- A reference held in a smaller integer than the referenced id: an id out of its range is
-- 22003 (parked), never cut to fit.
CREATE TABLE big_parent (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE small_child (id bigserial PRIMARY KEY, parent_id integer REFERENCES big_parent,
                          name text NOT NULL UNIQUE);
SELECT idsync.replicate('big_parent', '{name}'), idsync.replicate('small_child', '{name}');
INSERT INTO big_parent (id, name) VALUES (1, 'small'), (3000000000, 'huge');
SELECT inserted, rejected FROM idsync.merge_items('small_child',
    '[{"point": 1, "item": {"name": "ok", "parent_id": {"name": "small"}}}, {"point": 2, "item": {"name": "too big", "parent_id": {"name": "huge"}}}]');
SELECT point, sqlstate FROM idsync.rejects WHERE relid = 'small_child'::regclass;
SELECT c.name, p.name AS parent FROM small_child c JOIN big_parent p ON p.id = c.parent_id;

-- lww on the engine: per key the newest row wins (version, then row hash), within a batch and
-- against the stored row. `kv_fast` by merge_items, `kv_slow` by the staged SQL merge.
CREATE TABLE kv_fast (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, v text);
CREATE TABLE kv_slow (LIKE kv_fast INCLUDING ALL);
SELECT idsync.replicate('kv_fast', '{k}', 'lww'), idsync.replicate('kv_slow', '{k}', 'lww');
CREATE FUNCTION kv(point int, k text, v text, version bigint) RETURNS jsonb LANGUAGE sql AS
$$ SELECT jsonb_build_object('point', point, 'item', jsonb_build_object('k', k, 'v', v,
          'idsync_version', version, 'idsync_deleted', false)) $$;
SELECT jsonb_build_array(kv(1, 'a', 'a10', 10), kv(2, 'b', 'b20', 20), kv(3, 'c', 'c5', 5),
                         kv(4, 'c', 'c7', 7), kv(5, 'd', 'd9 one', 9), kv(6, 'd', 'd9 two', 9),
                         kv(7, 'c', 'c6', 6)) AS first \gset
SELECT jsonb_build_array(kv(8, 'a', 'a5', 5), kv(9, 'b', 'b30', 30), kv(10, 'e', 'e1', 1),
                         kv(11, 'd', 'd9 three', 9), kv(12, 'a', 'a10', 10)) AS second \gset
SELECT received, inserted, updated, unchanged, rejected FROM idsync.merge_items('kv_fast', :'first');
SELECT inserted, updated, rejected FROM staged_merge('kv_slow', :'first');
SELECT received, inserted, updated, unchanged, rejected FROM idsync.merge_items('kv_fast', :'second');
SELECT inserted, updated, rejected FROM staged_merge('kv_slow', :'second');
SELECT k, v, idsync_version FROM kv_fast ORDER BY k;
SELECT (SELECT array_agg(row(k, v, idsync_version) ORDER BY k) FROM kv_fast)::text
     = (SELECT array_agg(row(k, v, idsync_version) ORDER BY k) FROM kv_slow)::text AS lww_ways_agree,
       (SELECT content_hash FROM idsync.sync_info('kv_fast'))
     = (SELECT content_hash FROM idsync.sync_info('kv_slow')) AS lww_hashes_agree;
SELECT (idsync._merge_batch('kv_fast', jsonb_build_array(kv(13, 'f', 'f1', 1)), NULL)).inserted
       AS engine_takes_lww;
-- A row this node holds as new or newer is left alone: it never reaches the INSERT, so no
-- BEFORE INSERT trigger sees it (nor would its lock or constraints be taken).
CREATE TABLE kv_seen (k text);
CREATE FUNCTION kv_seen() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO eng.kv_seen VALUES (NEW.k); RETURN NEW; END $$;
CREATE TRIGGER kv_seen BEFORE INSERT ON kv_fast FOR EACH ROW EXECUTE FUNCTION kv_seen();
SELECT received, inserted, updated, unchanged
FROM idsync.merge_items('kv_fast', jsonb_build_array(kv(14, 'a', 'stale', 3), kv(15, 'b', 'b30', 30),
                                                     kv(16, 'g', 'new', 1)));
SELECT k FROM kv_seen ORDER BY k;
DROP TRIGGER kv_seen ON kv_fast;
-- _natural_row_hash takes a row's columns by name, of the table's types only (a row of other
-- types is refused, never hashed with the wrong functions).
SELECT try($$SELECT idsync._natural_row_hash('eng.kv_fast', x) FROM (SELECT 'a'::text AS k, 42::bigint AS v) x$$);
SELECT idsync._natural_row_hash('eng.kv_fast', x) = idsync.row_hash(x, '{id,idsync_point,idsync_origin}')
       AS same_hash_without_references
FROM (SELECT k, v, idsync_version FROM kv_fast WHERE k = 'a') x;
-- An lww table with references: version ties are broken by row hashes over natural keys, not
-- local ids (_natural_row_hash), in the batch and against the stored row, the same on the
-- engine (tree_fast) as in the staged SQL merge (tree_slow), whose ids differ.
CREATE TABLE tree_fast (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE,
                        parent_id bigint REFERENCES tree_fast);
CREATE TABLE tree_slow (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE,
                        parent_id bigint REFERENCES tree_slow);
ALTER SEQUENCE tree_slow_id_seq RESTART 500;
SELECT idsync.replicate('tree_fast', '{name}', 'lww'), idsync.replicate('tree_slow', '{name}', 'lww');
CREATE FUNCTION node(point int, name text, parent text, version bigint) RETURNS jsonb LANGUAGE sql AS
$$ SELECT jsonb_build_object('point', point, 'item', jsonb_build_object('name', name,
          'parent_id', CASE WHEN parent IS NOT NULL THEN jsonb_build_object('name', parent) END,
          'idsync_version', version, 'idsync_deleted', false)) $$;
SELECT jsonb_build_array(node(1, 'root', NULL, 1), node(2, 'a', NULL, 1), node(3, 'b', NULL, 1))
       AS roots \gset
SELECT jsonb_build_array(node(4, 'leaf', 'a', 5), node(5, 'leaf', 'b', 5), node(6, 'twig', 'root', 5))
       AS ties \gset
SELECT jsonb_build_array(node(7, 'twig', 'a', 5), node(8, 'leaf', 'root', 5), node(9, 'twig', 'b', 5))
       AS more_ties \gset
SELECT inserted, updated FROM idsync.merge_items('tree_fast', :'roots');
SELECT inserted, updated, rejected FROM staged_merge('tree_slow', :'roots');
SELECT idsync._begin_apply('tree_fast', NULL, 'merge'),
       (idsync._merge_batch('tree_fast', :'ties', NULL)).inserted AS engine_takes_lww_references,
       idsync._end_apply('tree_fast');
SELECT inserted, updated, rejected FROM staged_merge('tree_slow', :'ties');
SELECT inserted, updated, unchanged FROM idsync.merge_items('tree_fast', :'more_ties');
SELECT inserted, updated, rejected FROM staged_merge('tree_slow', :'more_ties');
SELECT (SELECT array_agg(row(c.name, p.name) ORDER BY c.name) FROM tree_fast c LEFT JOIN tree_fast p ON p.id = c.parent_id)::text
     = (SELECT array_agg(row(c.name, p.name) ORDER BY c.name) FROM tree_slow c LEFT JOIN tree_slow p ON p.id = c.parent_id)::text
       AS trees_agree,
       (SELECT content_hash FROM idsync.sync_info('tree_fast'))
     = (SELECT content_hash FROM idsync.sync_info('tree_slow')) AS tree_hashes_agree;
SELECT c.name, p.name AS parent, c.idsync_version FROM tree_fast c
LEFT JOIN tree_fast p ON p.id = c.parent_id ORDER BY c.name;

-- Array and composite columns, in insert_only and lww tables: read as jsonb_populate_record
-- reads them (a JSON array element by element, an object field by field, a string as the
-- type's text), the same both ways; a value that does not convert parks its row only.
CREATE TYPE eng.dims AS (w int, h int);
CREATE TABLE shapes (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, tags text[],
                     grid int[], size eng.dims, sizes eng.dims[]);
CREATE TABLE shapes2 (LIKE shapes INCLUDING ALL);
CREATE TABLE shapes_lww (LIKE shapes INCLUDING ALL);
SELECT idsync.replicate('shapes', '{name}'), idsync.replicate('shapes2', '{name}'),
       idsync.replicate('shapes_lww', '{name}', 'lww');
\set shapes '[{"point": 1, "item": {"name": "a", "tags": ["x", "y"], "grid": [[1, 2], [3, 4]], "size": {"w": 1, "h": 2}, "sizes": [{"w": 3, "h": 4}]}}, {"point": 2, "item": {"name": "b", "tags": "{p,q}", "size": "(5,6)"}}, {"point": 3, "item": {"name": "c", "size": {"w": "wide"}}}, {"point": 4, "item": {"name": "d", "grid": [1, [2]]}}, {"point": 5, "item": {"name": "e"}}]'
SELECT received, inserted, rejected FROM idsync.merge_items('shapes', :'shapes');
SELECT name, tags, grid, size, sizes FROM shapes ORDER BY name;
SELECT point, sqlstate FROM idsync.rejects WHERE relid = 'shapes'::regclass ORDER BY point;
SELECT inserted, rejected FROM staged_merge('shapes2', '[{"point": 1, "item": {"name": "a", "tags": ["x", "y"], "grid": [[1, 2], [3, 4]], "size": {"w": 1, "h": 2}, "sizes": [{"w": 3, "h": 4}]}}, {"point": 2, "item": {"name": "b", "tags": "{p,q}", "size": "(5,6)"}}, {"point": 5, "item": {"name": "e"}}]');
SELECT (SELECT content_hash FROM idsync.sync_info('shapes'))
     = (SELECT content_hash FROM idsync.sync_info('shapes2')) AS array_hashes_agree;
SELECT inserted, updated, rejected FROM idsync.merge_items('shapes_lww',
    '[{"point": 1, "item": {"name": "a", "tags": ["old"], "idsync_version": 1, "idsync_deleted": false}},
      {"point": 2, "item": {"name": "a", "tags": ["new"], "size": {"w": 7, "h": 7}, "idsync_version": 2, "idsync_deleted": false}}]');
SELECT inserted, updated, rejected FROM idsync.merge_items('shapes_lww',
    '[{"point": 3, "item": {"name": "a", "tags": ["newer", "still"], "grid": [[9]], "idsync_version": 3, "idsync_deleted": false}}]');
SELECT name, tags, grid, size, idsync_version FROM shapes_lww;

-- Refused rows in a bulk merge: the load is written as it comes; when the table refuses a row,
-- it is written again by halves, and only the refused rows are parked. A row whose parent row
-- (a plain foreign key, on replicated columns) is missing waits.
CREATE TABLE kinds (name text PRIMARY KEY);
CREATE TABLE things (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE,
                     kind text REFERENCES kinds, weight int CHECK (weight < 100),
                     idsync_version bigint NOT NULL DEFAULT 0);
SELECT idsync.replicate('kinds', '{name}'), idsync.replicate('things', '{name}', 'lww');
INSERT INTO kinds VALUES ('tool');
BEGIN;
SELECT idsync.create_staging('things', 'things_bulk') IS NOT NULL AS staged;
INSERT INTO things_bulk (name, kind, weight, idsync_version)
SELECT 'thing ' || g, CASE WHEN g = 7 THEN 'toy' ELSE 'tool' END,
       CASE WHEN g IN (3, 250) THEN 500 ELSE g % 90 END, 1
FROM generate_series(1, 300) g;
SELECT received, inserted, updated, unchanged, rejected
FROM idsync.merge_staged('things', 'things_bulk', NULL, NULL);
COMMIT;
SELECT count(*) AS things FROM things;
SELECT item ->> 'name' AS name, sqlstate, left(message, 40) AS message
FROM idsync.rejects WHERE relid = 'things'::regclass ORDER BY item ->> 'name';
INSERT INTO kinds VALUES ('toy');
SELECT idsync.retry_waiting('kinds') AS merged_after_parent;
SELECT name, kind FROM things WHERE name = 'thing 7';

-- The statements merges and insert_missing run are prepared once per backend: a table made
-- again under the same name, with another type, gets statements of its own.
CREATE TABLE remade (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, n int);
SELECT idsync.replicate('remade', '{name}');
SELECT inserted FROM idsync.merge_items('remade', '[{"point": 1, "item": {"name": "a", "n": 1}}]');
SELECT count(*) AS ids FROM idsync.insert_missing('remade', '{name,n}', ARRAY['b'], ARRAY[2]);
SELECT idsync.unreplicate('remade');
DROP TABLE remade;
CREATE TABLE remade (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, n text);
SELECT idsync.replicate('remade', '{name}');
SELECT inserted FROM idsync.merge_items('remade', '[{"point": 1, "item": {"name": "a", "n": "one"}}]');
SELECT count(*) AS ids FROM idsync.insert_missing('remade', '{name,n}', ARRAY['b'], ARRAY['two']);
SELECT name, n FROM remade ORDER BY name;
SELECT idsync.unreplicate('remade');

RESET search_path;
SELECT idsync.unreplicate(t) FROM unnest('{eng.kv_fast,eng.kv_slow,eng.tree_fast,eng.tree_slow}'::regclass[]) t;
SELECT idsync.unreplicate(t) FROM unnest('{eng.labelled,eng.small_child,eng.big_parent}'::regclass[]) t;
SELECT idsync.unreplicate(t) FROM unnest('{eng.g,eng.c,eng.p,eng.g2,eng.c2,eng.p2}'::regclass[]) t;
SELECT idsync.unreplicate('eng.fast'), idsync.unreplicate('eng.slow'), idsync.unreplicate('eng.settings');
SELECT idsync.unreplicate(t) FROM unnest('{eng.shapes,eng.shapes2,eng.shapes_lww,eng.things,eng.kinds}'::regclass[]) t;
SET client_min_messages = warning; -- (the cascade names session temp tables)
DROP SCHEMA eng CASCADE;
RESET client_min_messages;
