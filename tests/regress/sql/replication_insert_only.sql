-- Replication state for an insert_only table: registration, change points, preflight, items,
-- merges (with rejects and idempotence), sync points, unregistration. Two schemas play two
-- nodes; the multi-database scenarios are in tests/tap.
CREATE SCHEMA rep_a;
CREATE SCHEMA rep_b;
SET search_path = rep_a, public;

-- Node identity.
SELECT idsync.node_id() = (SELECT node_id FROM idsync.node) AS node_id_is_stored;
SELECT idsync.node_id() AS before \gset
SELECT idsync.reset_node_id() <> :'before'::uuid AS reset_gives_a_new_id;
SELECT idsync.node_id() <> :'before'::uuid AS node_id_follows;
UPDATE idsync.node SET database_oid = 1;
SELECT regexp_replace(try('SELECT idsync.node_id()'), '[0-9a-f-]{36}', '<uuid>') AS try;
SELECT idsync.reset_node_id() IS NOT NULL AS reset_repairs_a_copy;

CREATE TABLE rep_a.pkg (id bigserial PRIMARY KEY, name text NOT NULL, version text NOT NULL,
                        size int, UNIQUE (name, version));
CREATE TABLE rep_b.pkg (id serial PRIMARY KEY, version text NOT NULL, name text NOT NULL,
                        size int CHECK (size < 1000), UNIQUE (name, version));
INSERT INTO rep_a.pkg (name, version, size) VALUES ('gcc', '12', 10), ('make', '4.3', 2);

-- Registration errors.
SELECT try($$SELECT idsync.replicate(NULL, '{name}')$$);
SELECT try($$SELECT idsync.replicate('rep_a.pkg', NULL)$$);
SELECT try($$SELECT idsync.replicate('rep_a.pkg', '{}')$$);
SELECT try($$SELECT idsync.replicate('rep_a.pkg', '{name,version}', 'multi_master')$$);
SELECT try($$SELECT idsync.replicate('rep_a.pkg', '{name,version}', 'insert_only', 'v')$$);
SELECT try($$SELECT idsync.replicate('rep_a.pkg', '{name,nope}')$$);
SELECT try($$SELECT idsync.replicate('rep_a.pkg', '{name,name}')$$);
SELECT try($$SELECT idsync.replicate('rep_a.pkg', '{name}')$$);
SELECT try($$SELECT idsync.replicate('rep_a.pkg', '{name,version}', local_columns => '{nope}')$$);
SELECT try($$SELECT idsync.replicate('rep_a.pkg', '{name,version}', local_columns => '{name}')$$);
CREATE TABLE nullable (id serial PRIMARY KEY, name text UNIQUE);
SELECT try($$SELECT idsync.replicate('nullable', '{name}')$$);
CREATE TABLE nulls_not_distinct (id serial PRIMARY KEY, name text UNIQUE NULLS NOT DISTINCT);
SELECT try($$SELECT idsync.replicate('nulls_not_distinct', '{name}')$$);
CREATE VIEW a_view AS SELECT * FROM rep_a.pkg;
SELECT try($$SELECT idsync.replicate('a_view', '{name}')$$);
CREATE TEMPORARY TABLE temp_t (name text PRIMARY KEY);
SELECT try($$SELECT idsync.replicate('temp_t', '{name}')$$);
SELECT try($$SELECT idsync.replicate('idsync.rejects', '{reject_id}')$$);

-- Registration: existing rows get points; the surrogate id and the point are local.
SELECT idsync.replicate('rep_a.pkg', '{version,name}');
SELECT try($$SELECT idsync.replicate('rep_a.pkg', '{name,version}')$$);
SELECT idsync.replicate('rep_b.pkg', '{name,version}');
SELECT relid, key_columns, mode, point_column, local_columns FROM idsync.tables ORDER BY relid::text;
SELECT count(*) AS rows_without_point FROM rep_a.pkg WHERE idsync_point IS NULL;

-- insert_only rows are immutable.
SELECT try($$UPDATE rep_a.pkg SET size = 11 WHERE name = 'gcc'$$);
SELECT try($$DELETE FROM rep_a.pkg WHERE name = 'gcc'$$);
SELECT try($$DELETE FROM rep_a.pkg WHERE false$$);
SELECT try($$TRUNCATE rep_a.pkg$$);

-- Every write, insert_missing included, gets a new point; the preflight agrees with a full
-- recomputation of the content.
SELECT count(*) FROM idsync.insert_missing('rep_a.pkg', ARRAY['name', 'version', 'size'],
    ARRAY['gcc', 'bash', 'coreutils'], ARRAY['12', '5.2', '9.1'], ARRAY[10, 1, 3]);
SELECT name, idsync_point > 0 AS has_point FROM rep_a.pkg ORDER BY idsync_point;
CREATE FUNCTION check_info(t regclass) RETURNS TABLE (row_count bigint, hash_matches boolean)
LANGUAGE sql AS $$
    SELECT i.row_count,
           i.content_hash = lpad(to_hex(h.hash1), 16, '0') || lpad(to_hex(h.hash2), 16, '0')
               AND i.row_count = h.row_count
    FROM idsync.sync_info(t) i,
         idsync.table_hash(t, (SELECT local_columns::text[] FROM idsync.tables WHERE relid = t)) h
$$;
SELECT * FROM check_info('rep_a.pkg');
SELECT max_point = (SELECT max(idsync_point) FROM rep_a.pkg) AS max_point_is_last, rejects
FROM idsync.sync_info('rep_a.pkg');
-- A rolled-back write leaves the content as it was.
BEGIN;
INSERT INTO rep_a.pkg (name, version) VALUES ('rolled', 'back');
ROLLBACK;
SELECT * FROM check_info('rep_a.pkg');

-- items_since: point order, paging, the row by column name without local columns.
SELECT item FROM idsync.items_since('rep_a.pkg', 0, 2);
SELECT count(*) FROM idsync.items_since('rep_a.pkg', 0, 100);
SELECT max(point) AS page2 FROM idsync.items_since('rep_a.pkg', 0, 2) \gset
SELECT item FROM idsync.items_since('rep_a.pkg', :page2, 100);
SELECT count(*) AS after_last FROM idsync.items_since('rep_a.pkg', (SELECT max(idsync_point) FROM rep_a.pkg), 100);
SELECT try($$SELECT * FROM idsync.items_since('rep_a.pkg', NULL, 10)$$);
SELECT try($$SELECT * FROM idsync.items_since('rep_a.pkg', 0, 0)$$);
SELECT try($$SELECT * FROM idsync.items_since('nullable', 0, 10)$$);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT try($$SELECT * FROM idsync.items_since('rep_a.pkg', 0, 10)$$);
ROLLBACK;

-- merge_items: everything into rep_b, twice; the second time changes nothing.
SELECT jsonb_agg(i ORDER BY i.point) AS items FROM idsync.items_since('rep_a.pkg', 0, 100) i \gset
SELECT (SELECT max(idsync_point) FROM rep_a.pkg) AS a_last \gset
SELECT received, inserted, updated, unchanged, rejected, sync_point = :a_last AS sync_is_last
FROM idsync.merge_items('rep_b.pkg', :'items', '00000000-0000-0000-0000-00000000000a');
SELECT received, inserted, updated, unchanged, rejected, sync_point = :a_last AS sync_is_last
FROM idsync.merge_items('rep_b.pkg', :'items', '00000000-0000-0000-0000-00000000000a');
SELECT name, version, size FROM rep_b.pkg ORDER BY name;
SELECT (SELECT content_hash FROM idsync.sync_info('rep_a.pkg'))
     = (SELECT content_hash FROM idsync.sync_info('rep_b.pkg')) AS same_content;
SELECT * FROM check_info('rep_b.pkg');

-- Malformed batches are refused whole, with nothing merged and no sync point moved.
SELECT try($$SELECT * FROM idsync.merge_items('rep_b.pkg', NULL)$$);
SELECT try($$SELECT * FROM idsync.merge_items('rep_b.pkg', '{"point": 1}')$$);
SELECT try($$SELECT * FROM idsync.merge_items('rep_b.pkg', '[1, 2]')$$);
SELECT try($$SELECT * FROM idsync.merge_items('rep_b.pkg', '[{"point": 1}]')$$);
SELECT try($$SELECT * FROM idsync.merge_items('rep_b.pkg', '[{"point": "x", "item": {}}]')$$);
SELECT try($$SELECT * FROM idsync.merge_items('rep_b.pkg', '[{"point": 1.5, "item": {}}]')$$);
SELECT try($$SELECT * FROM idsync.merge_items('rep_b.pkg', '[{"point": 5.0, "item": {}}]')$$);
SELECT try($$SELECT * FROM idsync.merge_items('rep_b.pkg', '[{"point": -1, "item": {}}]')$$);
SELECT try($$SELECT * FROM idsync.merge_items('rep_b.pkg', '[{"point": 1, "item": {}}, {"point": 1e30, "item": {}}]')$$);
-- A large malformed item is named by its position, not quoted.
SELECT regexp_replace(try(format($$SELECT * FROM idsync.merge_items('rep_b.pkg', %L)$$,
           jsonb_build_array(jsonb_build_object('point', 1, 'item', NULL),
                             jsonb_build_object('point', -1, 'item', repeat(E'\x01', 100000))))),
       '\d+ bytes', 'N bytes') AS large;
SELECT try($$SELECT * FROM idsync.merge_items('rep_b.pkg', '[{"point": 1, "item": {}, "origin": 7}]')$$);
SELECT try($$SELECT * FROM idsync.merge_items('rep_b.pkg', '[{"point": 1, "item": null, "origin": "00000000-0000-0000-0000-0000000000aa"}, {"point": 2, "item": null, "origin": "node b"}]')$$);
SELECT try($$SELECT * FROM idsync.merge_items('nullable', '[]')$$);
SELECT try($$SELECT * FROM idsync.merge_items('rep_b.pkg', '[]', 'not-a-uuid')$$);
SELECT * FROM idsync.merge_items('rep_b.pkg', '[]', '00000000-0000-0000-0000-00000000000a');

-- Rows the receiver refuses are parked, counted, and the rest of the batch merges; the sync
-- point still moves past them.
SELECT received, inserted, updated, unchanged, rejected, sync_point
FROM idsync.merge_items('rep_b.pkg', '[
    {"point": 100, "item": {"name": "huge", "version": "1", "size": 5000}},
    {"point": 101, "item": {"name": "badsize", "version": "1", "size": "x"}},
    {"point": 102, "item": {"name": "extra", "version": "1", "colour": "red"}},
    {"point": 103, "item": {"name": "nokey", "size": 1}},
    {"point": 104, "item": {"name": "fine", "version": "1", "size": 1}}
]', '00000000-0000-0000-0000-00000000000a');
SELECT point, item, sqlstate, message FROM idsync.rejects ORDER BY point;
SELECT rejects FROM idsync.sync_info('rep_b.pkg');
SELECT * FROM check_info('rep_b.pkg');
-- Once the receiver accepts them, retry_rejects merges them; the others stay parked.
ALTER TABLE rep_b.pkg DROP CONSTRAINT pkg_size_check;
SELECT * FROM idsync.retry_rejects('rep_b.pkg');
SELECT point, sqlstate, source FROM idsync.rejects ORDER BY point;
SELECT name, size FROM rep_b.pkg WHERE name IN ('huge', 'fine') ORDER BY name;

-- Sync points: -1 when unknown, only ever up, per direction.
SELECT idsync.get_sync('rep_b.pkg', '00000000-0000-0000-0000-00000000000a') AS incoming;
SELECT idsync.get_sync('rep_b.pkg', '00000000-0000-0000-0000-00000000000a', false) AS outgoing;
SELECT idsync.get_sync('rep_b.pkg', '00000000-0000-0000-0000-00000000000b') AS unknown;
SELECT try($$SELECT idsync.get_sync('rep_b.pkg', NULL)$$);
SELECT try($$SELECT idsync.get_sync('nullable', '00000000-0000-0000-0000-00000000000a')$$);
SELECT idsync.merge_syncs('rep_b.pkg', jsonb_build_array(
    jsonb_build_object('remote_id', '00000000-0000-0000-0000-00000000000a', 'sync_point', 5),
    jsonb_build_object('remote_id', '00000000-0000-0000-0000-00000000000c', 'sync_point', 7),
    jsonb_build_object('remote_id', idsync.node_id(), 'sync_point', 9))) AS merged;
SELECT remote_id, sync_point FROM idsync.get_syncs('rep_b.pkg');
SELECT idsync.merge_syncs('rep_b.pkg', '[{"remote_id": "00000000-0000-0000-0000-00000000000c", "sync_point": 3}]', false);
SELECT remote_id, sync_point FROM idsync.get_syncs('rep_b.pkg', false);
SELECT try($$SELECT idsync.merge_syncs('rep_b.pkg', '{}')$$);
SELECT try($$SELECT idsync.merge_syncs('rep_b.pkg', '[{"remote_id": 1, "sync_point": 3}]')$$);
SELECT try($$SELECT idsync.merge_syncs('rep_b.pkg', '[{"remote_id": "xyz", "sync_point": 3}]')$$);
-- Transitive sync: after a complete push, the receiver takes over the sender's incoming points.
SELECT idsync.merge_syncs('rep_a.pkg', (SELECT jsonb_agg(s) FROM idsync.get_syncs('rep_b.pkg') s));
SELECT remote_id, sync_point FROM idsync.get_syncs('rep_a.pkg');

-- merge_staged: a staging table filled by COPY, same rules, sync point set to `point`.
CREATE TEMPORARY TABLE staged AS SELECT name, version, size FROM rep_a.pkg WITH NO DATA;
INSERT INTO staged (name, version, size) SELECT 'lib' || g, '1', g FROM generate_series(1, 5) g;
INSERT INTO staged (name, version, size) VALUES ('gcc', '12', 10);
SELECT * FROM idsync.merge_staged('rep_b.pkg', 'staged', '00000000-0000-0000-0000-00000000000d', 42);
SELECT * FROM idsync.merge_staged('rep_b.pkg', 'staged', '00000000-0000-0000-0000-00000000000d', 40);
ALTER TABLE rep_b.pkg ADD CONSTRAINT small CHECK (size < 4) NOT VALID;
INSERT INTO staged (name, version, size) VALUES ('lib9', '1', 9), ('lib0', '1', 0);
SELECT * FROM idsync.merge_staged('rep_b.pkg', 'staged', NULL, NULL);
SELECT point, item ->> 'name' AS name, sqlstate FROM idsync.rejects WHERE item ->> 'name' LIKE 'lib%';
SELECT try($$SELECT * FROM idsync.merge_staged('rep_b.pkg', NULL, NULL, NULL)$$);
SELECT try($$SELECT * FROM idsync.merge_staged('rep_b.pkg', 'staged', '00000000-0000-0000-0000-00000000000d', NULL)$$);
CREATE TEMPORARY TABLE thin (name text);
SELECT try($$SELECT * FROM idsync.merge_staged('rep_b.pkg', 'thin', NULL, NULL)$$);
SELECT * FROM check_info('rep_b.pkg');

-- Deltas fold into the registration without changing the preflight.
SELECT idsync.compact('rep_b.pkg') > 0 AS folded;
SELECT count(*) AS deltas_left FROM idsync.table_deltas WHERE relid = 'rep_b.pkg'::regclass;
SELECT * FROM check_info('rep_b.pkg');

-- A writer needs no privilege on idsync's own tables.
CREATE ROLE rep_writer;
GRANT USAGE ON SCHEMA rep_a TO rep_writer;
GRANT INSERT, SELECT ON rep_a.pkg TO rep_writer;
GRANT USAGE ON SEQUENCE rep_a.pkg_id_seq TO rep_writer;
SET ROLE rep_writer;
INSERT INTO rep_a.pkg (name, version) VALUES ('by', 'writer');
RESET ROLE;
SELECT * FROM check_info('rep_a.pkg');

-- Unregistration removes the triggers, the points and the state; dropping a table too.
SELECT idsync.unreplicate('rep_a.pkg');
SELECT try($$SELECT idsync.unreplicate('rep_a.pkg')$$);
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'rep_a.pkg'::regclass;
SELECT count(*) FROM pg_attribute WHERE attrelid = 'rep_a.pkg'::regclass AND attname = 'idsync_point';
UPDATE rep_a.pkg SET size = 0 WHERE name = 'gcc';
DROP TABLE rep_b.pkg;
SELECT (SELECT count(*) FROM idsync.tables) AS tables, (SELECT count(*) FROM idsync.rejects) AS rejects,
       (SELECT count(*) FROM idsync.incoming_sync) AS incoming, (SELECT count(*) FROM idsync.table_deltas) AS deltas;

DROP OWNED BY rep_writer;
DROP ROLE rep_writer;
DROP SCHEMA rep_a, rep_b CASCADE;
RESET search_path;

-- The id column is the one insert_missing returns: the single-column integer primary key, else
-- a NOT NULL integer column "id". An integer "id" that allows NULL is data, with a warning.
CREATE SCHEMA rep_ids;
CREATE TABLE rep_ids.loose_id (id int, name text PRIMARY KEY);
SELECT idsync.replicate('rep_ids.loose_id', '{name}');
SELECT local_columns FROM idsync.tables WHERE relid = 'rep_ids.loose_id'::regclass;
CREATE TABLE rep_ids.kept_id (id int NOT NULL, name text PRIMARY KEY);
SELECT idsync.replicate('rep_ids.kept_id', '{name}');
SELECT local_columns FROM idsync.tables WHERE relid = 'rep_ids.kept_id'::regclass;
SELECT idsync._id_column('rep_ids.kept_id') AS same_rule_as_insert_missing,
       idsync._key_index('rep_ids.kept_id', '{name}') AS key_index;
SELECT idsync.unreplicate(t) FROM unnest('{rep_ids.loose_id,rep_ids.kept_id}'::regclass[]) t;
DROP SCHEMA rep_ids CASCADE;
