#include "tombstones.hpp"

#include "boundary.hpp"
#include "change_points.hpp"
#include "content_delta.hpp"
#include "insert_missing.hpp"
#include "kept_plans.hpp"
#include "state_access.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

// Tells a tombstone's hash from the hash of a row whose values happen to be the same bytes.
const char kTombstoneMarker[] = "idsync tombstone";

void append_tombstone_delta(Oid relid, RowHash key, int64 added, int64 removed)
{
    RowHash h = {0, 0};
    if (added >= 0) {
        RowHash a = tombstone_hash(key, added);
        h.h1 ^= a.h1;
        h.h2 ^= a.h2;
    }
    if (removed >= 0) {
        RowHash r = tombstone_hash(key, removed);
        h.h1 ^= r.h1;
        h.h2 ^= r.h2;
    }
    append_content_delta(relid, h.h1, h.h2, 0);
}

// Runs a plan on idsync.tombstones with a fresh snapshot also under REPEATABLE READ and
// SERIALIZABLE: a tombstone committed after the transaction began must still count (else its
// key could end with a row and a tombstone both). SPI takes one itself at READ COMMITTED.
int execute_fresh(SPIPlanPtr plan, Datum *values, const char *nulls, long tcount)
{
    if (!IsolationUsesXactSnapshot())
        return SPI_execute_plan(plan, values, nulls, false, tcount);
    return SPI_execute_snapshot(plan, values, nulls, GetLatestSnapshot(), InvalidSnapshot, false,
                                false, tcount);
}

} // namespace

RowHash tombstone_hash(RowHash key, int64 version)
{
    auto *marker = static_cast<bytea *>(palloc(VARHDRSZ + sizeof(kTombstoneMarker)));
    SET_VARSIZE(marker, VARHDRSZ + sizeof(kTombstoneMarker));
    memcpy(VARDATA(marker), kTombstoneMarker, sizeof(kTombstoneMarker));
    bytea *sent[3] = {marker, hash_bytes_of(key),
                      DatumGetByteaPP(DirectFunctionCall1(int8send, Int64GetDatum(version)))};
    return hash_sent(3, sent);
}

bool record_tombstone(Oid relid, const NaturalKey &key, int64 version, const pg_uuid_t *origin)
{
    int64 point = next_point();
    RowHash h = tombstone_hash(key.hash, version);
    Oid types[8] = {OIDOID, UUIDOID, JSONBOID, INT8OID, INT8OID, UUIDOID, INT8OID, INT8OID};
    Datum values[8] = {
        ObjectIdGetDatum(relid),
        UUIDPGetDatum(reinterpret_cast<pg_uuid_t *>(VARDATA(hash_bytes_of(key.hash)))),
        JsonbPGetDatum(key.json),
        Int64GetDatum(version),
        Int64GetDatum(point),
        origin != nullptr ? UUIDPGetDatum(const_cast<pg_uuid_t *>(origin)) : Datum(0),
        Int64GetDatum(static_cast<int64>(h.h1)),
        Int64GetDatum(static_cast<int64>(h.h2))};
    char nulls[9] = "        ";
    if (origin == nullptr)
        nulls[5] = 'n';
    OwnerScope scope = enter_owner_scope();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    SPIPlanPtr plan = kept_plan(
        "INSERT INTO idsync.tombstones AS t (relid, key_hash, key, version, point, origin, hash1, "
        "hash2) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (relid, key_hash) DO UPDATE "
        "SET key = excluded.key, version = excluded.version, point = excluded.point, origin = "
        "excluded.origin, deleted_at = excluded.deleted_at, hash1 = excluded.hash1, hash2 = "
        "excluded.hash2, replaced_version = t.version WHERE t.version OPERATOR(pg_catalog.<) "
        "excluded.version RETURNING t.replaced_version",
        8, types);
    if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
        elog(ERROR, "idsync: keeping a tombstone failed");
    bool written = SPI_processed == 1;
    int64 replaced = -1;
    if (written) {
        bool isnull;
        Datum v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        replaced = isnull ? -1 : DatumGetInt64(v);
    }
    SPI_finish();
    leave_owner_scope(scope);
    if (written)
        append_tombstone_delta(relid, key.hash, version, replaced);
    return written;
}

int64 drop_tombstone(Oid relid, RowHash key, int64 below)
{
    Oid types[3] = {OIDOID, UUIDOID, INT8OID};
    Datum values[3] = {ObjectIdGetDatum(relid),
                       UUIDPGetDatum(reinterpret_cast<pg_uuid_t *>(VARDATA(hash_bytes_of(key)))),
                       Int64GetDatum(below)};
    OwnerScope scope = enter_owner_scope();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    SPIPlanPtr plan = kept_plan("DELETE FROM idsync.tombstones t WHERE t.relid "
                                "OPERATOR(pg_catalog.=) $1 AND t.key_hash OPERATOR(pg_catalog.=) "
                                "$2 AND t.version OPERATOR(pg_catalog.<) $3 RETURNING t.version",
                                3, types);
    if (execute_fresh(plan, values, nullptr, 0) != SPI_OK_DELETE_RETURNING)
        elog(ERROR, "idsync: removing a tombstone failed");
    int64 version = -1;
    if (SPI_processed == 1) {
        bool isnull;
        version =
            DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    }
    SPI_finish();
    leave_owner_scope(scope);
    if (version >= 0)
        append_tombstone_delta(relid, key, -1, version);
    return version;
}

void drop_tombstones(Oid relid, const RowHash *keys, int64 n)
{
    if (n == 0)
        return;
    Datum *uuids = work_array<Datum>(n);
    for (int64 i = 0; i < n; i++)
        uuids[i] = UUIDPGetDatum(reinterpret_cast<pg_uuid_t *>(VARDATA(hash_bytes_of(keys[i]))));
    Oid types[2] = {OIDOID, UUIDARRAYOID};
    Datum values[2] = {ObjectIdGetDatum(relid),
                       PointerGetDatum(construct_array(uuids, static_cast<int>(n), UUIDOID,
                                                       UUID_LEN, false, TYPALIGN_CHAR))};
    // Their share of the content hash leaves with them, summed in the same statement.
    OwnerScope scope = enter_owner_scope();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    SPIPlanPtr plan = kept_plan(
        "WITH d AS (DELETE FROM idsync.tombstones t WHERE t.relid OPERATOR(pg_catalog.=) $1 AND "
        "t.key_hash OPERATOR(pg_catalog.=) ANY ($2) RETURNING t.hash1, t.hash2) INSERT INTO "
        "idsync.table_deltas (relid, hash1, hash2, row_count) SELECT $1, "
        "pg_catalog.bit_xor(d.hash1), pg_catalog.bit_xor(d.hash2), 0 FROM d HAVING "
        "pg_catalog.count(*) OPERATOR(pg_catalog.>) 0",
        2, types);
    if (execute_fresh(plan, values, nullptr, 0) < 0)
        elog(ERROR, "idsync: removing tombstones failed");
    SPI_finish();
    leave_owner_scope(scope);
}

void tombstone_versions(Oid relid, const RowHash *keys, int64 n, int64 *versions)
{
    for (int64 i = 0; i < n; i++)
        versions[i] = -1;
    if (n == 0)
        return;
    Datum *uuids = work_array<Datum>(n);
    for (int64 i = 0; i < n; i++)
        uuids[i] = UUIDPGetDatum(reinterpret_cast<pg_uuid_t *>(VARDATA(hash_bytes_of(keys[i]))));
    Oid types[2] = {OIDOID, UUIDARRAYOID};
    Datum values[2] = {ObjectIdGetDatum(relid),
                       PointerGetDatum(construct_array(uuids, static_cast<int>(n), UUIDOID,
                                                       UUID_LEN, false, TYPALIGN_CHAR))};
    MemoryContext caller = CurrentMemoryContext;
    OwnerScope scope = enter_owner_scope();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    SPIPlanPtr plan = kept_plan(
        "SELECT k.i::pg_catalog.int8, t.version FROM pg_catalog.unnest($2) WITH ORDINALITY "
        "AS k (h, i) JOIN idsync.tombstones t ON t.relid OPERATOR(pg_catalog.=) $1 AND "
        "t.key_hash OPERATOR(pg_catalog.=) k.h",
        2, types);
    // Not read-only: a fresh snapshot sees the tombstones this transaction kept just before.
    if (execute_fresh(plan, values, nullptr, 0) != SPI_OK_SELECT)
        elog(ERROR, "idsync: reading tombstones failed");
    for (uint64 r = 0; r < SPI_processed; r++) {
        bool isnull;
        int64 i =
            DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
        versions[i - 1] =
            DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
    }
    SPI_finish();
    leave_owner_scope(scope);
    MemoryContextSwitchTo(caller);
}

bool has_tombstones(Oid relid)
{
    Oid types[1] = {OIDOID};
    Datum values[1] = {ObjectIdGetDatum(relid)};
    OwnerScope scope = enter_owner_scope();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    SPIPlanPtr plan = kept_plan("SELECT FROM idsync.tombstones t WHERE t.relid "
                                "OPERATOR(pg_catalog.=) $1 LIMIT 1",
                                1, types);
    if (execute_fresh(plan, values, nullptr, 1) != SPI_OK_SELECT)
        elog(ERROR, "idsync: reading tombstones failed");
    bool any = SPI_processed > 0;
    SPI_finish();
    leave_owner_scope(scope);
    return any;
}

char *tombstone_items_query(Oid relid, const Registration *reg)
{
    return psprintf(
        "SELECT t.point, CASE WHEN COALESCE(t.origin, $5) OPERATOR(pg_catalog.=) $4 THEN NULL "
        "ELSE t.key OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(%s::pg_catalog.text, "
        "t.version, %s::pg_catalog.text, true) END, COALESCE(t.origin, $5) FROM idsync.tombstones "
        "t WHERE t.relid OPERATOR(pg_catalog.=) %u::pg_catalog.oid AND t.point "
        "OPERATOR(pg_catalog.>) $1 AND t.point OPERATOR(pg_catalog.<=) $2 ORDER BY t.point "
        "LIMIT $3",
        quote_literal_cstr(reg->version_column), quote_literal_cstr(reg->tombstone_column), relid);
}

} // namespace idsync

using namespace idsync;

// idsync._tombstone_hash(key_hash uuid, version bigint) RETURNS uuid: a tombstone's share of its
// table's content hash, for recomputing the content state.
IDSYNC_FUNCTION(idsync_tombstone_hash)
{
    RowHash key = hash_of_uuid(DatumGetUUIDP(required_arg(fcinfo, 0, "key_hash")));
    int64 version = DatumGetInt64(required_arg(fcinfo, 1, "version"));
    return hash_as_uuid(tombstone_hash(key, version));
}

// idsync._purge_tombstones(target regclass, older_than interval) RETURNS bigint: reclaim's part
// for lww tables, for administrators who own the table: the tombstones whose version is older
// than older_than go, and with them their share of the content hash.
IDSYNC_FUNCTION(idsync_purge_tombstones)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    Datum older_than = required_arg(fcinfo, 1, "older_than");
    require_reclaim_rights(relid);
    // As a writer of the table: a recomputation of its content state (SHARE) waits for the purge,
    // and the purge for it, so that neither drops the other's deltas.
    LockRelationOid(relid, RowExclusiveLock);
    Oid types[2] = {OIDOID, INTERVALOID};
    Datum values[2] = {ObjectIdGetDatum(relid), older_than};
    uint64 purged = exec_as_owner(
        "WITH p AS (DELETE FROM idsync.tombstones t WHERE t.relid OPERATOR(pg_catalog.=) $1 AND "
        "idsync.hlc_time(t.version) OPERATOR(pg_catalog.<) (pg_catalog.now() "
        "OPERATOR(pg_catalog.-) $2) RETURNING t.hash1, t.hash2), d AS (INSERT INTO "
        "idsync.table_deltas (relid, hash1, hash2, row_count) SELECT $1, "
        "pg_catalog.bit_xor(p.hash1), pg_catalog.bit_xor(p.hash2), 0 FROM p HAVING "
        "pg_catalog.count(*) OPERATOR(pg_catalog.>) 0) SELECT 1 FROM p",
        2, types, values, nullptr);
    PG_RETURN_INT64(static_cast<int64>(purged));
}
