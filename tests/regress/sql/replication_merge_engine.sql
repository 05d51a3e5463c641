-- merge_items into insert_only tables runs on the insert-missing engine (_merge_new_rows); the
-- one-statement SQL merge of the table's plan remains for what the engine does not take. The
-- same batch merged both ways must leave the same rows: into `fast` by merge_items, into `slow`
-- by the plan's statement (sql_merge below).
CREATE SCHEMA eng;
SET search_path = eng, public;
CREATE FUNCTION sql_merge(target regclass, items jsonb, source uuid,
                          OUT inserted integer, OUT updated integer)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM idsync._begin_apply(target, NULL, 'merge');
    EXECUTE (SELECT plan ->> 'merge_batch' FROM idsync.tables WHERE relid = target)
    INTO inserted, updated USING items, source;
    PERFORM idsync._end_apply(target);
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
SELECT * FROM sql_merge('slow', :'batch', '00000000-0000-0000-0000-0000000000b0');
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
       idsync._merge_new_rows('fast', '[{"point": 12, "item": {"name": "h"}}, {"point": 13, "item": {"name": "a"}}]', NULL) AS engine_inserted,
       idsync._end_apply('fast');

-- A table without an id column merges on the engine too.
CREATE TABLE settings (key text PRIMARY KEY, value text);
SELECT idsync.replicate('settings', '{key}');
SELECT received, inserted, unchanged
FROM idsync.merge_items('settings', '[{"point": 1, "item": {"key": "a", "value": "1"}}, {"point": 2, "item": {"key": "a", "value": "2"}}, {"point": 3, "item": {"key": "b"}}]');
SELECT key, value, idsync_origin FROM settings ORDER BY key;
SELECT idsync._merge_new_rows('settings', '[{"point": 4, "item": {"key": "c", "value": "3"}}]', NULL) AS inserted_directly;

-- The engine takes only what the caller may write: a role without rights gets 42501 before
-- anything is locked.
CREATE ROLE eng_nobody;
GRANT USAGE ON SCHEMA idsync, eng TO eng_nobody;
GRANT EXECUTE ON FUNCTION idsync._merge_new_rows(regclass, jsonb, uuid) TO eng_nobody;
SET ROLE eng_nobody;
SELECT try($$SELECT idsync._merge_new_rows('eng.settings', '[{"point": 5, "item": {"key": "x"}}]', NULL)$$);
RESET ROLE;
SELECT count(*) AS still_three FROM settings;
REVOKE ALL ON SCHEMA idsync, eng FROM eng_nobody;
REVOKE ALL ON FUNCTION idsync._merge_new_rows(regclass, jsonb, uuid) FROM eng_nobody;
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

RESET search_path;
SELECT idsync.unreplicate('eng.fast'), idsync.unreplicate('eng.slow'), idsync.unreplicate('eng.settings');
DROP SCHEMA eng CASCADE;
