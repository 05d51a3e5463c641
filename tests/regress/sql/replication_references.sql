-- Normalized data: registered tables that reference each other by node-local ids. The same
-- schema twice (ref_a, ref_b) plays two nodes whose ids differ; rows travel between them as
-- items_since / merge_items do between nodes.
CREATE SCHEMA ref_a;
CREATE SCHEMA ref_b;
CREATE SCHEMA ref_other;
DO $$
DECLARE
    s text;
BEGIN
    FOREACH s IN ARRAY ARRAY['ref_a', 'ref_b'] LOOP
        EXECUTE replace($ddl$
        CREATE TABLE S.derivations (id bigserial PRIMARY KEY, file_name text NOT NULL UNIQUE);
        CREATE TABLE S.derivation_outputs (id bigserial PRIMARY KEY,
            derivation_id bigint NOT NULL REFERENCES S.derivations, name text NOT NULL,
            path text NOT NULL, UNIQUE (derivation_id, name));
        CREATE TABLE S.packages (id bigserial PRIMARY KEY, name text NOT NULL, version text,
            UNIQUE NULLS NOT DISTINCT (name, version));
        CREATE TABLE S.package_derivations (
            package_id bigint NOT NULL REFERENCES S.packages,
            derivation_id bigint NOT NULL REFERENCES S.derivations,
            system text NOT NULL, UNIQUE (package_id, derivation_id, system));
        -- A key that nests two levels: output -> derivation.
        CREATE TABLE S.output_tags (output_id bigint NOT NULL REFERENCES S.derivation_outputs,
            tag text NOT NULL, PRIMARY KEY (output_id, tag));
        -- A reference to the table itself, outside the key.
        CREATE TABLE S.categories (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE,
            parent_id bigint REFERENCES S.categories);
        -- A reference to a natural primary key travels as it is.
        CREATE TABLE S.licenses (name text PRIMARY KEY);
        CREATE TABLE S.package_licenses (package_id bigint NOT NULL REFERENCES S.packages,
            license text NOT NULL REFERENCES S.licenses, PRIMARY KEY (package_id, license));
        $ddl$, 'S.', s || '.');
    END LOOP;
END $$;
-- ref_b's ids start elsewhere, so equal ids would be a coincidence.
ALTER SEQUENCE ref_b.derivations_id_seq RESTART 1000;
ALTER SEQUENCE ref_b.derivation_outputs_id_seq RESTART 2000;
ALTER SEQUENCE ref_b.packages_id_seq RESTART 3000;
ALTER SEQUENCE ref_b.categories_id_seq RESTART 4000;
CREATE TABLE ref_other.builds (id bigserial PRIMARY KEY,
    derivation_id bigint NOT NULL REFERENCES ref_a.derivations, machine text NOT NULL,
    UNIQUE (derivation_id, machine));

-- Registration: parents first; what cannot replicate is refused.
SELECT try($$SELECT idsync.replicate('ref_a.derivation_outputs', '{derivation_id,name}')$$);
SELECT idsync.replicate(t || '.derivations', '{file_name}') FROM unnest('{ref_a,ref_b}'::text[]) t;
SELECT idsync.replicate(t || '.derivation_outputs', '{derivation_id,name}') FROM unnest('{ref_a,ref_b}'::text[]) t;
SELECT idsync.replicate(t || '.packages', '{name,version}', 'lww') FROM unnest('{ref_a,ref_b}'::text[]) t;
SELECT idsync.replicate(t || '.package_derivations', '{package_id,derivation_id,system}') FROM unnest('{ref_a,ref_b}'::text[]) t;
SELECT idsync.replicate(t || '.output_tags', '{output_id,tag}') FROM unnest('{ref_a,ref_b}'::text[]) t;
SELECT idsync.replicate(t || '.categories', '{name}', 'lww') FROM unnest('{ref_a,ref_b}'::text[]) t;
SELECT idsync.replicate(t || '.licenses', '{name}') FROM unnest('{ref_a,ref_b}'::text[]) t;
SELECT idsync.replicate(t || '.package_licenses', '{package_id,license}') FROM unnest('{ref_a,ref_b}'::text[]) t;
SELECT idsync.replicate('ref_other.builds', '{derivation_id,machine}');
SELECT target, columns, depth FROM idsync.replicated_tables()
WHERE table_name LIKE 'ref_a.%' OR table_name LIKE 'ref_other.%';

CREATE TABLE ref_a.tree (id bigserial PRIMARY KEY, parent_id bigint REFERENCES ref_a.tree,
    name text NOT NULL, UNIQUE NULLS NOT DISTINCT (parent_id, name));
SELECT try($$SELECT idsync.replicate('ref_a.tree', '{parent_id,name}')$$);
CREATE TABLE ref_a.pair (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, x int NOT NULL, UNIQUE (id, x));
SELECT idsync.replicate('ref_a.pair', '{k}');
CREATE TABLE ref_a.pair_child (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, pair_id bigint,
    x int, FOREIGN KEY (pair_id, x) REFERENCES ref_a.pair (id, x));
SELECT try($$SELECT idsync.replicate('ref_a.pair_child', '{k}')$$);
CREATE TABLE ref_a.output_notes (id bigserial PRIMARY KEY, derivation_id bigint, name text,
    note text NOT NULL UNIQUE,
    FOREIGN KEY (derivation_id, name) REFERENCES ref_a.derivation_outputs (derivation_id, name));
SELECT try($$SELECT idsync.replicate('ref_a.output_notes', '{note}')$$);
CREATE TABLE ref_a.deferred (id bigserial PRIMARY KEY, note text NOT NULL UNIQUE,
    derivation_id bigint REFERENCES ref_a.derivations DEFERRABLE INITIALLY DEFERRED);
SELECT try($$SELECT idsync.replicate('ref_a.deferred', '{note}')$$);
SELECT count(*) AS not_registered FROM idsync.tables
WHERE relid::text IN ('ref_a.tree', 'ref_a.pair_child', 'ref_a.output_notes', 'ref_a.deferred');
-- A registered parent keeps its registration while registered tables reference it.
SELECT try($$SELECT idsync.unreplicate('ref_a.derivations')$$);
-- A foreign key added later is checked the same way; the ALTER is undone.
CREATE TABLE ref_other.unregistered (id bigserial PRIMARY KEY, label text UNIQUE);
SELECT try($$ALTER TABLE ref_a.licenses ADD COLUMN origin bigint REFERENCES ref_other.unregistered$$);
SELECT count(*) AS origin_columns FROM pg_attribute WHERE attrelid = 'ref_a.licenses'::regclass AND attname = 'origin';

-- Node a loads; node b loads overlapping rows in another order.
INSERT INTO ref_a.derivations (file_name) VALUES ('d1.drv'), ('d2.drv'), ('d3.drv');
INSERT INTO ref_a.derivation_outputs (derivation_id, name, path)
SELECT d.id, o, '/store/' || d.file_name || '-' || o FROM ref_a.derivations d, unnest('{out,dev}'::text[]) o;
INSERT INTO ref_a.packages (name, version) VALUES ('hello', NULL), ('hello', '2.12'), ('gcc', '13');
INSERT INTO ref_a.package_derivations
SELECT p.id, d.id, 'x86_64-linux' FROM ref_a.packages p, ref_a.derivations d
WHERE (p.name, d.file_name) IN (('hello', 'd1.drv'), ('hello', 'd2.drv'), ('gcc', 'd3.drv'));
INSERT INTO ref_a.output_tags SELECT o.id, 'cached' FROM ref_a.derivation_outputs o WHERE o.name = 'out';
INSERT INTO ref_a.categories (name) VALUES ('root');
INSERT INTO ref_a.categories (name, parent_id) SELECT 'tools', id FROM ref_a.categories WHERE name = 'root';
INSERT INTO ref_a.categories (name, parent_id) SELECT 'compilers', id FROM ref_a.categories WHERE name = 'tools';
INSERT INTO ref_a.licenses VALUES ('MIT'), ('GPL-3.0');
INSERT INTO ref_a.package_licenses SELECT id, 'GPL-3.0' FROM ref_a.packages;
INSERT INTO ref_other.builds (derivation_id, machine) SELECT id, 'builder-1' FROM ref_a.derivations WHERE file_name = 'd1.drv';

INSERT INTO ref_b.derivations (file_name) VALUES ('d4.drv'), ('d2.drv');
INSERT INTO ref_b.derivation_outputs (derivation_id, name, path)
SELECT d.id, 'out', '/store/' || d.file_name || '-out' FROM ref_b.derivations d;
INSERT INTO ref_b.packages (name, version) VALUES ('zlib', '1.3'), ('hello', '2.12');
INSERT INTO ref_b.package_derivations
SELECT p.id, d.id, 'aarch64-linux' FROM ref_b.packages p, ref_b.derivations d;

-- What leaves a node: references as the natural keys of the rows they point at, nested.
SELECT item FROM idsync.items_since('ref_a.output_tags', -1) ORDER BY point LIMIT 1;
SELECT item FROM idsync.items_since('ref_a.package_derivations', -1) ORDER BY point;
SELECT item - 'idsync_version' AS item FROM idsync.items_since('ref_a.categories', -1) ORDER BY point;
SELECT item FROM idsync.items_since('ref_other.builds', -1);
SELECT item FROM idsync.items_since('ref_a.package_licenses', -1) ORDER BY point LIMIT 1;

-- Ships every row of `source` into `target` the way idsyncd's diff mode does; `newest_first`
-- reverses the order, so that rows referencing each other arrive before what they reference.
CREATE FUNCTION ship(source regclass, target regclass, newest_first boolean DEFAULT false)
RETURNS TABLE (received integer, inserted integer, unchanged integer, rejected integer)
LANGUAGE sql AS $$
    SELECT m.received, m.inserted, m.unchanged, m.rejected
    FROM idsync.merge_items(target, (
        SELECT coalesce(jsonb_agg(jsonb_build_object('point', i.point, 'item', i.item)
                                  ORDER BY CASE WHEN newest_first THEN -i.point ELSE i.point END), '[]')
        FROM idsync.items_since(source, -1, 100000) i)) m
$$;
CREATE FUNCTION waiting() RETURNS TABLE (relid regclass, message text)
LANGUAGE sql AS $$
    SELECT r.relid, r.message FROM idsync.rejects r WHERE r.sqlstate = '23503' ORDER BY r.reject_id
$$;

-- Children before parents: they wait, and merge as soon as what they reference arrives.
SELECT * FROM ship('ref_a.output_tags', 'ref_b.output_tags');
SELECT * FROM ship('ref_a.derivation_outputs', 'ref_b.derivation_outputs');
SELECT * FROM ship('ref_a.package_licenses', 'ref_b.package_licenses');
SELECT * FROM waiting();
SELECT * FROM ship('ref_a.derivations', 'ref_b.derivations');
SELECT * FROM waiting();
SELECT * FROM ship('ref_a.packages', 'ref_b.packages');
SELECT * FROM ship('ref_a.licenses', 'ref_b.licenses');
SELECT * FROM ship('ref_a.package_derivations', 'ref_b.package_derivations');
-- A self-reference, every child in the same batch before its parent.
SELECT * FROM ship('ref_a.categories', 'ref_b.categories', true);
SELECT count(*) AS still_waiting FROM waiting();
SELECT c.name, p.name AS parent FROM ref_b.categories c LEFT JOIN ref_b.categories p ON p.id = c.parent_id
ORDER BY c.name;

-- And back. Then both nodes hold the same rows under different ids.
SELECT sum(s.received) AS received, sum(s.inserted) AS inserted, sum(s.rejected) AS rejected
FROM unnest('{derivations,derivation_outputs,packages,package_derivations,output_tags,categories,licenses,package_licenses}'::text[]) t,
     ship(('ref_b.' || t)::regclass, ('ref_a.' || t)::regclass) s;
-- Versions that tie: ties go to the larger row hash, computed with references as natural keys,
-- so both nodes keep the same row although their ids differ.
-- (Versions are bounded by the clock, so the tie is at a version of now: which of the two rows
-- has the larger hash varies from run to run; that both nodes keep the same one does not.)
SELECT idsync.hlc_now() + (60000::bigint << 16) AS tie \gset
UPDATE ref_a.categories SET idsync_version = :tie,
    parent_id = (SELECT id FROM ref_a.categories WHERE name = 'root') WHERE name = 'compilers';
UPDATE ref_b.categories SET idsync_version = :tie, parent_id = NULL WHERE name = 'compilers';
CREATE TEMP TABLE tie_ships AS SELECT * FROM ship('ref_a.categories', 'ref_b.categories');
INSERT INTO tie_ships SELECT * FROM ship('ref_b.categories', 'ref_a.categories');
SELECT sum(received) AS received, sum(inserted) AS inserted, sum(unchanged) AS unchanged,
       sum(rejected) AS rejected
FROM tie_ships;
SELECT (a.parent_id IS NULL) = (b.parent_id IS NULL) AS same_row_on_both_nodes
FROM ref_a.categories a, ref_b.categories b WHERE a.name = 'compilers' AND b.name = 'compilers';
CREATE FUNCTION natural_view(s text) RETURNS TABLE (table_name text, row_count bigint, digest text)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE replace($q$
        SELECT 'derivation_outputs', count(*), md5(string_agg(d.file_name || ' ' || o.name || ' ' || o.path, ',' ORDER BY d.file_name, o.name))
        FROM S.derivation_outputs o JOIN S.derivations d ON d.id = o.derivation_id
        UNION ALL
        SELECT 'package_derivations', count(*), md5(string_agg(p.name || ' ' || coalesce(p.version, '-') || ' ' || d.file_name || ' ' || x.system, ',' ORDER BY p.name, p.version, d.file_name, x.system))
        FROM S.package_derivations x JOIN S.packages p ON p.id = x.package_id JOIN S.derivations d ON d.id = x.derivation_id
        UNION ALL
        SELECT 'output_tags', count(*), md5(string_agg(d.file_name || ' ' || o.name || ' ' || t.tag, ',' ORDER BY d.file_name, o.name, t.tag))
        FROM S.output_tags t JOIN S.derivation_outputs o ON o.id = t.output_id JOIN S.derivations d ON d.id = o.derivation_id
        UNION ALL
        SELECT 'categories', count(*), md5(string_agg(c.name || ' ' || coalesce(p.name, '-'), ',' ORDER BY c.name))
        FROM S.categories c LEFT JOIN S.categories p ON p.id = c.parent_id
        UNION ALL
        SELECT 'package_licenses', count(*), md5(string_agg(p.name || ' ' || coalesce(p.version, '-') || ' ' || l.license, ',' ORDER BY p.name, p.version, l.license))
        FROM S.package_licenses l JOIN S.packages p ON p.id = l.package_id
    $q$, 'S.', s || '.');
END $$;
SELECT a.table_name, a.row_count, a.digest = b.digest AS same
FROM natural_view('ref_a') a JOIN natural_view('ref_b') b USING (table_name) ORDER BY 1;
-- Content hashes cover references as natural keys, so they agree whatever the ids.
SELECT t AS table_name, (idsync.sync_info(('ref_a.' || t)::regclass)).content_hash
                      = (idsync.sync_info(('ref_b.' || t)::regclass)).content_hash AS same_hash
FROM unnest('{derivations,derivation_outputs,packages,package_derivations,output_tags,categories,licenses,package_licenses}'::text[]) t
ORDER BY 1;
-- The hash kept by the triggers is the hash of the table computed afresh.
CREATE FUNCTION fresh_hash(target regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    state record;
BEGIN
    EXECUTE idsync._content_state_query(target) INTO state;
    RETURN lpad(to_hex(state.hash1), 16, '0') || lpad(to_hex(state.hash2), 16, '0');
END $$;
SELECT t AS table_name, (idsync.sync_info(t)).content_hash = fresh_hash(t) AS kept_equals_fresh
FROM unnest('{ref_b.package_derivations,ref_b.output_tags,ref_b.categories}'::regclass[]) t ORDER BY 1;

-- A bulk copy: bulk_query on the sender, a staging table from create_staging on the receiver.
DELETE FROM ref_b.categories WHERE name = 'compilers';
BEGIN;
SELECT idsync.create_staging('ref_b.output_tags', 'tags_stage');
SELECT format_type(atttypid, atttypmod) AS output_id_type FROM pg_attribute
WHERE attrelid = 'pg_temp.tags_stage'::regclass AND attname = 'output_id';
INSERT INTO ref_a.derivation_outputs (derivation_id, name, path)
SELECT id, 'doc', '/store/d1.drv-doc' FROM ref_a.derivations WHERE file_name = 'd1.drv';
INSERT INTO ref_a.output_tags SELECT id, 'new' FROM ref_a.derivation_outputs WHERE name = 'doc';
SELECT idsync.bulk_query('ref_a.output_tags') AS query \gset
INSERT INTO tags_stage :query;
SELECT received, inserted, unchanged, rejected FROM idsync.merge_staged('ref_b.output_tags', 'tags_stage', NULL, NULL);
COMMIT;
SELECT * FROM waiting();
SELECT * FROM ship('ref_a.derivation_outputs', 'ref_b.derivation_outputs');
SELECT count(*) AS still_waiting FROM waiting();
SELECT count(*) AS doc_tags FROM ref_b.output_tags WHERE tag = 'new';
-- Without to_node, the columns of 0.4.0 (what a 0.4.0 idsyncd copies); for a node, also the origin.
SELECT idsync.bulk_query('ref_a.output_tags') AS q0,
       idsync.bulk_query('ref_a.output_tags', NULL, '00000000-0000-0000-0000-0000000000bb') AS q1 \gset
CREATE TEMP VIEW bulk_v0 AS :q0;
CREATE TEMP VIEW bulk_v1 AS :q1;
SELECT c.relname, array_agg(a.attname ORDER BY a.attnum) AS columns
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
WHERE c.relname IN ('bulk_v0', 'bulk_v1') AND c.relpersistence = 't' GROUP BY 1 ORDER BY 1;
DROP VIEW bulk_v0, bulk_v1;
-- A staging table with ids where natural keys belong is refused.
BEGIN;
CREATE TEMP TABLE raw_stage ON COMMIT DROP AS SELECT output_id, tag FROM ref_a.output_tags;
SELECT try($$SELECT * FROM idsync.merge_staged('ref_b.output_tags', 'raw_stage', NULL, NULL)$$);
ROLLBACK;

-- Deleting a row that rows reference follows the foreign key: here (NO ACTION) it is refused.
SELECT try($$DELETE FROM ref_a.packages WHERE name = 'hello' AND version IS NULL$$);
-- A row deleted on one node while another node references it: the tombstone follows the
-- foreign key there too, so it waits, visible with the waiting rows, and the row stays.
INSERT INTO ref_a.packages (name, version) VALUES ('short-lived', '0.1');
SELECT * FROM ship('ref_a.packages', 'ref_b.packages');
INSERT INTO ref_b.package_derivations
SELECT p.id, d.id, 'riscv64-linux' FROM ref_b.packages p, ref_b.derivations d
WHERE p.name = 'short-lived' AND d.file_name = 'd1.drv';
DELETE FROM ref_a.packages WHERE name = 'short-lived';
-- A row deleted before it ever left: only its tombstone travels.
INSERT INTO ref_a.packages (name, version) VALUES ('unreferenced', '1');
DELETE FROM ref_a.packages WHERE name = 'unreferenced';
SELECT * FROM ship('ref_a.packages', 'ref_b.packages');
SELECT * FROM waiting();
SELECT p.name, p.version, count(x.*) AS referenced_by
FROM ref_b.packages p LEFT JOIN ref_b.package_derivations x ON x.package_id = p.id
GROUP BY 1, 2 ORDER BY 1, 2;
SELECT t.key FROM idsync.tombstones t WHERE t.relid = 'ref_b.packages'::regclass ORDER BY 1;
-- Reclaim purges tombstones.
SELECT tombstones FROM idsync.reclaim('ref_b.packages', '0 seconds');
SELECT count(*) AS tombstones FROM idsync.tombstones t WHERE t.relid = 'ref_b.packages'::regclass;
DELETE FROM idsync.rejects r WHERE r.relid = 'ref_b.packages'::regclass;

-- An lww key cannot change in place.
SELECT try($$UPDATE ref_a.packages SET version = '2.13' WHERE name = 'hello' AND version = '2.12'$$);
SELECT try($$UPDATE ref_a.categories SET parent_id = NULL WHERE name = 'tools'$$);

-- An item from a sender that ships a raw id where a natural key belongs is parked, not merged.
SELECT received, inserted, rejected FROM idsync.merge_items('ref_b.derivation_outputs',
    '[{"point": 1, "item": {"derivation_id": 7, "name": "bad", "path": "/x"}}]');
SELECT sqlstate, message FROM idsync.rejects WHERE item ->> 'name' = 'bad';
DELETE FROM idsync.rejects WHERE item ->> 'name' = 'bad';

-- Unregistering goes children first.
SELECT idsync.unreplicate(t) FROM unnest(ARRAY['ref_other.builds', 'ref_a.package_licenses',
    'ref_b.package_licenses', 'ref_a.licenses', 'ref_b.licenses', 'ref_a.categories',
    'ref_b.categories', 'ref_a.output_tags', 'ref_b.output_tags', 'ref_a.package_derivations',
    'ref_b.package_derivations', 'ref_a.packages', 'ref_b.packages', 'ref_a.derivation_outputs',
    'ref_b.derivation_outputs', 'ref_a.derivations', 'ref_b.derivations', 'ref_a.pair']::regclass[]) t;
SELECT count(*) AS left_registered FROM idsync.tables WHERE relid::text LIKE 'ref\_%';
SET client_min_messages = warning;
DROP SCHEMA ref_a, ref_b, ref_other CASCADE;
DROP FUNCTION ship, waiting, natural_view, fresh_hash;
