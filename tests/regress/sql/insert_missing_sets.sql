-- insert_missing_sets: the member ids of many small sets at once.
SET client_min_messages = warning;
CREATE SCHEMA insert_missing_sets;
SET search_path = insert_missing_sets, public;

CREATE TABLE license (id bigserial PRIMARY KEY, name text UNIQUE);
-- Package 1 has MIT and GPL, package 2 has MIT twice, package 7 has BSD; set keys need not be
-- ordered or dense, and ids come back sorted and distinct.
SELECT * FROM idsync.insert_missing_sets('license', '{name}',
    ARRAY[7, 1, 1, 2, 2], ARRAY['BSD', 'MIT', 'GPL', 'MIT', 'MIT']);
SELECT * FROM idsync.insert_missing_sets('license', '{name}', ARRAY[3, 3], ARRAY['GPL', 'Apache']);
SELECT * FROM idsync.insert_missing_sets('license', '{name}', ARRAY[]::bigint[], ARRAY[]::text[]);
SELECT id, name FROM license ORDER BY id;

SELECT try($$SELECT * FROM idsync.insert_missing_sets('license', '{name}', ARRAY[1], ARRAY['a', 'b'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing_sets('license', '{name}', ARRAY[1, NULL], ARRAY['a', 'b'])$$);
SELECT try($$SELECT * FROM idsync.insert_missing_sets('license', '{name}', NULL, ARRAY['a'])$$);
SELECT count(*) FROM license;
