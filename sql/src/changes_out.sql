-- What a sender reads: the preflight (sync_info), the changes after a point (items_since), the
-- bulk query, and sync points (get_sync, get_syncs; merge_syncs for transitive sync). In C
-- (extension/changes_out.cpp, sync_points.cpp): each checks as idsync._registration does and
-- reads as its caller.

CREATE FUNCTION sync_info(target regclass, up_to bigint DEFAULT NULL,
                          OUT node_id uuid, OUT max_point bigint, OUT row_count bigint,
                          OUT content_hash text, OUT rejects bigint)
AS 'MODULE_PATHNAME', 'idsync_sync_info' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION sync_info(regclass, bigint) IS
'a sender''s preflight: node id, largest stable change point (at most up_to), row count, content hash, parked rejects';

CREATE FUNCTION get_sync(target regclass, remote uuid, incoming boolean DEFAULT true)
RETURNS bigint
AS 'MODULE_PATHNAME', 'idsync_get_sync' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION get_sync(regclass, uuid, boolean) IS
'the sync point of a peer for a table: how far its rows were merged here (incoming) or ours pushed there; -1 when unknown';

CREATE FUNCTION get_syncs(target regclass, incoming boolean DEFAULT true)
RETURNS TABLE (remote_id uuid, sync_point bigint, updated_at timestamptz)
AS 'MODULE_PATHNAME', 'idsync_get_syncs' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION get_syncs(regclass, boolean) IS 'every sync point of a table, one row per peer';

CREATE FUNCTION merge_syncs(target regclass, syncs jsonb, incoming boolean DEFAULT true)
RETURNS integer
AS 'MODULE_PATHNAME', 'idsync_merge_syncs' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION merge_syncs(regclass, jsonb, boolean) IS
'max-merge sync points from another node (transitive sync); entries for this node are skipped';

CREATE FUNCTION bulk_query(target regclass, up_to bigint DEFAULT NULL, to_node uuid DEFAULT NULL,
                           in_key_order boolean DEFAULT false)
RETURNS text
AS 'MODULE_PATHNAME', 'idsync_bulk_query' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION bulk_query(regclass, bigint, uuid, boolean) IS
'the SELECT a bulk copy of a table streams: its replicated columns, references as natural keys (jsonb); with up_to, the rows whose point is at most up_to; with to_node, also idsync_origin, and not the rows that node wrote; in_key_order: ordered by the natural key (when it holds no reference), for a copy straight into the receiver''s table';

-- The rows of items_since run the table's plan (plans.sql). The point index is walked and cut
-- at max_rows before the referenced rows are joined (the SET clauses keep the planner on it
-- even without statistics, right after a bulk load). `up_to` lets a sender cut every table of a
-- pass at one point: a row is written after the rows it references, so its point is larger,
-- and a pass that sends parents first up to one point sends every parent its children need.
CREATE FUNCTION items_since(target regclass, point bigint, max_rows integer DEFAULT 1000,
                            up_to bigint DEFAULT NULL, to_node uuid DEFAULT NULL)
RETURNS TABLE (point bigint, item jsonb, origin uuid)
AS 'MODULE_PATHNAME', 'idsync_items_since' LANGUAGE C VOLATILE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION items_since(regclass, bigint, integer, bigint, uuid) IS
'the next changes after a point, in point order, up to the stable point (and up_to): (point, the row by column name without local columns, references as natural keys, the node that wrote it); a row to_node wrote comes as its point alone';

-- The tombstones of an lww table after a point, as items_since returns changes: a bulk copy
-- streams the live rows, then sends these through merge_items.
CREATE FUNCTION tombstones_since(target regclass, point bigint, max_rows integer DEFAULT 1000,
                                 up_to bigint DEFAULT NULL, to_node uuid DEFAULT NULL)
RETURNS TABLE (point bigint, item jsonb, origin uuid)
AS 'MODULE_PATHNAME', 'idsync_tombstones_since' LANGUAGE C VOLATILE
SET enable_seqscan = off SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION tombstones_since(regclass, bigint, integer, bigint, uuid) IS
'the tombstones of an lww table after a point, in point order, up to the stable point (and up_to), as items_since returns changes';

-- What idsyncctl compare and repair read on each node (extension/compare.cpp): rows (and lww
-- tombstones) by buckets of their key hashes, the hashes every node computes alike; first the
-- per-bucket counts and hash XORs, then the rows of the buckets that differ.
CREATE FUNCTION compare_buckets(target regclass, bits integer DEFAULT 12, parents integer[] DEFAULT NULL)
RETURNS TABLE (bucket integer, row_count bigint, hash1 bigint, hash2 bigint)
AS 'MODULE_PATHNAME', 'idsync_compare_buckets' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION compare_buckets(regclass, integer, integer[]) IS
'per bucket of the first `bits` bits of the key hash: the rows (and lww tombstones) and the XOR of their row hashes; with parents, only within those buckets of bits - 4 bits';

CREATE FUNCTION compare_rows(target regclass, buckets integer[], bits integer DEFAULT 12)
RETURNS TABLE (key_hash uuid, row_hash uuid, key jsonb, item jsonb, origin uuid)
AS 'MODULE_PATHNAME', 'idsync_compare_rows' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION compare_rows(regclass, integer[], integer) IS
'the rows (and lww tombstones) of some buckets: key hash, row hash, natural key, item, the node that wrote it';
