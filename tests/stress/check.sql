-- Each line must read 0.
SELECT 'null ids' AS what, count(*) AS bad FROM observed WHERE id IS NULL
UNION ALL
SELECT 'duplicate names', count(*) FROM (SELECT name FROM stress_name GROUP BY name HAVING count(*) > 1) d
UNION ALL
SELECT 'duplicate pairs', count(*) FROM (SELECT name, grp FROM stress_pair GROUP BY name, grp HAVING count(*) > 1) d
UNION ALL
SELECT 'wrong name ids', count(*) FROM observed o LEFT JOIN stress_name s ON s.id = o.id
    WHERE o.tbl = 'name' AND s.name IS DISTINCT FROM o.name
UNION ALL
SELECT 'wrong pair ids', count(*) FROM observed o LEFT JOIN stress_pair s ON s.id = o.id
    WHERE o.tbl = 'pair' AND (s.name, s.grp) IS DISTINCT FROM (o.name, o.grp);
