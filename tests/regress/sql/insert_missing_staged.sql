-- insert_missing_staged: the same contract, with the rows in a staging table filled by COPY.
SET client_min_messages = warning;
CREATE SCHEMA insert_missing_staged;
SET search_path = insert_missing_staged, public;

CREATE TABLE drv (id bigserial PRIMARY KEY, path text NOT NULL, system text);
CREATE UNIQUE INDEX ON drv (path, coalesce(system, ''));
INSERT INTO drv (path, system) VALUES ('/existing', 'x86');

CREATE TEMP TABLE staging (ord bigint GENERATED ALWAYS AS IDENTITY, path text, system text);
COPY staging (path, system) FROM STDIN;
/b	x86
/existing	x86
/a	\N
/b	x86
/a	\N
\.
SELECT * FROM idsync.insert_missing_staged('drv', 'staging') ORDER BY ord;
SELECT * FROM idsync.insert_missing_staged('drv', 'staging', '{path,system}') ORDER BY ord;
SELECT id, path, system FROM drv ORDER BY id;

-- More rows than one chunk (50,000), with duplicates spanning chunk boundaries: each key is
-- inserted once, and every row of a key this call created says inserted.
CREATE TABLE big (id bigserial PRIMARY KEY, k int UNIQUE);
INSERT INTO big (k) SELECT g FROM generate_series(1, 1000) g;
CREATE TEMP TABLE big_staging (ord bigint GENERATED ALWAYS AS IDENTITY, k int);
INSERT INTO big_staging (k) SELECT g / 3 FROM generate_series(1, 120000) g ORDER BY random();
-- (Results are kept first: a statement does not see the rows its own function call inserts.)
CREATE TEMP TABLE big_result AS SELECT * FROM idsync.insert_missing_staged('big', 'big_staging');
SELECT count(*) AS rows, count(DISTINCT r.id) AS ids,
       count(*) FILTER (WHERE inserted) AS inserted_rows,
       count(*) FILTER (WHERE r.id IS NULL) AS null_ids,
       count(*) FILTER (WHERE b.k IS DISTINCT FROM s.k) AS wrong_ids,
       bool_and(inserted = (s.k NOT BETWEEN 1 AND 1000)) AS inserted_flags_right
FROM big_result r JOIN big_staging s USING (ord) LEFT JOIN big b ON b.id = r.id;
SELECT count(*) AS keys, count(DISTINCT k) AS distinct_keys FROM big;

-- Errors: no ord column, a missing column, a type that differs from the target's.
CREATE TEMP TABLE no_ord (path text, system text);
CREATE TEMP TABLE wrong_type (ord int, path varchar, system text);
SELECT try($$SELECT * FROM idsync.insert_missing_staged('drv', 'no_ord')$$);
SELECT try($$SELECT * FROM idsync.insert_missing_staged('drv', 'staging', '{path,arch}')$$);
SELECT try($$SELECT * FROM idsync.insert_missing_staged('drv', 'wrong_type')$$);
SELECT try($$SELECT * FROM idsync.insert_missing_staged('drv', NULL)$$);
