-- The building blocks in C: change points and the stable point, the hybrid logical clock, row
-- and content hashes, and the triggers of registered tables (which read the table's
-- registration, never their arguments).
--
-- row_hash, hlc_now, hlc_time and the two row triggers have no SET search_path: they run no SQL,
-- or pin the path themselves around the SQL they run (a SET clause would cost a GUC save and
-- restore on every row).

CREATE FUNCTION next_point() RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_next_point' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION next_point() IS
'draw a change point for the current transaction (registers the transaction as a writer)';

CREATE FUNCTION stable_point() RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_stable_point' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stable_point() IS
'the largest point p such that every change with a point <= p has committed or rolled back';

-- The hybrid logical clock of lww versions (extension/hlc.cpp, as the change trigger uses it).
CREATE FUNCTION hlc_now() RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_hlc_now' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION hlc_now() IS
'the hybrid logical clock: milliseconds since 1970 shifted left 16 bits (the default of lww version columns)';

CREATE FUNCTION hlc_time(version bigint) RETURNS timestamptz
AS 'MODULE_PATHNAME', 'idsync_hlc_time' LANGUAGE C IMMUTABLE STRICT;
COMMENT ON FUNCTION hlc_time(bigint) IS 'the moment an lww version was taken';

CREATE FUNCTION row_hash(row_value record, excluded text[]) RETURNS uuid
AS 'MODULE_PATHNAME', 'idsync_row_hash' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION row_hash(record, text[]) IS
'128-bit hash of a row''s columns but the excluded ones, independent of column order';

CREATE FUNCTION table_hash(target regclass, excluded text[],
                           OUT row_count bigint, OUT hash1 bigint, OUT hash2 bigint)
AS 'MODULE_PATHNAME', 'idsync_table_hash' LANGUAGE C STABLE STRICT SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION change_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'idsync_change_trigger' LANGUAGE C;

CREATE FUNCTION content_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'idsync_content_trigger' LANGUAGE C SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION tombstone_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'idsync_tombstone_trigger' LANGUAGE C;

-- A tombstone's share of its table's content hash (extension/tombstones.cpp).
CREATE FUNCTION _tombstone_hash(key_hash uuid, version bigint) RETURNS uuid
AS 'MODULE_PATHNAME', 'idsync_tombstone_hash' LANGUAGE C IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp;
