-- Each line must read 0: every key sent is there once, the lww table holds for each key the
-- newest version sent, and nothing was parked.
SELECT 'keys missing from merge_once' AS what, count(*) AS bad
FROM (SELECT DISTINCT k FROM sent) s LEFT JOIN merge_once m USING (k) WHERE m.k IS NULL
UNION ALL
SELECT 'merge_once values not sent', count(*) FROM merge_once m
    WHERE NOT EXISTS (SELECT FROM sent s WHERE s.k = m.k AND s.v = m.v)
UNION ALL
SELECT 'keys not at their newest version', count(*)
FROM (SELECT k, max(version) AS version FROM sent GROUP BY k) s
LEFT JOIN merge_newest m USING (k)
WHERE m.idsync_version IS DISTINCT FROM s.version OR m.v IS DISTINCT FROM s.k || '@' || s.version
UNION ALL
SELECT 'rows not sent', (SELECT count(*) FROM merge_newest) - (SELECT count(DISTINCT k) FROM sent)
UNION ALL
SELECT 'parked rows', count(*) FROM idsync.rejects
    WHERE relid IN ('merge_once'::regclass, 'merge_newest'::regclass);
