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
