// Reading sync points (get_sync, get_syncs) and passing them on (merge_syncs: transitive sync).
// Reads run as the caller, after idsync._registration's checks; raising a point goes through
// raise_sync, which checks what the caller may change (state_writes.cpp).
#include "boundary.hpp"
#include "insert_missing.hpp"
#include "spi_calls.hpp"
#include "state_access.hpp"

namespace idsync {

namespace {

const char *sync_table(bool incoming)
{
    return incoming ? "idsync.incoming_sync" : "idsync.outgoing_sync";
}

} // namespace

int64 read_sync_point(Oid relid, Datum remote, bool incoming)
{
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    Oid types[2] = {OIDOID, UUIDOID};
    Datum values[2] = {ObjectIdGetDatum(relid), remote};
    run_pinned(psprintf("SELECT s.sync_point FROM %s s WHERE s.relid OPERATOR(pg_catalog.=) "
                        "$1::pg_catalog.regclass AND s.remote_id OPERATOR(pg_catalog.=) $2",
                        sync_table(incoming)),
               2, types, values, nullptr, false, 1);
    bool isnull = true;
    Datum point = SPI_processed == 0
                      ? Datum(0)
                      : SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    SPI_finish();
    return isnull ? -1 : DatumGetInt64(point);
}

} // namespace idsync

using namespace idsync;

namespace {

bool required_bool(FunctionCallInfo fcinfo, int arg, const char *message)
{
    if (PG_ARGISNULL(arg))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s", message)));
    return PG_GETARG_BOOL(arg);
}

[[noreturn]] void malformed(JsonbValue *entry)
{
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("malformed sync entry: %s",
                    JsonbToCString(nullptr, &JsonbValueToJsonb(entry)->root, -1)),
             errhint("Each entry is {\"remote_id\": uuid, \"sync_point\": bigint}, as get_syncs "
                     "returns.")));
}

// The value of `key` in object `entry` when it has JSON type `type`, else nullptr.
JsonbValue *field(JsonbValue *entry, const char *key, enum jbvType type)
{
    if (entry->type != jbvBinary || !JsonContainerIsObject(entry->val.binary.data))
        return nullptr;
    JsonbValue *value =
        getKeyJsonValueFromContainer(entry->val.binary.data, key, strlen(key), nullptr);
    return value != nullptr && value->type == type ? value : nullptr;
}

} // namespace

// idsync.get_sync(target regclass, remote uuid, incoming boolean DEFAULT true) RETURNS bigint:
// the sync point of a peer for a table: how far its rows were merged here (incoming) or ours
// pushed there; -1 when unknown.
IDSYNC_FUNCTION(idsync_get_sync)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    require_replicable(relid);
    if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("remote and incoming must not be NULL")));
    PG_RETURN_INT64(read_sync_point(relid, PG_GETARG_DATUM(1), PG_GETARG_BOOL(2)));
}

// idsync.get_syncs(target regclass, incoming boolean DEFAULT true) RETURNS TABLE (remote_id
// uuid, sync_point bigint, updated_at timestamptz): every sync point of a table, one row per
// peer.
IDSYNC_FUNCTION(idsync_get_syncs)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    require_replicable(relid);
    bool incoming = required_bool(fcinfo, 1, "incoming must not be NULL");
    Oid types[1] = {OIDOID};
    Datum args[1] = {ObjectIdGetDatum(relid)};
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    run_pinned(psprintf("SELECT s.remote_id, s.sync_point, s.updated_at FROM %s s "
                        "WHERE s.relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass "
                        "ORDER BY s.remote_id",
                        sync_table(incoming)),
               1, types, args, nullptr, true, 0);
    return_spi_rows(fcinfo);
    SPI_finish();
    return Datum(0);
}

// idsync.merge_syncs(target regclass, syncs jsonb, incoming boolean DEFAULT true) RETURNS
// integer: max-merges sync points from another node (transitive sync), entries for this node
// skipped; returns how many were merged.
IDSYNC_FUNCTION(idsync_merge_syncs)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    require_replicable(relid);
    if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("syncs and incoming must not be NULL")));
    Jsonb *syncs = PG_GETARG_JSONB_P(1);
    bool incoming = PG_GETARG_BOOL(2);
    if (!JB_ROOT_IS_ARRAY(syncs) || JB_ROOT_IS_SCALAR(syncs))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("syncs must be a JSON array of {\"remote_id\": uuid, "
                               "\"sync_point\": bigint}")));
    pg_uuid_t me = this_node();
    int merged = 0;
    int n = JsonContainerSize(&syncs->root);
    for (int i = 0; i < n; i++) {
        JsonbValue *entry = getIthJsonbValueFromContainer(&syncs->root, i);
        JsonbValue *remote = field(entry, "remote_id", jbvString);
        JsonbValue *point = field(entry, "sync_point", jbvNumeric);
        if (remote == nullptr || point == nullptr)
            malformed(entry);
        // Converted as the casts ::uuid and ::bigint convert (a fraction is refused).
        Datum remote_id = DirectFunctionCall1(
            uuid_in, CStringGetDatum(pnstrdup(remote->val.string.val, remote->val.string.len)));
        if (memcmp(DatumGetUUIDP(remote_id)->data, me.data, UUID_LEN) == 0)
            continue;
        Datum text = DirectFunctionCall1(numeric_out, NumericGetDatum(point->val.numeric));
        int64 sync_point = DatumGetInt64(DirectFunctionCall1(int8in, text));
        raise_sync(relid, remote_id, sync_point, incoming);
        merged++;
    }
    PG_RETURN_INT32(merged);
}
