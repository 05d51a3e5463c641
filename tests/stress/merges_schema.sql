-- Stress-test tables for concurrent merges: an insert_only table and an lww table, both
-- registered, and a log of every item a client merged (in the same transaction as the merge).
DROP TABLE IF EXISTS merge_once, merge_newest, sent;
CREATE TABLE merge_once (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, v text);
CREATE TABLE merge_newest (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, v text);
SELECT idsync.replicate('merge_once', '{k}'), idsync.replicate('merge_newest', '{k}', 'lww');
CREATE UNLOGGED TABLE sent (k text, version bigint, v text);
-- One client's batch: 200 random, overlapping keys (some twice) in random order, versions
-- random; a row's value is a function of its key and version, so equal versions are equal rows.
CREATE OR REPLACE FUNCTION merge_batch() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    items jsonb;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS batch (k text, version bigint, v text) ON COMMIT DELETE ROWS;
    INSERT INTO batch SELECT k, version, k || '@' || version
    FROM (SELECT 'k' || (random() * 1500)::int AS k, (random() * 1000)::bigint AS version
          FROM generate_series(1, 200)) s;
    SELECT jsonb_agg(jsonb_build_object('point', n, 'item', jsonb_build_object(
               'k', k, 'v', v, 'idsync_version', version, 'idsync_deleted', false)))
    INTO items FROM (SELECT *, row_number() OVER () AS n FROM batch ORDER BY random()) b;
    PERFORM idsync.merge_items('merge_newest', items);
    SELECT jsonb_agg(jsonb_build_object('point', n, 'item', jsonb_build_object('k', k, 'v', v)))
    INTO items FROM (SELECT *, row_number() OVER () AS n FROM batch ORDER BY random()) b;
    PERFORM idsync.merge_items('merge_once', items);
    INSERT INTO sent SELECT * FROM batch;
END $$;
