-- What must be identical on every node: each table's rows with the ids replaced by the natural
-- keys they point at (as a row count and a digest), the tombstones of deleted packages, the
-- content hashes idsync keeps, and the rows that wait or were rejected (0).
SELECT 'licenses', count(*), md5(string_agg(name, ',' ORDER BY name)) FROM licenses
UNION ALL
SELECT 'packages', count(*), md5(string_agg(name || ' ' || coalesce(version, '-'), ',' ORDER BY name, version)) FROM packages
UNION ALL
SELECT 'package_tombstones', count(*), md5(coalesce(string_agg(t.key::text || ' ' || t.version, ',' ORDER BY t.key::text), ''))
FROM idsync.tombstones t WHERE t.relid = 'packages'::regclass
UNION ALL
SELECT 'derivations', count(*), md5(string_agg(file_name || ' ' || system, ',' ORDER BY file_name)) FROM derivations
UNION ALL
SELECT 'derivation_outputs', count(*), md5(string_agg(d.file_name || ' ' || o.name || ' ' || o.path, ',' ORDER BY d.file_name, o.name))
FROM derivation_outputs o JOIN derivations d ON d.id = o.derivation_id
UNION ALL
SELECT 'package_derivations', count(*), md5(string_agg(p.name || ' ' || coalesce(p.version, '-') || ' ' || d.file_name, ',' ORDER BY p.name, p.version, d.file_name))
FROM package_derivations x JOIN packages p ON p.id = x.package_id JOIN derivations d ON d.id = x.derivation_id
UNION ALL
SELECT 'package_licenses', count(*), md5(string_agg(p.name || ' ' || coalesce(p.version, '-') || ' ' || l.name, ',' ORDER BY p.name, p.version, l.name))
FROM package_licenses x JOIN packages p ON p.id = x.package_id JOIN licenses l ON l.id = x.license_id
UNION ALL
SELECT 'content hashes', count(*), string_agg(s.content_hash, ' ' ORDER BY t.relid::text)
FROM idsync.tables t, idsync.sync_info(t.relid) s
UNION ALL
SELECT 'waiting or rejected', count(*), '' FROM idsync.rejects;
