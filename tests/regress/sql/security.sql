-- The privilege model (README "Security model"), attacked as the least privileged role that
-- could try each attack: every attempt is refused with its SQLSTATE and changes nothing. Then
-- hostile functions and operators are planted in public and in "$user", a superuser runs every
-- write path with that path first, and the planted code never runs.
SET client_min_messages = warning;
CREATE SCHEMA sec;
CREATE TABLE sec.pkg (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, size int);
CREATE TABLE sec.kv (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, v text);
CREATE TABLE sec.secret (id bigserial PRIMARY KEY, s text NOT NULL UNIQUE);
INSERT INTO sec.secret (s) VALUES ('the password');
SELECT idsync.replicate('sec.pkg', '{name}');
SELECT idsync.replicate('sec.kv', '{k}', 'lww');
INSERT INTO sec.pkg (name, size) VALUES ('gcc', 10);
INSERT INTO sec.kv (k, v) VALUES ('a', 'one');

-- The model in the catalog: the functions that run without search_path pinned by a SET clause
-- (README says why each), the ones PUBLIC may execute, and the SECURITY DEFINER ones.
SELECT p.oid::regprocedure AS unpinned FROM pg_proc p
WHERE p.pronamespace = 'idsync'::regnamespace
  AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
ORDER BY p.oid::regprocedure::text;
SELECT p.oid::regprocedure AS public_api FROM pg_proc p
WHERE p.pronamespace = 'idsync'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')
ORDER BY p.oid::regprocedure::text;
SELECT p.oid::regprocedure AS security_definer FROM pg_proc p
WHERE p.pronamespace = 'idsync'::regnamespace AND p.prosecdef ORDER BY p.oid::regprocedure::text;
SELECT c.relname, has_table_privilege('public', c.oid, 'SELECT') AS public_reads,
       has_table_privilege('public', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') AS public_writes
FROM pg_class c WHERE c.relnamespace = 'idsync'::regnamespace AND c.relkind IN ('r', 'S') ORDER BY 1;

-- The kinds of role, set up as the README says.
CREATE ROLE idsync_sec_app;
CREATE ROLE idsync_sec_peer;
CREATE ROLE idsync_sec_daemon;
CREATE ROLE idsync_sec_admin;
CREATE ROLE idsync_sec_nobody;
GRANT USAGE ON SCHEMA idsync, sec TO idsync_sec_app, idsync_sec_nobody;
GRANT USAGE ON SCHEMA sec TO idsync_sec_peer, idsync_sec_daemon, idsync_sec_admin;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON sec.pkg, sec.kv TO idsync_sec_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA sec TO idsync_sec_app;
SELECT idsync.grant_peer('idsync_sec_peer', '00000000-0000-0000-0000-0000000000aa');
GRANT SELECT, INSERT, UPDATE, DELETE ON sec.pkg, sec.kv TO idsync_sec_peer;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA sec TO idsync_sec_peer;
SELECT idsync.grant_daemon('idsync_sec_daemon');
GRANT SELECT ON sec.pkg, sec.kv TO idsync_sec_daemon;
SELECT idsync.grant_admin('idsync_sec_admin');
SELECT role_name, kind, node_id FROM idsync.roles ORDER BY role_name, kind;
SELECT regexp_replace(try($$SELECT idsync.grant_peer('idsync_sec_nobody', idsync.node_id())$$),
                      '[0-9a-f-]{36}', '<uuid>') AS try;
SELECT try($$SELECT idsync.grant_peer('idsync_sec_nobody', NULL)$$);

-- Everything idsync keeps, to show that the refused attacks change nothing.
CREATE FUNCTION state_digest() RETURNS text LANGUAGE sql AS $$
    SELECT md5(concat_ws('|',
        (SELECT string_agg(t::text, ',' ORDER BY t.relid) FROM idsync.tables t),
        (SELECT string_agg(d::text, ',' ORDER BY d::text) FROM idsync.table_deltas d),
        (SELECT string_agg(s::text, ',' ORDER BY s::text) FROM idsync.incoming_sync s),
        (SELECT string_agg(s::text, ',' ORDER BY s::text) FROM idsync.outgoing_sync s),
        (SELECT string_agg(r::text, ',' ORDER BY r.reject_id) FROM idsync.rejects r),
        (SELECT string_agg(r::text, ',' ORDER BY r::text) FROM idsync.roles r),
        (SELECT string_agg(n::text, ',') FROM idsync.node n),
        (SELECT string_agg(p::text, ',' ORDER BY p.id) FROM sec.pkg p),
        (SELECT string_agg(k::text, ',' ORDER BY k.id) FROM sec.kv k)))
$$;
SELECT state_digest() AS before \gset

-- 1. Relations of every kind: refused by kind (a view has no rows to scan), never a crash.
CREATE VIEW sec.v AS SELECT 1 AS x;
SELECT try($$SELECT * FROM idsync.table_hash('pg_catalog.pg_roles', '{}')$$);
SELECT try($$SELECT * FROM idsync.table_hash('sec.v', '{}')$$);
SELECT try($$SELECT * FROM idsync.table_hash('sec.pkg_id_seq', '{}')$$);
SELECT try($$SELECT * FROM idsync.table_hash('sec.pkg_pkey', '{}')$$);
SELECT try($$SELECT * FROM idsync.insert_missing('sec.v', '{x}', ARRAY[1])$$);
SELECT try($$SELECT * FROM idsync.insert_missing_staged('sec.pkg', 'sec.pkg_pkey')$$);
SELECT try($$SELECT idsync.replicate('pg_catalog.pg_authid', '{rolname}')$$);
SELECT try($$SELECT idsync.replicate('idsync.rejects', '{reject_id}')$$);
-- A role with USAGE only may call the application API and nothing else.
SET ROLE idsync_sec_nobody;
SELECT try($$SELECT * FROM idsync.table_hash('pg_catalog.pg_roles', '{}')$$);
SELECT try($$SELECT idsync.next_point()$$);
SELECT try($$SELECT * FROM idsync.sync_info('sec.pkg')$$);
SELECT try($$SELECT * FROM idsync.insert_missing('sec.secret', '{s}', ARRAY['x'])$$);
SELECT try($$SELECT idsync.replicate('sec.secret', '{s}')$$);
RESET ROLE;

-- 2. Row-level security: nothing reads or hashes rows a policy hides.
CREATE TABLE sec.rls (id bigserial PRIMARY KEY, owner_name text NOT NULL, secret text NOT NULL UNIQUE);
INSERT INTO sec.rls (owner_name, secret) VALUES ('idsync_sec_peer', 'visible'), ('someone', 'hidden');
SELECT idsync.replicate('sec.rls', '{secret}');
ALTER TABLE sec.rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON sec.rls USING (owner_name = current_user);
GRANT SELECT, INSERT ON sec.rls TO idsync_sec_peer, idsync_sec_app;
GRANT EXECUTE ON FUNCTION idsync.table_hash(regclass, text[]) TO idsync_sec_app;
SET ROLE idsync_sec_app;
SELECT try($$SELECT * FROM idsync.table_hash('sec.rls', '{id}')$$);
SET ROLE idsync_sec_peer;
SELECT count(*) AS rows_the_peer_sees FROM sec.rls;
SELECT try($$SELECT * FROM idsync.sync_info('sec.rls')$$);
SELECT try($$SELECT * FROM idsync.merge_items('sec.rls', '[]', '00000000-0000-0000-0000-0000000000aa')$$);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION idsync.table_hash(regclass, text[]) FROM idsync_sec_app;
SELECT idsync.unreplicate('sec.rls');
DROP TABLE sec.rls;
SELECT state_digest() AS before \gset

-- 3. A peer speaks for its node, through functions that check it; it writes none of idsync's
-- tables, registers nothing and merges nothing it could not insert itself.
SET ROLE idsync_sec_peer;
SELECT try($$INSERT INTO idsync.tables (relid, key_columns, mode, point_column, local_columns)
             VALUES ('sec.secret', '{s}', 'insert_only', 'id', '{}')$$);
SELECT try($$UPDATE idsync.incoming_sync SET sync_point = 9223372036854775807$$);
SELECT try($$INSERT INTO idsync.table_deltas VALUES ('sec.pkg'::regclass, 1, 2, 3)$$);
SELECT try($$INSERT INTO idsync.rejects (relid, item, sqlstate, message) VALUES ('sec.secret', '{}', 'x', 'y')$$);
SELECT try($$INSERT INTO idsync.roles VALUES ('idsync_sec_peer', 'admin', NULL)$$);
SELECT try($$SELECT idsync._register('sec.secret', '{s}', 'insert_only', NULL, NULL, 'id', '{}')$$);
SELECT try($$SELECT idsync.replicate('sec.secret', '{s}')$$);
SELECT try($$SELECT * FROM idsync.merge_items('sec.pkg', '[{"point": 1, "item": {"name": "x", "size": 1}}]',
                                              '00000000-0000-0000-0000-0000000000bb')$$);
SELECT try($$SELECT * FROM idsync.merge_items('sec.secret', '[]', '00000000-0000-0000-0000-0000000000aa')$$);
SELECT try($$SELECT idsync._park_rows('sec.secret', NULL, '[{"item": {"s": "planted"}, "sqlstate": "23505", "message": "m"}]')$$);
SELECT try($$SELECT * FROM idsync._take_rejects('sec.pkg', NULL, false)$$);
SELECT try($$SELECT idsync._raise_sync('sec.pkg', '00000000-0000-0000-0000-0000000000cc', 5, false)$$);
SELECT try($$SELECT idsync.correct_sync('sec.pkg', '00000000-0000-0000-0000-0000000000cc', 0)$$);
SELECT try($$SELECT idsync._begin_apply('sec.kv', NULL, 'reclaim')$$);
SELECT try($$SELECT idsync._forget('sec.pkg'::regclass::oid)$$);
SELECT try($$SELECT idsync.reset_node_id()$$);
SELECT try($$SELECT idsync.grant_admin('idsync_sec_peer')$$);
SELECT try($$SELECT * FROM idsync.reclaim('sec.kv', '0 s')$$);
SELECT try($$SELECT * FROM idsync.retry_rejects('sec.pkg')$$);
SELECT try($$SELECT idsync.next_point()$$);
RESET ROLE;
SELECT state_digest() = :'before' AS nothing_changed;
-- What a peer may do, it does: merge in its own node's name, pass on points (transitive
-- sync: the sender detects a point beyond what it issued, see idsyncd), correct its own point.
SET ROLE idsync_sec_peer;
SELECT received, inserted, rejected, sync_point FROM idsync.merge_items('sec.pkg',
    '[{"point": 7, "item": {"name": "make", "size": 2}}]', '00000000-0000-0000-0000-0000000000aa');
SELECT idsync.merge_syncs('sec.pkg', '[{"remote_id": "00000000-0000-0000-0000-0000000000cc", "sync_point": 9}]');
SELECT idsync.correct_sync('sec.pkg', '00000000-0000-0000-0000-0000000000aa', 3);
SELECT idsync.get_sync('sec.pkg', '00000000-0000-0000-0000-0000000000aa') AS corrected;
-- A row the peer may not write stays out, whatever it sends (here: a version far ahead).
SELECT received, inserted, rejected FROM idsync.merge_items('sec.kv',
    '[{"point": 8, "item": {"k": "b", "v": "x", "idsync_version": 9223372036854775807, "idsync_deleted": false}}]',
    '00000000-0000-0000-0000-0000000000aa');
-- A table's plan is read from idsync.tables by the table's oid: no function a peer may call
-- takes a registration row that could carry SQL of its own (the two that take one only list
-- column names from it), and a peer cannot write the plan.
SELECT array_agg(p.proname ORDER BY p.proname) AS take_a_registration_row
FROM pg_proc p WHERE p.pronamespace = 'idsync'::regnamespace
  AND 'idsync.tables'::regtype = ANY (p.proargtypes)
  AND has_function_privilege(p.oid, 'EXECUTE');
SELECT try($$UPDATE idsync.tables SET plan = '{"items": "SELECT forged"}' WHERE relid = 'sec.pkg'::regclass$$);
RESET ROLE;
SELECT point, item ->> 'k' AS k, sqlstate FROM idsync.rejects WHERE relid = 'sec.kv'::regclass;
-- The daemon's local role reads and records outgoing points; it merges nothing.
SET ROLE idsync_sec_daemon;
SELECT count(*) AS items FROM idsync.items_since('sec.pkg', -1);
SELECT idsync.merge_syncs('sec.pkg', '[{"remote_id": "00000000-0000-0000-0000-0000000000aa", "sync_point": 2}]', false);
SELECT try($$SELECT * FROM idsync.merge_items('sec.pkg', '[]')$$);
SELECT try($$SELECT idsync.merge_syncs('sec.pkg', '[{"remote_id": "00000000-0000-0000-0000-0000000000aa", "sync_point": 2}]')$$);
RESET ROLE;
-- An administrator registers the tables it owns, and only those.
CREATE TABLE sec.admins (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
ALTER TABLE sec.admins OWNER TO idsync_sec_admin;
GRANT CREATE ON SCHEMA sec TO idsync_sec_admin;
SET ROLE idsync_sec_admin;
SELECT try($$SELECT idsync.replicate('sec.secret', '{s}')$$);
SELECT idsync.replicate('sec.admins', '{name}');
SELECT idsync.unreplicate('sec.admins');
RESET ROLE;
DROP TABLE sec.admins;

-- 5. No trigger runs SQL from its arguments, and idsync's triggers run on registered tables only.
GRANT TRIGGER ON sec.secret TO idsync_sec_nobody;
SET ROLE idsync_sec_nobody;
SELECT try($$CREATE TRIGGER evil AFTER INSERT ON sec.secret REFERENCING NEW TABLE AS n
             FOR EACH STATEMENT EXECUTE FUNCTION idsync.content_trigger('natural', 'id', '--', 's',
             'ALTER ROLE idsync_sec_nobody SUPERUSER')$$);
RESET ROLE;
CREATE TRIGGER planted AFTER INSERT ON sec.secret REFERENCING NEW TABLE AS n
FOR EACH STATEMENT EXECUTE FUNCTION idsync.content_trigger('natural', 'id', '--', 's',
    'ALTER ROLE idsync_sec_nobody SUPERUSER');
SELECT try($$INSERT INTO sec.secret (s) VALUES ('more')$$);
DROP TRIGGER planted ON sec.secret;
CREATE TRIGGER planted BEFORE INSERT ON sec.secret FOR EACH ROW EXECUTE FUNCTION idsync.change_trigger('lww', 's', 's');
SELECT try($$INSERT INTO sec.secret (s) VALUES ('more')$$);
DROP TRIGGER planted ON sec.secret;
SELECT rolsuper FROM pg_roles WHERE rolname = 'idsync_sec_nobody';

-- 6. No setting switches the protections off, and TRUNCATE is refused for every role.
SELECT state_digest() AS before \gset
SET ROLE idsync_sec_app;
SET idsync.applying = on;
SELECT try($$UPDATE sec.pkg SET size = 0$$);
SELECT try($$DELETE FROM sec.pkg$$);
SELECT try($$TRUNCATE sec.pkg$$);
SELECT try($$UPDATE sec.kv SET k = 'renamed'$$);
SELECT try($$SELECT idsync._begin_apply('sec.kv', NULL, 'merge')$$);
DELETE FROM sec.kv WHERE k = 'a';
SELECT k, v FROM sec.kv ORDER BY k;
RESET idsync.applying;
RESET ROLE;
SELECT key FROM idsync.tombstones WHERE relid = 'sec.kv'::regclass;
INSERT INTO sec.kv (k, v) VALUES ('a', 'one');
-- The flag merges raise is per table and ends with the (sub)transaction that raised it: a
-- merged lww row must come with its version, a local one gets the clock's.
BEGIN;
SELECT idsync._begin_apply('sec.kv', NULL, 'merge');
SELECT try($$INSERT INTO sec.kv (k, idsync_version) VALUES ('flag', NULL)$$) AS while_applying;
SELECT try($$INSERT INTO sec.pkg (name) VALUES ('flag')$$) AS other_table;
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT idsync._begin_apply('sec.kv', NULL, 'merge');
ROLLBACK TO s;
SELECT try($$INSERT INTO sec.kv (k, idsync_version) VALUES ('flag', NULL)$$) AS after_rollback_to;
ROLLBACK;
SELECT try($$INSERT INTO sec.kv (k, idsync_version) VALUES ('flag', NULL)$$) AS next_transaction;
DELETE FROM sec.kv WHERE k = 'flag';
SELECT try($$TRUNCATE sec.pkg$$) AS superuser_truncate;
SELECT try($$TRUNCATE sec.kv$$) AS superuser_truncate_lww;

-- 7. Versions are bounded: below zero or beyond the clock plus idsync.max_clock_skew is 22003;
-- a merged row with such a version is parked.
SELECT try($$UPDATE sec.kv SET idsync_version = 9223372036854775807 WHERE k = 'a'$$);
SELECT try($$UPDATE sec.kv SET idsync_version = -1 WHERE k = 'a'$$);
SELECT regexp_replace(try($$INSERT INTO sec.kv (k, idsync_version)
                             VALUES ('far', idsync.hlc_now() + (3600000::bigint << 16))$$),
                      '[0-9]{10,}', '<an hour ahead>') AS try;
SELECT received, inserted, rejected FROM idsync.merge_items('sec.kv',
    '[{"point": 9, "item": {"k": "neg", "v": "x", "idsync_version": -5, "idsync_deleted": false}}]');
SELECT item ->> 'k' AS k, sqlstate FROM idsync.rejects WHERE relid = 'sec.kv'::regclass ORDER BY reject_id;
SHOW idsync.max_clock_skew;
SET ROLE idsync_sec_app;
SELECT try($$SET idsync.max_clock_skew = '24h'$$);
RESET ROLE;
-- A row whose version is already the largest bigint (written before 0.5.0) cannot move on.
ALTER TABLE sec.kv DISABLE TRIGGER idsync_change;
UPDATE sec.kv SET idsync_version = 9223372036854775807 WHERE k = 'a';
ALTER TABLE sec.kv ENABLE TRIGGER idsync_change;
SELECT try($$UPDATE sec.kv SET v = 'two' WHERE k = 'a'$$);
ALTER TABLE sec.kv DISABLE TRIGGER idsync_change;
UPDATE sec.kv SET idsync_version = idsync.hlc_now() WHERE k = 'a';
ALTER TABLE sec.kv ENABLE TRIGGER idsync_change;

-- 8. Points are drawn by writes only.
SET ROLE idsync_sec_app;
SELECT try($$SELECT idsync.next_point()$$);
SELECT try($$SELECT idsync.stable_point()$$);
RESET ROLE;

-- 4. search_path: hostile functions and operators in public and in "$user", taken first.
CREATE ROLE idsync_sec_evil;
GRANT CREATE ON SCHEMA public TO idsync_sec_evil;
SELECT pg_catalog.format('CREATE SCHEMA %I AUTHORIZATION idsync_sec_evil', current_user) \gexec
CREATE TABLE public.planted_log (what text);
GRANT INSERT ON public.planted_log TO PUBLIC;
SET ROLE idsync_sec_evil;
CREATE FUNCTION public.evil() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.planted_log VALUES (current_query());
    RETURN false;
END $$;
CREATE FUNCTION public.evil_text(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT public.evil()';
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_text);
CREATE FUNCTION public.evil_oid_regclass(oid, regclass) RETURNS boolean LANGUAGE sql AS 'SELECT public.evil()';
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = public.evil_oid_regclass);
CREATE FUNCTION public.evil_regclass(regclass, regclass) RETURNS boolean LANGUAGE sql AS 'SELECT public.evil()';
CREATE OPERATOR public.= (LEFTARG = regclass, RIGHTARG = regclass, FUNCTION = public.evil_regclass);
CREATE FUNCTION public.evil_name(name, name) RETURNS boolean LANGUAGE sql AS 'SELECT public.evil()';
CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.evil_name);
CREATE FUNCTION public.evil_bigint(bigint, bigint) RETURNS boolean LANGUAGE sql AS 'SELECT public.evil()';
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.evil_bigint);
CREATE FUNCTION public.evil_uuid(uuid, uuid) RETURNS boolean LANGUAGE sql AS 'SELECT public.evil()';
CREATE OPERATOR public.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = public.evil_uuid);
CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.evil();
END $$;
CREATE FUNCTION public.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.evil();
END $$;
CREATE FUNCTION public.jsonb_array_elements(jsonb) RETURNS SETOF jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.evil();
END $$;
SELECT pg_catalog.format('CREATE FUNCTION %I.unnest(name[]) RETURNS SETOF name LANGUAGE plpgsql AS $f$ BEGIN PERFORM public.evil(); END $f$',
              session_user) \gexec
SELECT pg_catalog.format('CREATE OPERATOR %I.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_text)',
              session_user) \gexec
CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.evil();
    RETURN '';
END $$;
RESET ROLE;
-- Every write path, as a superuser whose path puts the planted schemas first.
CREATE TABLE sec.drv (id bigserial PRIMARY KEY, path text NOT NULL UNIQUE, size bigint);
CREATE TABLE sec.out (id bigserial PRIMARY KEY, drv_id bigint NOT NULL REFERENCES sec.drv,
                      name text NOT NULL, UNIQUE (drv_id, name));
CREATE TEMP TABLE staging (ord bigint, path text, size bigint);
INSERT INTO staging VALUES (1, '/a', 1), (2, '/b', 2);
SET search_path = "$user", public, pg_catalog;
SELECT count(*) AS ids FROM idsync.insert_missing('sec.drv', '{path,size}', ARRAY['/x', '/y'], ARRAY[1, 2]);
SELECT count(*) AS sets FROM idsync.insert_missing_sets('sec.drv', '{path}', ARRAY[1, 1]::bigint[], ARRAY['/x', '/z']);
SELECT count(*) AS staged FROM idsync.insert_missing_staged('sec.drv', 'staging');
SELECT idsync.replicate('sec.drv', '{path}');
SELECT idsync.replicate('sec.out', '{drv_id,name}');
INSERT INTO sec.out (drv_id, name) SELECT id, 'out' FROM sec.drv;
ALTER TABLE sec.drv ADD COLUMN note text;
SELECT count(*) AS items FROM idsync.items_since('sec.out', -1);
SELECT length(idsync.bulk_query('sec.out')) > 0 AS bulk_query;
SELECT idsync.bulk_query('sec.out', 1000000, '00000000-0000-0000-0000-0000000000aa') AS bulk \gset
SELECT count(*) AS bulk_rows FROM (:bulk) b;
SELECT row_count FROM idsync.sync_info('sec.out');
SELECT received, inserted, rejected FROM idsync.merge_items('sec.out',
    '[{"point": 1, "item": {"name": "dev", "drv_id": {"path": "/x"}}},
      {"point": 2, "item": {"name": "dev", "drv_id": {"path": "/nowhere"}}}]',
    '00000000-0000-0000-0000-0000000000aa');
BEGIN;
SELECT idsync.create_staging('sec.out') IS NOT NULL AS staging_made;
INSERT INTO idsync_bulk (name, drv_id) VALUES ('doc', '{"path": "/y"}');
SELECT received, inserted FROM idsync.merge_staged('sec.out', 'pg_temp.idsync_bulk', '00000000-0000-0000-0000-0000000000aa', 3);
COMMIT;
SELECT idsync.merge_syncs('sec.out', (SELECT jsonb_agg(s) FROM idsync.get_syncs('sec.out') s));
SELECT retried FROM idsync.retry_rejects('sec.out');
SELECT idsync.retry_waiting('sec.drv');
DELETE FROM sec.kv WHERE k OPERATOR(pg_catalog.=) 'a';
-- lww deletes: tombstones with references in their keys, a deleted key written again, merged
-- tombstones (of a row here, and of one whose referenced row never came), the tombstones a bulk
-- copy sends, the content state recomputed.
CREATE TABLE sec.tag (id bigserial PRIMARY KEY, drv_id bigint NOT NULL REFERENCES sec.drv,
                      tag text NOT NULL, UNIQUE (drv_id, tag));
SELECT idsync.replicate('sec.tag', '{drv_id,tag}', 'lww');
INSERT INTO sec.tag (drv_id, tag) SELECT id, 't' FROM sec.drv;
DELETE FROM sec.tag WHERE tag OPERATOR(pg_catalog.=) 't';
INSERT INTO sec.tag (drv_id, tag) SELECT id, 't' FROM sec.drv;
SELECT received, updated FROM idsync.merge_items('sec.tag',
    '[{"point": 1, "item": {"tag": "t", "drv_id": {"path": "/x"}, "idsync_version": 1, "idsync_deleted": true}},
      {"point": 2, "item": {"tag": "u", "drv_id": {"path": "/gone"}, "idsync_version": 1, "idsync_deleted": true}}]',
    '00000000-0000-0000-0000-0000000000aa');
SELECT count(*) AS tombstone_items FROM idsync.tombstones_since('sec.tag', -1);
SELECT count(*) > 0 AS buckets FROM idsync.compare_buckets('sec.tag', 8);
SELECT count(*) AS compared_rows FROM idsync.compare_rows('sec.tag',
    ARRAY(SELECT bucket FROM idsync.compare_buckets('sec.tag', 8)), 8);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) AS compared_rows_kept_buckets FROM idsync.compare_rows('sec.tag',
    ARRAY(SELECT bucket FROM idsync.compare_buckets('sec.tag', 8)), 8);
COMMIT;
SELECT idsync.record_conflicts('sec.tag', 5);
SELECT unchanged FROM idsync.merge_items('sec.tag',
    '[{"point": 3, "item": {"tag": "t", "drv_id": {"path": "/y"}, "idsync_version": 1}}]',
    '00000000-0000-0000-0000-0000000000aa');
SELECT count(*) AS conflict_records FROM idsync.conflicts;
SELECT row_count FROM idsync.table_hash('sec.tag');
SELECT idsync.unreplicate('sec.tag');
DROP TABLE sec.tag;
SELECT tombstones FROM idsync.reclaim('sec.kv', '0 s');
SELECT idsync.compact('sec.out') >= 0 AS compacted;
SELECT idsync.unreplicate('sec.out');
DROP TABLE sec.out;
RESET search_path;
-- (The test's own statements above compare nothing with the planted operators.)
SELECT what AS planted_code_ran_in FROM public.planted_log;

-- Tombstones are idsync's: a writer can neither write nor purge them, nor read them through
-- idsync; a peer role without DELETE on an lww table cannot merge into it (its tombstones
-- delete rows).
SET ROLE idsync_sec_app;
SELECT try($$DELETE FROM idsync.tombstones$$);
SELECT try($$INSERT INTO idsync.tombstones (relid, key_hash, key, version, point, hash1, hash2)
             VALUES ('sec.kv'::regclass, gen_random_uuid(), '{}', 1, 1, 0, 0)$$);
SELECT try($$SELECT idsync._purge_tombstones('sec.kv', '0 s')$$);
SELECT try($$SELECT * FROM idsync.tombstones_since('sec.kv', -1)$$);
RESET ROLE;
REVOKE DELETE ON sec.kv FROM idsync_sec_peer;
SET ROLE idsync_sec_peer;
SELECT try($$SELECT * FROM idsync.merge_items('sec.kv',
    '[{"point": 1, "item": {"k": "flag", "idsync_version": 1, "idsync_deleted": true}}]',
    '00000000-0000-0000-0000-0000000000aa')$$);
RESET ROLE;
GRANT DELETE ON sec.kv TO idsync_sec_peer;

-- Clean up (the merges left their stage tables, owned by the roles that merged).
DISCARD TEMP;
SELECT pg_catalog.format('DROP SCHEMA %I CASCADE', current_user) \gexec
DROP FUNCTION public.evil, public.evil_text, public.evil_oid_regclass, public.evil_regclass,
              public.evil_name, public.evil_bigint, public.evil_uuid, public.unnest(text[]),
              public.unnest(bigint[]), public.jsonb_array_elements(jsonb), public.format(text, text) CASCADE;
DROP TABLE public.planted_log;
DROP SCHEMA sec CASCADE;
SELECT idsync.revoke_role(r) FROM unnest(ARRAY['idsync_sec_peer', 'idsync_sec_daemon', 'idsync_sec_admin']::regrole[]) r;
REVOKE ALL ON SCHEMA idsync FROM idsync_sec_app, idsync_sec_nobody;
REVOKE CREATE ON SCHEMA public FROM idsync_sec_evil;
DROP ROLE idsync_sec_app, idsync_sec_peer, idsync_sec_daemon, idsync_sec_admin, idsync_sec_nobody, idsync_sec_evil;
DROP FUNCTION state_digest();
SELECT count(*) AS roles_left FROM idsync.roles;
