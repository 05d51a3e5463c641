-- Each line must read 0.
SELECT 'duplicate packages' AS check, count(*) AS bad FROM (SELECT 1 FROM package GROUP BY name, version HAVING count(*) > 1) d
UNION ALL SELECT 'duplicate licenses', count(*) FROM (SELECT 1 FROM license GROUP BY name HAVING count(*) > 1) d
UNION ALL SELECT 'packages without a license', count(*) FROM package p WHERE NOT EXISTS (SELECT 1 FROM package_license l WHERE l.package_id = p.id);
