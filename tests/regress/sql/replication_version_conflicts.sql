-- Conflict records of lww tables (idsync.record_conflicts): the versions that lose in a merge
-- are kept in idsync.conflicts with the version that won, the newest `keep` per table.
CREATE SCHEMA cf;
SET search_path = cf, public;
CREATE TABLE kv (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, v text);
CREATE TABLE facts (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE);
SELECT idsync.replicate('kv', '{k}', 'lww');
SELECT idsync.replicate('facts', '{k}');

-- Only for lww tables, a positive number, administrators who own the table.
SELECT try($$SELECT idsync.record_conflicts('cf.facts')$$);
SELECT try($$SELECT idsync.record_conflicts('cf.kv', 0)$$);
CREATE ROLE idsync_cf_nobody;
GRANT USAGE ON SCHEMA idsync, cf TO idsync_cf_nobody;
GRANT EXECUTE ON FUNCTION idsync.record_conflicts(regclass, integer) TO idsync_cf_nobody;
SET ROLE idsync_cf_nobody;
SELECT try($$SELECT idsync.record_conflicts('cf.kv')$$);
RESET ROLE;
REVOKE ALL ON SCHEMA idsync, cf FROM idsync_cf_nobody;
REVOKE EXECUTE ON FUNCTION idsync.record_conflicts(regclass, integer) FROM idsync_cf_nobody;
DROP ROLE idsync_cf_nobody;

-- Not recording yet: a merge that loses leaves nothing.
INSERT INTO kv (k, v, idsync_version) VALUES ('a', 'here', 100), ('b', 'here', 100), ('c', 'here', 100);
SELECT unchanged FROM idsync.merge_items('kv',
    '[{"point": 1, "item": {"k": "a", "v": "old", "idsync_version": 50}}]',
    '00000000-0000-0000-0000-00000000000a');
SELECT count(*) AS records FROM idsync.conflicts;

SELECT idsync.record_conflicts('kv', 4);
SELECT conflicts_kept FROM idsync.tables WHERE relid = 'kv'::regclass;
-- An older row loses (recorded), a newer one wins (an update, not recorded), the same row again
-- is no conflict.
SELECT received, updated, unchanged FROM idsync.merge_items('kv',
    '[{"point": 2, "item": {"k": "a", "v": "old", "idsync_version": 50}},
      {"point": 3, "item": {"k": "b", "v": "newer", "idsync_version": 200}},
      {"point": 4, "item": {"k": "c", "v": "here", "idsync_version": 100}}]',
    '00000000-0000-0000-0000-00000000000a');
SELECT key, lost, lost_version, lost_origin, won_version, won_origin, kind
FROM idsync.conflicts ORDER BY conflict_id;
-- A tie with other content: the larger row hash wins; the loser is recorded when it came in.
SELECT unchanged, updated FROM idsync.merge_items('kv',
    '[{"point": 5, "item": {"k": "c", "v": "tie", "idsync_version": 100}}]',
    '00000000-0000-0000-0000-00000000000b');
SELECT v AS c_now FROM kv WHERE k = 'c';
SELECT count(*) FILTER (WHERE lost ->> 'v' = 'tie') = (SELECT count(*) FROM kv WHERE k = 'c' AND v = 'here')
       AS recorded_when_it_lost
FROM idsync.conflicts;
-- A delete older than the row here loses; a row older than the tombstone here loses.
DELETE FROM kv WHERE k = 'b';
SELECT version AS b_deleted FROM idsync.tombstones WHERE relid = 'kv'::regclass \gset
SELECT received FROM idsync.merge_items('kv',
    '[{"point": 6, "item": {"k": "a", "idsync_version": 60, "idsync_deleted": true}},
      {"point": 7, "item": {"k": "b", "v": "late", "idsync_version": 300}}]',
    '00000000-0000-0000-0000-00000000000b');
SELECT key, lost ->> 'v' AS lost_v, lost_version, won_version = :b_deleted AS won_by_the_delete,
       won_origin, kind
FROM idsync.conflicts WHERE kind <> 'row lost to row' ORDER BY conflict_id;
-- Only the newest `keep` (4) records stay.
SELECT unchanged FROM idsync.merge_items('kv',
    '[{"point": 8, "item": {"k": "a", "v": "older", "idsync_version": 10}},
      {"point": 9, "item": {"k": "a", "v": "oldest", "idsync_version": 5}}]',
    '00000000-0000-0000-0000-00000000000b');
SELECT count(*) AS records, max(conflict_id) - min(conflict_id) < 10 AS newest_kept,
       bool_or(lost ->> 'v' = 'older') AS last_batch_kept
FROM idsync.conflicts WHERE relid = 'kv'::regclass;
-- NULL stops recording and forgets the records; unregistering forgets them too.
SELECT idsync.record_conflicts('kv', NULL);
SELECT count(*) AS records FROM idsync.conflicts;
SELECT idsync.record_conflicts('kv', 10);
SELECT count(*) AS recorded FROM idsync.merge_items('kv',
    '[{"point": 10, "item": {"k": "a", "v": "old", "idsync_version": 50}}]',
    '00000000-0000-0000-0000-00000000000a');
SELECT idsync.unreplicate('kv');
SELECT count(*) AS records FROM idsync.conflicts;

-- What idsyncctl compare reads: rows and tombstones by buckets of their key hashes. Together
-- the buckets make the kept content hash; a level can be read within the buckets of the one
-- above; the rows of some buckets come with their natural keys and items.
CREATE TABLE cmp (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, v text);
SELECT idsync.replicate('cmp', '{k}', 'lww');
INSERT INTO cmp (k, v) SELECT 'k' || g, 'v' FROM generate_series(1, 100) g;
DELETE FROM cmp WHERE k = 'k1';
SELECT sum(row_count) AS rows_and_tombstones,
       lpad(to_hex(bit_xor(hash1)), 16, '0') || lpad(to_hex(bit_xor(hash2)), 16, '0')
       = (SELECT content_hash FROM idsync.sync_info('cmp')) AS buckets_make_the_kept_hash
FROM idsync.compare_buckets('cmp', 8);
SELECT bool_and(b.bucket >> 4 = ANY (p.parents)) AS within_the_parents, count(*) > 0 AS some
FROM (SELECT ARRAY(SELECT bucket FROM idsync.compare_buckets('cmp', 8) ORDER BY bucket LIMIT 3) AS parents) p,
     idsync.compare_buckets('cmp', 12, p.parents) b;
SELECT count(*) AS rows, count(*) FILTER (WHERE item ? 'idsync_deleted') AS tombstones,
       count(*) FILTER (WHERE key = '{"k": "k1"}') AS k1
FROM idsync.compare_rows('cmp', ARRAY(SELECT bucket FROM idsync.compare_buckets('cmp', 8)), 8);
SELECT key, item - 'idsync_version' AS item FROM idsync.compare_rows('cmp',
    ARRAY(SELECT bucket FROM idsync.compare_buckets('cmp', 8)), 8) WHERE key->>'k' IN ('k1', 'k2')
ORDER BY 1;
-- Under REPEATABLE READ (as idsyncctl compare reads), the table is hashed once for the
-- transaction and the rows of the differing buckets are found by ctid: the same answers; a
-- write in the transaction is seen by the next call.
CREATE TEMP TABLE cmp_rc AS SELECT * FROM idsync.compare_buckets('cmp', 12);
CREATE TEMP TABLE cmp_rows_rc AS SELECT * FROM idsync.compare_rows('cmp',
    ARRAY(SELECT bucket FROM idsync.compare_buckets('cmp', 6) LIMIT 20), 6);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT (SELECT count(*) FROM cmp_rc) AS buckets,
       (SELECT count(*) FROM (SELECT * FROM idsync.compare_buckets('cmp', 12)
                              EXCEPT SELECT * FROM cmp_rc) d) AS buckets_differing;
SELECT (SELECT count(*) FROM cmp_rows_rc) AS rows,
       (SELECT count(*) FROM (SELECT * FROM idsync.compare_rows('cmp',
            ARRAY(SELECT bucket FROM idsync.compare_buckets('cmp', 6) LIMIT 20), 6)
        EXCEPT SELECT * FROM cmp_rows_rc) d) AS rows_differing;
UPDATE cmp SET v = 'w' WHERE k = 'k2';
SELECT sum(row_count) AS rows_and_tombstones,
       lpad(to_hex(bit_xor(hash1)), 16, '0') || lpad(to_hex(bit_xor(hash2)), 16, '0')
       = (SELECT content_hash FROM idsync.sync_info('cmp')) AS buckets_make_the_kept_hash
FROM idsync.compare_buckets('cmp', 8);
SELECT item->>'v' AS k2 FROM idsync.compare_rows('cmp',
    ARRAY(SELECT bucket FROM idsync.compare_buckets('cmp', 16)), 16) WHERE key->>'k' = 'k2';
-- A write rolled back to a savepoint is forgotten too.
SAVEPOINT s;
UPDATE cmp SET v = 'x' WHERE k = 'k2';
SELECT sum(row_count) AS rows_and_tombstones FROM idsync.compare_buckets('cmp', 8);
ROLLBACK TO SAVEPOINT s;
SELECT item->>'v' AS k2_after_rollback FROM idsync.compare_rows('cmp',
    ARRAY(SELECT bucket FROM idsync.compare_buckets('cmp', 16)), 16) WHERE key->>'k' = 'k2';
SELECT lpad(to_hex(bit_xor(hash1)), 16, '0') || lpad(to_hex(bit_xor(hash2)), 16, '0')
       = (SELECT content_hash FROM idsync.sync_info('cmp')) AS buckets_make_the_kept_hash
FROM idsync.compare_buckets('cmp', 8);
ROLLBACK;
SELECT try($$SELECT * FROM idsync.compare_buckets('cf.cmp', 0)$$);
SELECT try($$SELECT * FROM idsync.compare_rows('cf.cmp', '{1}', 17)$$);
SELECT try($$SELECT * FROM idsync.compare_rows('cf.cmp', NULL)$$);
-- A role that may run them but not read the table is refused before anything is read.
CREATE ROLE idsync_cf_reader;
GRANT USAGE ON SCHEMA idsync, cf TO idsync_cf_reader;
GRANT EXECUTE ON FUNCTION idsync.compare_buckets(regclass, integer, integer[]),
                          idsync.compare_rows(regclass, integer[], integer) TO idsync_cf_reader;
-- Also when an administrator has just read the same table in the same REPEATABLE READ
-- transaction: what was kept for one role is not another's.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) > 0 AS read_by_the_administrator FROM idsync.compare_buckets('cf.cmp');
SET LOCAL ROLE idsync_cf_reader;
SELECT try($$SELECT * FROM idsync.compare_buckets('cf.cmp')$$);
SELECT try($$SELECT * FROM idsync.compare_rows('cf.cmp', '{1}')$$);
COMMIT;
REVOKE ALL ON SCHEMA idsync, cf FROM idsync_cf_reader;
REVOKE EXECUTE ON FUNCTION idsync.compare_buckets(regclass, integer, integer[]),
                           idsync.compare_rows(regclass, integer[], integer) FROM idsync_cf_reader;
DROP ROLE idsync_cf_reader;
SELECT idsync.unreplicate('cmp');

SELECT idsync.unreplicate('facts');
DROP SCHEMA cf CASCADE;
RESET search_path;
