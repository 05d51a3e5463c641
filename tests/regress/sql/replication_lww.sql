-- Replication state for a last-writer-wins table: versions, tombstones, merges that keep the
-- newer version and break ties the same way everywhere, Swift's diff-capped scenario, reclaim.
CREATE SCHEMA lww_a;
CREATE SCHEMA lww_b;
SET search_path = lww_a, public;

CREATE TABLE lww_a.kv (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, v text);
CREATE TABLE lww_b.kv (k text PRIMARY KEY, v text, ver bigint, gone boolean);

-- Registration: lww adds the version and tombstone columns the table lacks, checks those it has.
SELECT try($$SELECT idsync.replicate('lww_b.kv', '{k}', 'lww', 'v', 'gone')$$);
SELECT try($$SELECT idsync.replicate('lww_b.kv', '{k}', 'lww', 'ver', 'v')$$);
SELECT try($$SELECT idsync.replicate('lww_b.kv', '{k}', 'lww', 'k', 'gone')$$);
SELECT try($$SELECT idsync.replicate('lww_b.kv', '{k}', 'lww', 'ver', 'ver')$$);
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
-- A DELETE keeps the row as a tombstone with a newer version; deleting it again changes nothing.
SELECT ver AS vb FROM lww_a.kv WHERE k = 'b' \gset
DELETE FROM lww_a.kv WHERE k = 'b';
SELECT k, v, gone, ver > :vb AS newer FROM lww_a.kv ORDER BY k;
SELECT idsync_point AS pb FROM lww_a.kv WHERE k = 'b' \gset
DELETE FROM lww_a.kv WHERE k = 'b';
SELECT idsync_point = :pb AS untouched FROM lww_a.kv WHERE k = 'b';
SELECT try($$TRUNCATE lww_a.kv$$);

-- Merges keep the newer version, whichever side holds it.
INSERT INTO lww_b.kv (k, v, ver) VALUES ('a', 'older', 1), ('c', 'newer', :ahead + 2);
SELECT received, inserted, updated, unchanged, rejected
FROM idsync.merge_items('lww_b.kv', (SELECT jsonb_agg(i) FROM idsync.items_since('lww_a.kv', 0, 100) i));
SELECT k, v, gone FROM lww_b.kv ORDER BY k;
SELECT received, inserted, updated, unchanged, rejected
FROM idsync.merge_items('lww_a.kv', (SELECT jsonb_agg(i) FROM idsync.items_since('lww_b.kv', 0, 100) i));
SELECT k, v, gone FROM lww_a.kv ORDER BY k;
SELECT (SELECT content_hash FROM idsync.sync_info('lww_a.kv'))
     = (SELECT content_hash FROM idsync.sync_info('lww_b.kv')) AS same_content;
-- Idempotent: merging the same items again changes nothing, and writes nothing.
SELECT max(idsync_point) AS a_last FROM lww_a.kv \gset
SELECT received, inserted, updated, unchanged, rejected
FROM idsync.merge_items('lww_a.kv', (SELECT jsonb_agg(i) FROM idsync.items_since('lww_b.kv', 0, 100) i));
SELECT max(idsync_point) = :a_last AS no_new_point FROM lww_a.kv;

-- A tombstone for a row this node never had is kept, so an older copy cannot come back.
SELECT inserted FROM idsync.merge_items('lww_b.kv',
    '[{"point": 1, "item": {"k": "z", "v": null, "ver": 500, "gone": true}}]');
SELECT inserted, updated, unchanged FROM idsync.merge_items('lww_b.kv',
    '[{"point": 2, "item": {"k": "z", "v": "zombie", "ver": 400, "gone": false}}]');
SELECT k, v, ver, gone FROM lww_b.kv WHERE k = 'z';

-- Equal versions: the larger row hash wins, in either order and within one batch.
SELECT received, inserted, updated, unchanged FROM idsync.merge_items('lww_b.kv', '[
    {"point": 3, "item": {"k": "t", "v": "left", "ver": 700, "gone": false}},
    {"point": 4, "item": {"k": "t", "v": "right", "ver": 700, "gone": false}}]');
SELECT v AS winner_in_batch FROM lww_b.kv WHERE k = 't';
SELECT inserted, updated, unchanged FROM idsync.merge_items('lww_b.kv',
    '[{"point": 5, "item": {"k": "t", "v": "left", "ver": 700, "gone": false}}]');
SELECT inserted, updated, unchanged FROM idsync.merge_items('lww_b.kv',
    '[{"point": 6, "item": {"k": "t", "v": "right", "ver": 700, "gone": false}}]');
SELECT v AS winner_after_both FROM lww_b.kv WHERE k = 't';
SELECT (idsync.row_hash(ROW('t', 'left', 700::bigint, false, NULL::bigint, NULL::uuid)::lww_b.kv, '{idsync_point,idsync_origin}')
        > idsync.row_hash(ROW('t', 'right', 700::bigint, false, NULL::bigint, NULL::uuid)::lww_b.kv, '{idsync_point,idsync_origin}'))
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
SELECT * FROM idsync.reclaim('lww_b.kv', '0');
SELECT k FROM lww_b.kv WHERE gone ORDER BY k;
SELECT count(*) AS tombstones FROM lww_a.kv WHERE gone;
UPDATE idsync.incoming_sync SET updated_at = now() - interval '8 days' WHERE relid = 'lww_b.obj'::regclass;
SELECT * FROM idsync.reclaim('lww_b.obj', '7 days');
SELECT count(*) AS sync_rows FROM idsync.incoming_sync WHERE relid = 'lww_b.obj'::regclass;
SELECT * FROM idsync.reclaim('lww_a.obj', '7 days');

DROP SCHEMA lww_a, lww_b CASCADE;
RESET search_path;
