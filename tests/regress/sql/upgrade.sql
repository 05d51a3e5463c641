-- ALTER EXTENSION UPDATE from 0.3.0 with tables already registered: references start to travel
-- as natural keys, content hashes are recomputed in natural form, lww keys get their guard, and
-- a registration that cannot replicate its foreign keys is reported, not fatal. Runs last: it
-- drops and recreates the extension.
SET client_min_messages = warning;
DROP EXTENSION idsync CASCADE;
CREATE SCHEMA upg;
CREATE TABLE upg.derivations (id bigserial PRIMARY KEY, file_name text NOT NULL UNIQUE);
CREATE TABLE upg.derivation_outputs (id bigserial PRIMARY KEY,
    derivation_id bigint NOT NULL REFERENCES upg.derivations, name text NOT NULL,
    path text NOT NULL, UNIQUE (derivation_id, name));
CREATE TABLE upg.loose (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE upg.orphan (id bigserial PRIMARY KEY, loose_id bigint REFERENCES upg.loose,
    k text NOT NULL UNIQUE);
CREATE EXTENSION idsync VERSION '0.3.0';
-- 0.3.0 took children before parents and foreign keys to unregistered tables.
SELECT idsync.replicate('upg.derivation_outputs', '{derivation_id,name}');
SELECT idsync.replicate('upg.derivations', '{file_name}');
SELECT idsync.replicate('upg.orphan', '{k}', 'lww');
INSERT INTO upg.derivations (file_name) VALUES ('a.drv'), ('b.drv');
INSERT INTO upg.derivation_outputs (derivation_id, name, path) SELECT id, 'out', '/p' FROM upg.derivations;
SELECT item FROM idsync.items_since('upg.derivation_outputs', -1) ORDER BY point LIMIT 1;
SET client_min_messages = notice;
ALTER EXTENSION idsync UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'idsync';
SELECT item FROM idsync.items_since('upg.derivation_outputs', -1) ORDER BY point LIMIT 1;
SELECT try($$SELECT * FROM idsync.items_since('upg.orphan', -1)$$);
CREATE FUNCTION upg.fresh_hash(target regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    state record;
BEGIN
    EXECUTE idsync._content_state_query(target) INTO state;
    RETURN lpad(to_hex(state.hash1), 16, '0') || lpad(to_hex(state.hash2), 16, '0');
END $$;
INSERT INTO upg.derivation_outputs (derivation_id, name, path) SELECT id, 'dev', '/d' FROM upg.derivations;
SELECT (idsync.sync_info('upg.derivation_outputs')).content_hash
       = upg.fresh_hash('upg.derivation_outputs') AS natural_hash_kept;
INSERT INTO upg.orphan (k) VALUES ('y');
SELECT try($$UPDATE upg.orphan SET k = 'x'$$) AS lww_key_guarded;
-- 0.5.0: the triggers read the registration; none keeps SQL (or anything but a message) in its
-- arguments, and a DELETE of an lww row removes it and keeps its tombstone.
SELECT t.tgrelid::regclass AS table_name, t.tgname, t.tgnargs FROM pg_trigger t
WHERE t.tgname LIKE 'idsync%' AND t.tgnargs > 0 ORDER BY 1, 2;
DELETE FROM upg.orphan WHERE k = 'y';
SELECT k FROM upg.orphan;
SELECT key FROM idsync.tombstones WHERE relid = 'upg.orphan'::regclass;
SELECT (idsync.sync_info('upg.derivation_outputs')).content_hash
       = upg.fresh_hash('upg.derivation_outputs') AS natural_hash_kept_after_0_5;
INSERT INTO upg.derivation_outputs (derivation_id, name, path) SELECT id, 'doc', '/doc' FROM upg.derivations;
SELECT (idsync.sync_info('upg.derivation_outputs')).content_hash
       = upg.fresh_hash('upg.derivation_outputs') AS natural_hash_follows_writes;
SET client_min_messages = warning;
DROP SCHEMA upg CASCADE;
