-- One pgbench transaction: a batch of 300 random, overlapping keys in random order, loaded
-- into both tables in a fixed order, recording what insert_missing returned for each row.
BEGIN;
WITH batch AS (
    SELECT array_agg('k' || (random() * 3000)::int) AS names,
           array_agg(CASE WHEN random() < 0.3 THEN NULL ELSE (random() * 2)::int END) AS grps
    FROM generate_series(1, 300)
), pairs AS (
    INSERT INTO observed (tbl, name, grp, id)
    SELECT 'pair', u.name, u.grp, r.id
    FROM batch
    CROSS JOIN LATERAL idsync.insert_missing('stress_pair', '{name,grp}', batch.names, batch.grps) r
    JOIN LATERAL unnest(batch.names, batch.grps) WITH ORDINALITY AS u(name, grp, ord) ON u.ord = r.ord
)
INSERT INTO observed (tbl, name, id)
SELECT 'name', u.name, r.id
FROM batch
CROSS JOIN LATERAL idsync.insert_missing('stress_name', '{name}', batch.names) r
JOIN LATERAL unnest(batch.names) WITH ORDINALITY AS u(name, ord) ON u.ord = r.ord;
COMMIT;
