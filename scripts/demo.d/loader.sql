-- One loader transaction: 500 random packages (overlapping with other loaders), their
-- licences as sets, and the links. Tables are touched in a fixed order: package, license,
-- package_license.
BEGIN;
CREATE TEMP TABLE IF NOT EXISTS batch (ord bigint, name text, version text, lic text[]) ON COMMIT DELETE ROWS;
INSERT INTO batch
SELECT g, 'pkg' || (random() * 20000)::int, '1.' || (random() * 3)::int,
       ARRAY(SELECT 'license-' || (random() * 40)::int FROM generate_series(1, 1 + (random() * 2)::int) WHERE g > 0)
FROM generate_series(1, 500) g;
CREATE TEMP TABLE IF NOT EXISTS pkg_ids (ord bigint, id bigint) ON COMMIT DELETE ROWS;
INSERT INTO pkg_ids SELECT ord, id FROM idsync.insert_missing('package', '{name,version}',
    ARRAY(SELECT name FROM batch ORDER BY ord), ARRAY(SELECT version FROM batch ORDER BY ord));
INSERT INTO package_license (package_id, license_id)
SELECT DISTINCT p.id, unnest(s.ids)
FROM idsync.insert_missing_sets('license', '{name}',
        ARRAY(SELECT b.ord FROM batch b, unnest(b.lic) ORDER BY b.ord),
        ARRAY(SELECT l FROM batch b, unnest(b.lic) l ORDER BY b.ord)) s
JOIN pkg_ids p ON p.ord = s.set_key
ORDER BY 1, 2
ON CONFLICT DO NOTHING;
COMMIT;
