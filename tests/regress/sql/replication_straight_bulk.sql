-- The direct path of a bulk copy: begin_bulk takes a table that is empty and unwritten, the rows
-- arrive by COPY straight into it with their versions and origins, end_bulk moves the source's
-- sync point. Everything else (rows here, a writer, references) keeps the staging path.
SET client_min_messages = warning;
CREATE SCHEMA bd;
CREATE TABLE bd.pkg (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, size int CHECK (size >= 0));
SELECT idsync.replicate('bd.pkg', '{name}');
CREATE TABLE bd.kv (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, v text);
SELECT idsync.replicate('bd.kv', '{k}', 'lww');
CREATE TABLE bd.parent (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
SELECT idsync.replicate('bd.parent', '{name}');
CREATE TABLE bd.child (id bigserial PRIMARY KEY, parent_id bigint NOT NULL REFERENCES bd.parent,
                       name text NOT NULL, UNIQUE (parent_id, name));
SELECT idsync.replicate('bd.child', '{parent_id,name}');
CREATE VIEW bd.held AS
    SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
    WHERE l.pid = pg_backend_pid() AND c.relnamespace = 'bd'::regnamespace
      AND l.mode = 'ShareRowExclusiveLock';

-- An empty table: taken, rows copied with the node that wrote them, the sync point moved.
BEGIN;
SELECT idsync.begin_bulk('bd.pkg', '00000000-0000-0000-0000-00000000000a') AS direct;
SELECT * FROM bd.held;
COPY bd.pkg (name, size, idsync_origin) FROM STDIN;
gcc	10	00000000-0000-0000-0000-00000000000c
make	20	00000000-0000-0000-0000-00000000000a
\.
SELECT idsync.end_bulk('bd.pkg', '00000000-0000-0000-0000-00000000000a', 42) AS sync_point;
COMMIT;
SELECT name, size, idsync_origin, idsync_point > 0 AS has_point FROM bd.pkg ORDER BY name;
SELECT idsync.get_sync('bd.pkg', '00000000-0000-0000-0000-00000000000a') AS incoming;
-- The kept content state is the state of the rows.
SELECT (SELECT lpad(to_hex(s.hash1), 16, '0') || lpad(to_hex(s.hash2), 16, '0')
        FROM idsync.table_hash('bd.pkg', '{id,idsync_point,idsync_origin}') s)
     = (SELECT content_hash FROM idsync.sync_info('bd.pkg')) AS hash_kept;

-- A table with rows: not taken, and nothing is held.
BEGIN;
SELECT idsync.begin_bulk('bd.pkg', '00000000-0000-0000-0000-00000000000a') AS direct;
SELECT count(*) AS locks_held FROM bd.held;
ROLLBACK;

-- lww: the rows keep their versions; the tombstones follow through merge_items in the same
-- transaction (the sender's tombstones_since).
BEGIN;
SELECT idsync.begin_bulk('bd.kv', '00000000-0000-0000-0000-00000000000a') AS direct;
COPY bd.kv (k, v, idsync_version, idsync_origin) FROM STDIN;
a	one	1000	00000000-0000-0000-0000-00000000000a
b	two	1000	00000000-0000-0000-0000-00000000000a
\.
SELECT received, updated FROM idsync.merge_items('bd.kv',
    '[{"point": 6, "item": {"k": "b", "idsync_version": 2000, "idsync_deleted": true}}]',
    '00000000-0000-0000-0000-00000000000a');
SELECT idsync.end_bulk('bd.kv', '00000000-0000-0000-0000-00000000000a', 7) AS sync_point;
COMMIT;
SELECT k, v, idsync_version FROM bd.kv ORDER BY k;
SELECT key, version FROM idsync.tombstones WHERE relid = 'bd.kv'::regclass;
-- An empty table with tombstones takes the staging path: the merge weighs rows against them.
DELETE FROM bd.kv;
BEGIN;
SELECT idsync.begin_bulk('bd.kv', '00000000-0000-0000-0000-00000000000a') AS direct;
ROLLBACK;

-- A row the table refuses fails the COPY, and the whole transaction (the sender then uses the
-- staging path, which parks it).
CREATE TABLE bd.empty_pkg (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, size int CHECK (size >= 0));
SELECT idsync.replicate('bd.empty_pkg', '{name}');
BEGIN;
SELECT idsync.begin_bulk('bd.empty_pkg', '00000000-0000-0000-0000-00000000000a') AS direct;
\set VERBOSITY terse
COPY bd.empty_pkg (name, size, idsync_origin) FROM STDIN;
ok	1	00000000-0000-0000-0000-00000000000a
bad	-1	00000000-0000-0000-0000-00000000000a
\.
\set VERBOSITY default
ROLLBACK;
SELECT count(*) AS rows_after_refusal FROM bd.empty_pkg;

-- References travel as natural keys, which only a merge resolves: the staging path.
BEGIN;
SELECT idsync.begin_bulk('bd.child', '00000000-0000-0000-0000-00000000000a') AS direct;
SELECT count(*) AS locks_held FROM bd.held;
ROLLBACK;

-- end_bulk without begin_bulk, and bad arguments.
SELECT try($$SELECT idsync.end_bulk('bd.empty_pkg', '00000000-0000-0000-0000-00000000000a', 1)$$);
SELECT try($$SELECT idsync.begin_bulk(NULL, '00000000-0000-0000-0000-00000000000a')$$);
SELECT try($$SELECT idsync.begin_bulk('bd.empty_pkg', NULL)$$);
SELECT try($$SELECT idsync.end_bulk('bd.empty_pkg', '00000000-0000-0000-0000-00000000000a', NULL)$$);
CREATE TABLE bd.unregistered (id bigserial PRIMARY KEY, name text UNIQUE);
SELECT try($$SELECT idsync.begin_bulk('bd.unregistered', '00000000-0000-0000-0000-00000000000a')$$);

-- A role that may not merge is refused before anything is locked; a peer role only in the
-- name of the node it speaks for.
CREATE ROLE idsync_bd_reader;
GRANT USAGE ON SCHEMA idsync, bd TO idsync_bd_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA bd TO idsync_bd_reader;
GRANT EXECUTE ON FUNCTION idsync.begin_bulk(regclass, uuid) TO idsync_bd_reader;
CREATE ROLE idsync_bd_peer;
SELECT idsync.grant_peer('idsync_bd_peer', '00000000-0000-0000-0000-00000000000a');
GRANT USAGE ON SCHEMA bd TO idsync_bd_peer;
GRANT SELECT, INSERT ON bd.empty_pkg TO idsync_bd_peer;
GRANT SELECT ON bd.held TO idsync_bd_peer;
BEGIN;
SET LOCAL ROLE idsync_bd_reader;
SELECT try($$SELECT idsync.begin_bulk('bd.empty_pkg', '00000000-0000-0000-0000-00000000000a')$$);
SELECT count(*) AS locks_held FROM bd.held;
SET LOCAL ROLE idsync_bd_peer;
SELECT try($$SELECT idsync.begin_bulk('bd.empty_pkg', '00000000-0000-0000-0000-00000000000b')$$);
SELECT count(*) AS locks_held FROM bd.held;
SELECT idsync.begin_bulk('bd.empty_pkg', '00000000-0000-0000-0000-00000000000a') AS peer_direct;
ROLLBACK;

-- bulk_query in key order, for a copy straight into the receiver's table; a key that holds a
-- reference keeps no order (its order here is that of local ids).
SELECT idsync.bulk_query('bd.pkg', NULL, NULL, true) LIKE '% ORDER BY c.name' AS ordered;
SELECT idsync.bulk_query('bd.child', NULL, NULL, true) LIKE '%ORDER BY%' AS child_ordered;

-- A row copied without an origin comes from the source; only at READ COMMITTED, where the
-- emptiness is read after the lock.
CREATE TABLE bd.nulls (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
SELECT idsync.replicate('bd.nulls', '{name}');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT idsync.begin_bulk('bd.nulls', '00000000-0000-0000-0000-00000000000a') AS direct_repeatable_read;
ROLLBACK;
BEGIN;
SELECT idsync.begin_bulk('bd.nulls', '00000000-0000-0000-0000-00000000000a') AS direct;
COPY bd.nulls (name, idsync_origin) FROM STDIN;
no origin	\N
its own	00000000-0000-0000-0000-00000000000c
\.
SELECT idsync.end_bulk('bd.nulls', '00000000-0000-0000-0000-00000000000a', 3) AS sync_point;
COMMIT;
SELECT name, idsync_origin FROM bd.nulls ORDER BY name;

-- Dropped columns are not replicated: the bulk query and the plan read the live ones.
CREATE TABLE bd.gone_parent (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, old int);
CREATE TABLE bd.gone_child (id bigserial PRIMARY KEY, old int,
                            parent_id bigint NOT NULL REFERENCES bd.gone_parent, tag text NOT NULL,
                            UNIQUE (parent_id, tag));
SELECT idsync.replicate('bd.gone_parent', '{name}'), idsync.replicate('bd.gone_child', '{parent_id,tag}');
ALTER TABLE bd.gone_parent DROP COLUMN old;
ALTER TABLE bd.gone_child DROP COLUMN old;
INSERT INTO bd.gone_parent (name) VALUES ('p');
INSERT INTO bd.gone_child (parent_id, tag) SELECT id, 't' FROM bd.gone_parent;
SELECT idsync.bulk_query('bd.gone_child') AS q \gset
SELECT * FROM (:q) b;
SELECT item FROM idsync.items_since('bd.gone_child', -1);
SELECT idsync._content_state_query('bd.gone_child') AS sq \gset
SELECT row_count FROM (:sq) s;

-- Resyncs an operator asks for (idsyncctl resync): recorded per table and peer, renewed when
-- asked again, cleared by idsyncd with the time it read; administrators and the daemon's role.
SELECT idsync.request_resync('bd.pkg', '00000000-0000-0000-0000-00000000000b') IS NOT NULL AS requested;
SELECT relid, remote_id FROM idsync.resync_requests;
SELECT requested_at AS first_at FROM idsync.resync_requests \gset
SELECT idsync._resync_done('bd.pkg', '00000000-0000-0000-0000-00000000000b', :'first_at');
SELECT count(*) AS left_after_done FROM idsync.resync_requests;
SELECT try($$SELECT idsync.request_resync('bd.pkg', NULL)$$);
SELECT try($$SELECT idsync.request_resync('bd.unregistered', '00000000-0000-0000-0000-00000000000b')$$);
CREATE ROLE idsync_bd_daemon;
SELECT idsync.grant_daemon('idsync_bd_daemon');
GRANT USAGE ON SCHEMA bd TO idsync_bd_daemon;
GRANT SELECT ON bd.pkg TO idsync_bd_daemon;
GRANT EXECUTE ON FUNCTION idsync.request_resync(regclass, uuid) TO idsync_bd_reader;
SET ROLE idsync_bd_reader;
SELECT try($$SELECT idsync.request_resync('bd.pkg', '00000000-0000-0000-0000-00000000000b')$$);
SET ROLE idsync_bd_peer;
SELECT try($$SELECT idsync.request_resync('bd.pkg', '00000000-0000-0000-0000-00000000000b')$$);
SET ROLE idsync_bd_daemon;
SELECT idsync.request_resync('bd.pkg', '00000000-0000-0000-0000-00000000000b') IS NOT NULL AS daemon_requested;
RESET ROLE;
SELECT count(*) AS requests FROM idsync.resync_requests;
-- Unregistering the table forgets them.
SELECT idsync.unreplicate('bd.pkg');
SELECT count(*) AS requests_after_unregister FROM idsync.resync_requests;

DROP SCHEMA bd CASCADE;
DROP OWNED BY idsync_bd_reader, idsync_bd_peer, idsync_bd_daemon;
SELECT idsync.revoke_role('idsync_bd_peer'), idsync.revoke_role('idsync_bd_daemon');
DROP ROLE idsync_bd_reader, idsync_bd_peer, idsync_bd_daemon;
