-- Retiring a node from the set: idsync.retire_node forgets its sync points and resync requests
-- here, and points passed on for it later are not kept again. Administrators only.
SET client_min_messages = warning;
CREATE SCHEMA rt;
CREATE TABLE rt.t (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
SELECT idsync.replicate('rt.t', '{name}');
SELECT idsync.merge_syncs('rt.t', '[{"remote_id": "00000000-0000-0000-0000-0000000000d1", "sync_point": 5},
                                   {"remote_id": "00000000-0000-0000-0000-0000000000d2", "sync_point": 6}]');
SELECT idsync.merge_syncs('rt.t', '[{"remote_id": "00000000-0000-0000-0000-0000000000d1", "sync_point": 7}]', false);
SELECT idsync.request_resync('rt.t', '00000000-0000-0000-0000-0000000000d1') IS NOT NULL AS resync;

SELECT idsync.retire_node('00000000-0000-0000-0000-0000000000d1') AS forgotten;
SELECT remote_id, sync_point FROM idsync.get_syncs('rt.t');
SELECT count(*) AS outgoing FROM idsync.get_syncs('rt.t', false);
SELECT count(*) AS resyncs FROM idsync.resync_requests;
SELECT node_id FROM idsync.retired_nodes;

-- A peer passing its points on again does not bring them back; others still move.
SELECT idsync.merge_syncs('rt.t', '[{"remote_id": "00000000-0000-0000-0000-0000000000d1", "sync_point": 9},
                                   {"remote_id": "00000000-0000-0000-0000-0000000000d2", "sync_point": 9}]');
SELECT remote_id, sync_point FROM idsync.get_syncs('rt.t');
-- Nothing it sends is merged (if its role was left), in either path.
SELECT try($$SELECT * FROM idsync.merge_items('rt.t', '[{"point": 3, "item": {"name": "late"}}]',
                                               '00000000-0000-0000-0000-0000000000d1')$$);
SELECT try($$SELECT idsync.begin_bulk('rt.t', '00000000-0000-0000-0000-0000000000d1')$$);
SELECT count(*) AS rows FROM rt.t;
-- Retiring again changes nothing.
SELECT idsync.retire_node('00000000-0000-0000-0000-0000000000d1') AS forgotten_again;

SELECT try($$SELECT idsync.retire_node(NULL)$$);
SELECT try($$SELECT idsync.retire_node(idsync.node_id())$$);
CREATE ROLE idsync_rt_daemon;
SELECT idsync.grant_daemon('idsync_rt_daemon');
GRANT EXECUTE ON FUNCTION idsync.retire_node(uuid) TO idsync_rt_daemon;
SET ROLE idsync_rt_daemon;
SELECT try($$SELECT idsync.retire_node('00000000-0000-0000-0000-0000000000d2')$$);
RESET ROLE;
SELECT remote_id FROM idsync.get_syncs('rt.t');

DROP SCHEMA rt CASCADE;
DELETE FROM idsync.retired_nodes;
DROP OWNED BY idsync_rt_daemon;
SELECT idsync.revoke_role('idsync_rt_daemon');
DROP ROLE idsync_rt_daemon;
