-- The C functions that change replication state. Each sees the real caller, checks what that
-- role may do, and runs one fixed statement as the owner of idsync's tables
-- (extension/state_writes.cpp); the apply flag that lets merges keep versions
-- (extension/applying.cpp).

CREATE FUNCTION _raise_sync(target regclass, remote uuid, point bigint, incoming boolean)
RETURNS void AS 'MODULE_PATHNAME', 'idsync_raise_sync' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION correct_sync(target regclass, remote uuid, point bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_correct_sync' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION correct_sync(regclass, uuid, bigint) IS
'lower this node''s incoming sync point for remote to point (remote''s idsyncd, when the point is beyond anything remote issued)';

CREATE FUNCTION _park_rows(target regclass, source uuid, rejects jsonb) RETURNS integer
AS 'MODULE_PATHNAME', 'idsync_park' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION _take_rejects(target regclass, reject_ids bigint[], waiting_only boolean)
RETURNS TABLE (source uuid, point bigint, item jsonb, reject_id bigint)
AS 'MODULE_PATHNAME', 'idsync_take_rejects' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION _register(target regclass, key_columns name[], mode text, version_column name,
                          tombstone_column name, point_column name, local_columns name[])
RETURNS void AS 'MODULE_PATHNAME', 'idsync_register' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION _forget(target oid) RETURNS void
AS 'MODULE_PATHNAME', 'idsync_forget' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION _registration_changed(target regclass) RETURNS void
AS 'MODULE_PATHNAME', 'idsync_registration_changed' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION _purge_syncs(target regclass, older_than interval) RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_purge_syncs' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION _begin_apply(target regclass, source uuid, purpose text) RETURNS void
AS 'MODULE_PATHNAME', 'idsync_begin_apply' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION _end_apply(target regclass) RETURNS void
AS 'MODULE_PATHNAME', 'idsync_end_apply' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- Resyncs an operator asks for (idsyncctl resync; extension/resync.cpp): the next pass of
-- `target` to the node `remote` sends every row, as if the peer had none; idsyncd clears the
-- request after the first pass that read it and succeeded. For administrators and the daemon's
-- role: a resync only sends rows again.
CREATE FUNCTION request_resync(target regclass, remote uuid) RETURNS timestamptz
AS 'MODULE_PATHNAME', 'idsync_request_resync' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION request_resync(regclass, uuid) IS
'ask idsyncd to send every row of target to the node remote on its next pass (returns the time of the request)';
CREATE FUNCTION _resync_done(target regclass, remote uuid, requested_at timestamptz) RETURNS void
AS 'MODULE_PATHNAME', 'idsync_resync_done' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- Retiring a node from the set (extension/resync.cpp): its sync points and resync requests are
-- forgotten here, points passed on for it are not kept again, and idsyncd refuses to send to
-- it. Administrators; run on every node that stays.
CREATE FUNCTION retire_node(node uuid) RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_retire_node' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION retire_node(uuid) IS
'retire a node from the set: forget its sync points here for good (returns how many), and send it nothing again';
