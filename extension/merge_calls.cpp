#include "merge_calls.hpp"

#include "applying.hpp"
#include "boundary.hpp"
#include "state_access.hpp"

namespace idsync {

namespace {

const char kItemsHint[] = "Pass jsonb_agg(i) over the rows of idsync.items_since: [{\"point\": "
                          "..., \"item\": {...}, \"origin\": ...}, ...].";

void return_outcome(FunctionCallInfo fcinfo, const MergeOutcome &o)
{
    InitMaterializedSRF(fcinfo, 0);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    const MergeResult &r = o.result;
    int64 unchanged = r.received - r.inserted - r.updated - r.rejected;
    Datum values[6] = {Int32GetDatum(static_cast<int32>(r.received)),
                       Int32GetDatum(static_cast<int32>(r.inserted)),
                       Int32GetDatum(static_cast<int32>(r.updated)),
                       Int32GetDatum(static_cast<int32>(unchanged)),
                       Int32GetDatum(static_cast<int32>(r.rejected)),
                       Int64GetDatum(o.sync_point)};
    bool nulls[6] = {false, false, false, false, false, !o.has_sync_point};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

} // namespace

MergeOutcome merge_items_call(Oid relid, Jsonb *items, Datum source, bool source_null,
                              bool raise_point)
{
    require_replicable(relid);
    if (items == nullptr)
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("items must not be NULL")));
    if (!JB_ROOT_IS_ARRAY(items) || JB_ROOT_IS_SCALAR(items))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("items must be a JSON array"), errhint("%s", kItemsHint)));
    // An item of null is a row the receiver wrote itself (items_since skips it for its origin):
    // only its point counts. "origin" names the node that wrote the row (the source when absent).
    int64 last_point;
    bool any = check_items(items, &last_point);
    bool in_name_of_source = raise_point && !source_null;
    begin_apply(relid, in_name_of_source ? DatumGetUUIDP(source) : nullptr, ApplyPurpose::merge);
    MergeOutcome o = {merge_item_batch(relid, items, source, source_null), false, 0};
    // Always, also when nothing changed: a receiver whose rows are all newer must still move
    // the sender's point forward, or the sender stays diff-capped for ever.
    if (in_name_of_source && any)
        raise_sync(relid, source, last_point, true);
    end_apply(relid);
    retry_waiting(relid);
    if (in_name_of_source) {
        o.has_sync_point = true;
        o.sync_point = read_sync_point(relid, source, true);
    }
    return o;
}

} // namespace idsync

using namespace idsync;

// idsync.merge_items(target regclass, items jsonb, source uuid DEFAULT NULL) RETURNS TABLE
// (received, inserted, updated, unchanged, rejected, sync_point)
IDSYNC_FUNCTION(idsync_merge_items)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    Jsonb *items = PG_ARGISNULL(1) ? nullptr : PG_GETARG_JSONB_P(1);
    return_outcome(fcinfo,
                   merge_items_call(relid, items, PG_ARGISNULL(2) ? Datum(0) : PG_GETARG_DATUM(2),
                                    PG_ARGISNULL(2), true));
    return Datum(0);
}

// idsync.merge_staged(target regclass, staging regclass, source uuid, point bigint) RETURNS
// TABLE (received, inserted, updated, unchanged, rejected, sync_point): with source, its
// incoming sync point moves to `point` in the same transaction.
IDSYNC_FUNCTION(idsync_merge_staged)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    require_replicable(relid);
    Oid staging = DatumGetObjectId(required_arg(fcinfo, 1, "staging"));
    bool source_null = PG_ARGISNULL(2);
    Datum source = source_null ? Datum(0) : PG_GETARG_DATUM(2);
    if (!source_null && PG_ARGISNULL(3))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("point must not be NULL when source is given")));
    check_staging(relid, staging);
    begin_apply(relid, source_null ? nullptr : DatumGetUUIDP(source), ApplyPurpose::merge);
    // Each staged row comes with the node it was written on (idsync_origin, which bulk_query
    // ships), else from the source.
    MergeOutcome o = {merge_staging_table(relid, staging, source, source_null), false, 0};
    if (!source_null)
        raise_sync(relid, source, PG_GETARG_INT64(3), true);
    end_apply(relid);
    retry_waiting(relid);
    if (!source_null) {
        o.has_sync_point = true;
        o.sync_point = read_sync_point(relid, source, true);
    }
    return_outcome(fcinfo, o);
    return Datum(0);
}
