-- Parked rows an administrator gives up on: idsync.discard_rejects moves them to
-- idsync.discarded_rejects, with who and when, and they are never merged again.
SET client_min_messages = warning;
CREATE SCHEMA rd;
CREATE TABLE rd.t (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, size int CHECK (size >= 0));
SELECT idsync.replicate('rd.t', '{name}');
SELECT received, rejected FROM idsync.merge_items('rd.t',
    '[{"point": 1, "item": {"name": "a", "size": -1}}, {"point": 2, "item": {"name": "b", "size": -2}},
      {"point": 3, "item": {"name": "c", "size": 3}}]', '00000000-0000-0000-0000-00000000000a');
SELECT min(reject_id) AS first_id FROM idsync.rejects WHERE relid = 'rd.t'::regclass \gset
SELECT idsync.discard_rejects('rd.t', ARRAY[:first_id]::bigint[]) AS discarded;
SELECT item ->> 'name' AS name, sqlstate, discarded_by = current_user AS by_me
FROM idsync.discarded_rejects;
SELECT item ->> 'name' AS still_parked FROM idsync.rejects WHERE relid = 'rd.t'::regclass;
SELECT idsync.discard_rejects('rd.t') AS discarded_rest;
SELECT count(*) AS parked FROM idsync.rejects WHERE relid = 'rd.t'::regclass;
SELECT retried FROM idsync.retry_rejects('rd.t');
SELECT name FROM rd.t ORDER BY name;

SELECT try($$SELECT idsync.discard_rejects(NULL)$$);
CREATE TABLE rd.unregistered (id bigserial PRIMARY KEY);
SELECT try($$SELECT idsync.discard_rejects('rd.unregistered')$$);
CREATE ROLE idsync_rd_peer;
SELECT idsync.grant_peer('idsync_rd_peer', '00000000-0000-0000-0000-00000000000a');
GRANT EXECUTE ON FUNCTION idsync.discard_rejects(regclass, bigint[]) TO idsync_rd_peer;
GRANT USAGE ON SCHEMA rd TO idsync_rd_peer;
SET ROLE idsync_rd_peer;
SELECT try($$SELECT idsync.discard_rejects('rd.t')$$);
RESET ROLE;
-- Unregistering the table forgets its record too.
SELECT idsync.unreplicate('rd.t');
SELECT count(*) AS records FROM idsync.discarded_rejects;

DROP SCHEMA rd CASCADE;
DROP OWNED BY idsync_rd_peer;
SELECT idsync.revoke_role('idsync_rd_peer');
DROP ROLE idsync_rd_peer;
