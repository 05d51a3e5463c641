// idsync.change_trigger: the BEFORE INSERT OR UPDATE row trigger of every registered table.
//
// It stamps each new row version with a change point, refuses updates of insert_only tables,
// and in lww tables gives local changes a version: a hybrid logical clock per row, the later of
// the wall clock (milliseconds << 16) and the row's previous version + 1, so a local update
// always wins over every version this node had seen of the row. Rows that idsync itself applies
// (idsync.applying on) keep the version they came with.
//
// Arguments (from idsync.replicate): mode, point column, then for lww the version column.
#include "applying.hpp"
#include "boundary.hpp"
#include "change_points.hpp"

namespace {

struct TriggerColumns {
    Oid relid;
    bool lww;
    int point;   // attribute numbers
    int version; // 0 for insert_only
};

int column_number(Relation rel, const char *name)
{
    int attnum = SPI_fnumber(RelationGetDescr(rel), name);
    if (attnum <= 0)
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_COLUMN),
                 errmsg("column \"%s\" of registered table \"%s\" does not exist", name,
                        RelationGetRelationName(rel)),
                 errhint("Register the table again: idsync.unreplicate, idsync.replicate.")));
    return attnum;
}

const TriggerColumns *trigger_columns(FunctionCallInfo fcinfo, TriggerData *td)
{
    auto *cached = static_cast<TriggerColumns *>(fcinfo->flinfo->fn_extra);
    Oid relid = RelationGetRelid(td->tg_relation);
    if (cached != nullptr && cached->relid == relid)
        return cached;
    Trigger *trigger = td->tg_trigger;
    bool lww = trigger->tgnargs >= 3 && strcmp(trigger->tgargs[0], "lww") == 0;
    if (trigger->tgnargs < 2 || (!lww && strcmp(trigger->tgargs[0], "insert_only") != 0))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("idsync.change_trigger has unexpected arguments")));
    auto *columns = static_cast<TriggerColumns *>(
        MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(TriggerColumns)));
    columns->relid = relid;
    columns->lww = lww;
    columns->point = column_number(td->tg_relation, trigger->tgargs[1]);
    columns->version = lww ? column_number(td->tg_relation, trigger->tgargs[2]) : 0;
    fcinfo->flinfo->fn_extra = columns;
    return columns;
}

// Milliseconds since the Unix epoch, shifted to leave 16 bits for the logical counter.
int64 hlc_now()
{
    TimestampTz now = GetCurrentTimestamp();
    int64 unix_ms = now / 1000 + (int64)(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * 86400000;
    return unix_ms << 16;
}

} // namespace

IDSYNC_FUNCTION(idsync_change_trigger)
{
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("idsync.change_trigger must be called as a trigger")));
    auto *td = reinterpret_cast<TriggerData *>(fcinfo->context);
    if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
        TRIGGER_FIRED_BY_DELETE(td->tg_event) || TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("idsync.change_trigger must fire BEFORE INSERT OR UPDATE FOR EACH "
                               "ROW")));
    const TriggerColumns *columns = trigger_columns(fcinfo, td);
    Relation rel = td->tg_relation;
    bool update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
    HeapTuple row = update ? td->tg_newtuple : td->tg_trigtuple;

    if (update && !columns->lww && !idsync::applying)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("cannot update table \"%s\": it is replicated as insert_only",
                        RelationGetRelationName(rel)),
                 errdetail("Rows of insert_only tables are immutable facts shared by every node."),
                 errhint("Register the table in mode 'lww' to replicate updates and deletes.")));

    int replace[2] = {columns->point, columns->version};
    Datum values[2] = {Int64GetDatum(idsync::next_point()), 0};
    bool nulls[2] = {false, false};
    int nreplace = 1;

    if (columns->lww && !idsync::applying) {
        bool isnull;
        Datum given = heap_getattr(row, columns->version, RelationGetDescr(rel), &isnull);
        int64 version = isnull ? 0 : DatumGetInt64(given);
        if (update) {
            // An explicit newer version is kept; otherwise the row's clock moves forward.
            bool old_null;
            Datum old =
                heap_getattr(td->tg_trigtuple, columns->version, RelationGetDescr(rel), &old_null);
            int64 previous = old_null ? 0 : DatumGetInt64(old);
            if (isnull || version <= previous)
                version = Max(hlc_now(), previous + 1);
        } else if (isnull) {
            version = hlc_now();
        }
        values[1] = Int64GetDatum(version);
        nreplace = 2;
    }
    HeapTuple stamped =
        heap_modify_tuple_by_cols(row, RelationGetDescr(rel), nreplace, replace, values, nulls);
    return PointerGetDatum(stamped);
}
