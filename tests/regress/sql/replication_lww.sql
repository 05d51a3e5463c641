-- Replication state for a last-writer-wins table: versions, deletes that remove the row and
-- keep a tombstone in idsync.tombstones, inserts of deleted keys, merges that keep the newer
-- version and break ties the same way everywhere, Swift's diff-capped scenario, reclaim.
CREATE SCHEMA lww_a;
CREATE SCHEMA lww_b;
SET search_path = lww_a, public;

CREATE TABLE lww_a.kv (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, v text);
CREATE TABLE lww_b.kv (k text PRIMARY KEY, v text, ver bigint, gone boolean);

-- Registration: lww adds the version column the table lacks, checks the one it has. The
-- tombstone column only names the tombstone marker of items: a column of that name (lww_b's
-- gone) stays in the table, not replicated.
SELECT try($$SELECT idsync.replicate('lww_b.kv', '{k}', 'lww', 'v', 'gone')$$);
SELECT try($$SELECT idsync.replicate('lww_b.kv', '{k}', 'lww', 'k', 'gone')$$);
SELECT try($$SELECT idsync.replicate('lww_b.kv', '{k}', 'lww', 'ver', 'ver')$$);
SELECT try($$SELECT idsync.replicate('lww_b.kv', '{k}', 'lww', 'ver', 'k')$$);
SELECT idsync.replicate('lww_a.kv', '{k}', 'lww', 'ver', 'gone');
SELECT idsync.replicate('lww_b.kv', '{k}', 'lww', 'ver', 'gone');
SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
WHERE attrelid = 'lww_a.kv'::regclass AND attnum > 0 ORDER BY attnum;
SELECT relid, mode, version_column, tombstone_column, local_columns FROM idsync.tables ORDER BY relid::text;

-- Local writes: the version is a hybrid logical clock that moves forward with every change.
INSERT INTO lww_a.kv (k, v) VALUES ('a', 'one'), ('b', 'two');
SELECT ver AS v0 FROM lww_a.kv WHERE k = 'a' \gset
SELECT abs(extract(epoch FROM idsync.hlc_time(:v0) - now())) < 600 AS clock_is_wall_time;
UPDATE lww_a.kv SET v = 'uno' WHERE k = 'a';
SELECT ver > :v0 AS version_moved FROM lww_a.kv WHERE k = 'a';
-- (An explicit version may be ahead of the clock by idsync.max_clock_skew at most: one minute.)
SELECT idsync.hlc_now() + (60000::bigint << 16) AS ahead \gset
UPDATE lww_a.kv SET v = 'eins', ver = :ahead WHERE k = 'a';
SELECT ver = :ahead AS explicit_newer_version_kept FROM lww_a.kv WHERE k = 'a';
UPDATE lww_a.kv SET v = 'one' WHERE k = 'a';
SELECT ver = :ahead + 1 AS moves_past_the_explicit_one FROM lww_a.kv WHERE k = 'a';
-- A DELETE removes the row, as in any table, and keeps its tombstone with a newer version at a
-- new change point; deleting it again deletes nothing.
SELECT ver AS vb, idsync_point AS pb FROM lww_a.kv WHERE k = 'b' \gset
DELETE FROM lww_a.kv WHERE k = 'b';
SELECT k, v FROM lww_a.kv ORDER BY k;
SELECT key, version > :vb AS newer, point > :pb AS new_point, origin
FROM idsync.tombstones WHERE relid = 'lww_a.kv'::regclass;
DELETE FROM lww_a.kv WHERE k = 'b';
SELECT count(*) AS rows_with_b FROM lww_a.kv WHERE k = 'b';
-- An INSERT of the deleted key works: the row replaces its tombstone, with a newer version.
SELECT version AS tb FROM idsync.tombstones WHERE relid = 'lww_a.kv'::regclass \gset
INSERT INTO lww_a.kv (k, v) VALUES ('b', 'again');
SELECT k, v, ver > :tb AS newer_than_tombstone FROM lww_a.kv WHERE k = 'b';
SELECT count(*) AS tombstones FROM idsync.tombstones WHERE relid = 'lww_a.kv'::regclass;
-- Also with an explicit older version: the row's version goes past the tombstone's.
DELETE FROM lww_a.kv WHERE k = 'b';
SELECT version AS tb FROM idsync.tombstones WHERE relid = 'lww_a.kv'::regclass \gset
INSERT INTO lww_a.kv (k, v, ver) VALUES ('b', 'explicit', 5);
SELECT k, v, ver = :tb + 1 AS just_past_the_tombstone FROM lww_a.kv WHERE k = 'b';
-- A delete rolled back keeps the row and leaves no tombstone.
BEGIN;
DELETE FROM lww_a.kv WHERE k = 'b';
ROLLBACK;
SELECT k, v FROM lww_a.kv ORDER BY k;
SELECT count(*) AS tombstones FROM idsync.tombstones WHERE relid = 'lww_a.kv'::regclass;
DELETE FROM lww_a.kv WHERE k = 'b';
-- The content hash covers the rows and the tombstones: the kept state is what table_hash
-- recomputes.
SELECT (SELECT content_hash FROM idsync.sync_info('lww_a.kv'))
     = (SELECT lpad(to_hex(hash1), 16, '0') || lpad(to_hex(hash2), 16, '0')
        FROM idsync.table_hash('lww_a.kv')) AS kept_is_recomputed;
SELECT try($$TRUNCATE lww_a.kv$$);

-- Merges keep the newer version, whichever side holds it.
INSERT INTO lww_b.kv (k, v, ver) VALUES ('a', 'older', 1), ('c', 'newer', :ahead + 2);
SELECT received, inserted, updated, unchanged, rejected
FROM idsync.merge_items('lww_b.kv', (SELECT jsonb_agg(i) FROM idsync.items_since('lww_a.kv', 0, 100) i));
SELECT k, v, gone FROM lww_b.kv ORDER BY k;
SELECT key FROM idsync.tombstones WHERE relid = 'lww_b.kv'::regclass;
SELECT received, inserted, updated, unchanged, rejected
FROM idsync.merge_items('lww_a.kv', (SELECT jsonb_agg(i) FROM idsync.items_since('lww_b.kv', 0, 100) i));
SELECT k, v FROM lww_a.kv ORDER BY k;
SELECT (SELECT content_hash FROM idsync.sync_info('lww_a.kv'))
     = (SELECT content_hash FROM idsync.sync_info('lww_b.kv')) AS same_content;
-- Idempotent: merging the same items again changes nothing, and writes nothing.
SELECT (SELECT max_point FROM idsync.sync_info('lww_a.kv')) AS a_last \gset
SELECT received, inserted, updated, unchanged, rejected
FROM idsync.merge_items('lww_a.kv', (SELECT jsonb_agg(i) FROM idsync.items_since('lww_b.kv', 0, 100) i));
SELECT (SELECT max_point FROM idsync.sync_info('lww_a.kv')) = :a_last AS no_new_point;

-- A tombstone for a row this node never had is kept, so an older copy cannot come back; a
-- newer one replaces it.
SELECT updated FROM idsync.merge_items('lww_b.kv',
    '[{"point": 1, "item": {"k": "z", "ver": 500, "gone": true}}]');
SELECT inserted, updated, unchanged FROM idsync.merge_items('lww_b.kv',
    '[{"point": 2, "item": {"k": "z", "v": "zombie", "ver": 400}}]');
SELECT count(*) AS rows_with_z FROM lww_b.kv WHERE k = 'z';
SELECT key, version FROM idsync.tombstones WHERE relid = 'lww_b.kv'::regclass AND key->>'k' = 'z';
-- A tombstone and a row of the same version: the tombstone wins, in either order.
SELECT inserted, updated, unchanged FROM idsync.merge_items('lww_b.kv',
    '[{"point": 3, "item": {"k": "z", "v": "tie", "ver": 500}}]');
SELECT count(*) AS rows_with_z FROM lww_b.kv WHERE k = 'z';
SELECT inserted FROM idsync.merge_items('lww_b.kv',
    '[{"point": 4, "item": {"k": "y", "v": "tie", "ver": 600}}]');
SELECT updated FROM idsync.merge_items('lww_b.kv',
    '[{"point": 5, "item": {"k": "y", "ver": 600, "gone": true}}]');
SELECT count(*) AS rows_with_y FROM lww_b.kv WHERE k = 'y';
-- An older tombstone loses to the row; a newer row replaces the tombstone.
SELECT inserted FROM idsync.merge_items('lww_b.kv',
    '[{"point": 6, "item": {"k": "x", "v": "kept", "ver": 800}}]');
SELECT updated, unchanged FROM idsync.merge_items('lww_b.kv',
    '[{"point": 7, "item": {"k": "x", "ver": 700, "gone": true}}]');
SELECT inserted FROM idsync.merge_items('lww_b.kv',
    '[{"point": 8, "item": {"k": "z", "v": "back", "ver": 900}}]');
SELECT k, v, ver FROM lww_b.kv WHERE k IN ('x', 'y', 'z') ORDER BY k;
SELECT key FROM idsync.tombstones WHERE relid = 'lww_b.kv'::regclass ORDER BY key->>'k';
-- Within one batch, the order of the items does not matter: a delete and a re-insert of the
-- same key keep the newer of the two.
SELECT received FROM idsync.merge_items('lww_b.kv', '[
    {"point": 9, "item": {"k": "w", "ver": 1000, "gone": true}},
    {"point": 10, "item": {"k": "w", "v": "old", "ver": 999}},
    {"point": 11, "item": {"k": "v", "v": "new", "ver": 1001}},
    {"point": 12, "item": {"k": "v", "ver": 1000, "gone": true}}]');
SELECT k, v FROM lww_b.kv WHERE k IN ('v', 'w') ORDER BY k;
SELECT key FROM idsync.tombstones WHERE relid = 'lww_b.kv'::regclass AND key->>'k' IN ('v', 'w');
SELECT (SELECT content_hash FROM idsync.sync_info('lww_b.kv'))
     = (SELECT lpad(to_hex(hash1), 16, '0') || lpad(to_hex(hash2), 16, '0')
        FROM idsync.table_hash('lww_b.kv')) AS kept_is_recomputed;

-- Equal versions: the larger row hash wins, in either order and within one batch.
SELECT received, inserted, updated, unchanged FROM idsync.merge_items('lww_b.kv', '[
    {"point": 13, "item": {"k": "t", "v": "left", "ver": 700}},
    {"point": 14, "item": {"k": "t", "v": "right", "ver": 700}}]');
SELECT v AS winner_in_batch FROM lww_b.kv WHERE k = 't';
SELECT inserted, updated, unchanged FROM idsync.merge_items('lww_b.kv',
    '[{"point": 15, "item": {"k": "t", "v": "left", "ver": 700}}]');
SELECT inserted, updated, unchanged FROM idsync.merge_items('lww_b.kv',
    '[{"point": 16, "item": {"k": "t", "v": "right", "ver": 700}}]');
SELECT v AS winner_after_both FROM lww_b.kv WHERE k = 't';
SELECT (idsync.row_hash(ROW('t', 'left', 700::bigint, NULL::boolean, NULL::bigint, NULL::uuid)::lww_b.kv, '{idsync_point,gone,idsync_origin}')
        > idsync.row_hash(ROW('t', 'right', 700::bigint, NULL::boolean, NULL::bigint, NULL::uuid)::lww_b.kv, '{idsync_point,gone,idsync_origin}'))
       = (SELECT v = 'left' FROM lww_b.kv WHERE k = 't') AS larger_hash_won;
-- Column order does not change a row hash; the excluded columns are left out.
SELECT idsync.row_hash(ROW(1, 'x')::record, '{}') IS NOT NULL AS hashes_records;
CREATE TYPE ab AS (a int, b text);
CREATE TYPE ba AS (b text, a int, c int);
SELECT idsync.row_hash(ROW(1, 'x')::ab, '{}') = idsync.row_hash(ROW('x', 1, 5)::ba, '{c}') AS order_free;

-- Swift's diff-capped scenario: A holds 50 old rows and one newer row; B holds 100 newer
-- versions of A's 50 plus 50 others. A ships to B in batches of 10, at most 3 batches a pass.
-- Pass 1 is capped but B's incoming point for A still advances (every row merged is older);
-- pass 2 finishes; B ends with all 101 names and the newest version of each.
CREATE TABLE lww_a.obj (name text PRIMARY KEY, data text);
CREATE TABLE lww_b.obj (name text PRIMARY KEY, data text);
SELECT idsync.replicate('lww_a.obj', '{name}', 'lww');
SELECT idsync.replicate('lww_b.obj', '{name}', 'lww');
INSERT INTO lww_a.obj SELECT 'o' || g, 'old' FROM generate_series(1, 50) g;
INSERT INTO lww_b.obj SELECT 'o' || g, 'new' FROM generate_series(1, 100) g;
UPDATE lww_b.obj SET data = 'new';  -- strictly newer versions than A's, even within one millisecond
INSERT INTO lww_a.obj VALUES ('o_newest', 'a-only');
CREATE FUNCTION ship_pass(per_diff int, max_diffs int, source uuid,
                          OUT batches int, OUT capped boolean, OUT point_after bigint)
LANGUAGE plpgsql AS $$
DECLARE
    point bigint := idsync.get_sync('lww_b.obj', source);
    items jsonb;
    merged record;
BEGIN
    batches := 0;
    LOOP
        SELECT jsonb_agg(i ORDER BY i.point) INTO items
        FROM idsync.items_since('lww_a.obj', point, per_diff) i;
        EXIT WHEN items IS NULL;
        IF batches = max_diffs THEN
            capped := true;
            point_after := idsync.get_sync('lww_b.obj', source);
            RETURN;
        END IF;
        SELECT * INTO merged FROM idsync.merge_items('lww_b.obj', items, source);
        point := merged.sync_point;
        batches := batches + 1;
    END LOOP;
    capped := false;
    point_after := idsync.get_sync('lww_b.obj', source);
END $$;
SELECT batches, capped,
       point_after = (SELECT idsync_point FROM lww_a.obj ORDER BY idsync_point OFFSET 29 LIMIT 1) AS at_row_30
FROM ship_pass(10, 3, '00000000-0000-0000-0000-0000000000aa');
SELECT batches, capped,
       point_after = (SELECT max(idsync_point) FROM lww_a.obj) AS at_last_row
FROM ship_pass(10, 3, '00000000-0000-0000-0000-0000000000aa');
SELECT count(*) AS names, count(*) FILTER (WHERE data = 'old') AS old_versions,
       count(*) FILTER (WHERE name = 'o_newest') AS newest
FROM lww_b.obj;

-- reclaim: tombstones and sync rows older than the given age go; younger ones stay.
SELECT try($$SELECT * FROM idsync.reclaim('lww_a.kv', NULL)$$);
SELECT try($$SELECT * FROM idsync.reclaim('lww_a.kv', '-1 day')$$);
SELECT * FROM idsync.reclaim('lww_b.kv', '1 day');
SELECT count(*) AS tombstones FROM idsync.tombstones WHERE relid = 'lww_b.kv'::regclass;
SELECT * FROM idsync.reclaim('lww_b.kv', '0');
SELECT count(*) AS tombstones FROM idsync.tombstones WHERE relid = 'lww_b.kv'::regclass;
SELECT (SELECT content_hash FROM idsync.sync_info('lww_b.kv'))
     = (SELECT lpad(to_hex(hash1), 16, '0') || lpad(to_hex(hash2), 16, '0')
        FROM idsync.table_hash('lww_b.kv')) AS kept_is_recomputed;
SELECT count(*) AS tombstones FROM idsync.tombstones WHERE relid = 'lww_a.kv'::regclass;
UPDATE idsync.incoming_sync SET updated_at = now() - interval '8 days' WHERE relid = 'lww_b.obj'::regclass;
SELECT * FROM idsync.reclaim('lww_b.obj', '7 days');
SELECT count(*) AS sync_rows FROM idsync.incoming_sync WHERE relid = 'lww_b.obj'::regclass;
SELECT * FROM idsync.reclaim('lww_a.obj', '7 days');

-- A tombstone is kept for the rows a DELETE removed, and a deleted key's tombstone goes when a
-- row of it is in: a trigger of the user's that keeps a row, or an INSERT that ON CONFLICT on
-- another unique index leaves out, leave the tombstones as they were.
CREATE TABLE lww_a.acct (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, email text UNIQUE);
SELECT idsync.replicate('lww_a.acct', '{k}', 'lww');
INSERT INTO lww_a.acct (k, email) VALUES ('x', 'x@a'), ('y', 'y@a');
CREATE FUNCTION lww_a.keep_y() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RETURN CASE WHEN OLD.k = 'y' THEN NULL ELSE OLD END; END $$;
CREATE TRIGGER zz_keep_y BEFORE DELETE ON lww_a.acct FOR EACH ROW EXECUTE FUNCTION lww_a.keep_y();
DELETE FROM lww_a.acct;
SELECT k FROM lww_a.acct ORDER BY k;
SELECT key FROM idsync.tombstones WHERE relid = 'lww_a.acct'::regclass ORDER BY 1;
INSERT INTO lww_a.acct (k, email) VALUES ('x', 'y@a') ON CONFLICT DO NOTHING;
SELECT count(*) AS rows_with_x FROM lww_a.acct WHERE k = 'x';
SELECT key FROM idsync.tombstones WHERE relid = 'lww_a.acct'::regclass ORDER BY 1;
INSERT INTO lww_a.acct (k, email) VALUES ('x', 'x@a');
SELECT key FROM idsync.tombstones WHERE relid = 'lww_a.acct'::regclass ORDER BY 1;
SELECT (SELECT content_hash FROM idsync.sync_info('lww_a.acct'))
     = (SELECT lpad(to_hex(hash1), 16, '0') || lpad(to_hex(hash2), 16, '0')
        FROM idsync.table_hash('lww_a.acct')) AS kept_is_recomputed;
-- A column named as the tombstone marker, added later, stays local: items never carry it.
ALTER TABLE lww_a.acct ADD COLUMN idsync_deleted boolean DEFAULT true;
SELECT 'idsync_deleted' = ANY (local_columns) AS marker_column_is_local
FROM idsync.tables WHERE relid = 'lww_a.acct'::regclass;
SELECT item ? 'idsync_deleted' AS item_has_marker FROM idsync.items_since('lww_a.acct', -1)
WHERE item ->> 'k' = 'x';
-- A tombstone's key is written as items are, whatever the session's DateStyle.
CREATE TABLE lww_a.day (id bigserial PRIMARY KEY, d date NOT NULL UNIQUE);
SELECT idsync.replicate('lww_a.day', '{d}', 'lww');
INSERT INTO lww_a.day (d) VALUES ('2024-02-01');
SET DateStyle = 'SQL, DMY';
DELETE FROM lww_a.day;
RESET DateStyle;
SELECT key FROM idsync.tombstones WHERE relid = 'lww_a.day'::regclass;

DROP SCHEMA lww_a, lww_b CASCADE;
RESET search_path;
