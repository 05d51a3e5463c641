// idsync.change_trigger: the BEFORE INSERT OR UPDATE row trigger of every registered table.
//
// It stamps each new row version with a change point, refuses updates of insert_only tables,
// and in lww tables gives local changes a version: a hybrid logical clock per row, the later of
// the wall clock (milliseconds << 16) and the row's previous version + 1, so a local update
// always wins over every version this node had seen of the row; an insert of a key deleted
// before replaces the key's tombstone and is newer than it. Rows that idsync itself merges
// (applying.hpp) keep the version they came with.
//
// Versions are checked: one below zero or beyond this node's clock plus idsync.max_clock_skew
// is refused with 22003 (a merge parks the row), since it would win every conflict for ever.
//
// The settings come from the table's registration, never from the trigger's arguments.
#include "applying.hpp"
#include "boundary.hpp"
#include "change_points.hpp"
#include "hlc.hpp"
#include "natural_key.hpp"
#include "registration.hpp"
#include "tombstones.hpp"
#include "work_array.hpp"

namespace {

struct TriggerColumns {
    Oid relid;
    bool lww;
    int point;            // attribute numbers
    int version;          // 0 for insert_only
    int origin;           // idsync_origin, 0 when the table predates it
    idsync::KeyPlan *key; // lww: built when a tombstone is first met
    // Whether the table has tombstones, read at the statement's first insert: a statement that
    // found none skips the lookup of each row's key (these settings live as long as the
    // statement).
    bool tombstones;
    bool tombstones_read;
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

TriggerColumns *trigger_columns(FunctionCallInfo fcinfo, TriggerData *td)
{
    auto *cached = static_cast<TriggerColumns *>(fcinfo->flinfo->fn_extra);
    Oid relid = RelationGetRelid(td->tg_relation);
    if (cached != nullptr && cached->relid == relid)
        return cached;
    const idsync::Registration *reg =
        idsync::trigger_registration(td, fcinfo->flinfo->fn_mcxt, "idsync.change_trigger");
    auto *columns = static_cast<TriggerColumns *>(
        MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(TriggerColumns)));
    columns->relid = relid;
    columns->lww = reg->lww;
    columns->point = column_number(td->tg_relation, reg->point_column);
    columns->version = reg->lww ? column_number(td->tg_relation, reg->version_column) : 0;
    int origin = SPI_fnumber(RelationGetDescr(td->tg_relation), "idsync_origin");
    columns->origin = origin > 0 ? origin : 0;
    columns->key = nullptr;
    columns->tombstones = !reg->schema_outdated; // idsync.tombstones exists from 0.5.0 on
    columns->tombstones_read = false;
    fcinfo->flinfo->fn_extra = columns;
    return columns;
}

// The largest version this node accepts now: its clock plus the allowed skew.
int64 newest_acceptable()
{
    return idsync::hlc_now() + ((int64)idsync::max_clock_skew_ms << 16);
}

void check_version(Relation rel, int64 version)
{
    if (version < 0 || version > newest_acceptable())
        ereport(ERROR,
                (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                 errmsg("version %lld of a row of \"%s\" is out of range",
                        static_cast<long long>(version), RelationGetRelationName(rel)),
                 errdetail("Versions are hybrid clock readings: at least 0 and at most this node's "
                           "clock plus idsync.max_clock_skew (%d ms).",
                           idsync::max_clock_skew_ms),
                 errhint("Let idsync set the version; check the clocks of the nodes.")));
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
    TriggerColumns *columns = trigger_columns(fcinfo, td);
    Relation rel = td->tg_relation;
    bool update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
    HeapTuple row = update ? td->tg_newtuple : td->tg_trigtuple;

    bool applying = idsync::applying(columns->relid, idsync::ApplyPurpose::merge);
    if (update && !columns->lww)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("cannot update table \"%s\": it is replicated as insert_only",
                        RelationGetRelationName(rel)),
                 errdetail("Rows of insert_only tables are immutable facts shared by every node."),
                 errhint("Register the table in mode 'lww' to replicate updates and deletes.")));

    int replace[3] = {columns->point, 0, 0};
    Datum values[3] = {Int64GetDatum(idsync::next_point()), 0, 0};
    bool nulls[3] = {false, false, false};
    int nreplace = 1;
    // A row written here has this node as its origin (NULL); a merged row keeps the node the
    // merge names, else comes from the merge's source (a COPY straight into the table).
    if (columns->origin > 0 && !applying) {
        replace[nreplace] = columns->origin;
        nulls[nreplace] = true;
        nreplace++;
    } else if (columns->origin > 0 && !update) {
        bool origin_null;
        (void)heap_getattr(row, columns->origin, RelationGetDescr(rel), &origin_null);
        const pg_uuid_t *source = origin_null ? idsync::applying_source(columns->relid) : nullptr;
        if (source != nullptr) {
            replace[nreplace] = columns->origin;
            values[nreplace] = UUIDPGetDatum(const_cast<pg_uuid_t *>(source));
            nreplace++;
        }
    }

    if (columns->lww) {
        bool isnull;
        Datum given = heap_getattr(row, columns->version, RelationGetDescr(rel), &isnull);
        int64 version = isnull ? 0 : DatumGetInt64(given);
        if (!isnull)
            check_version(rel, version);
        if (applying) {
            if (isnull)
                ereport(ERROR, (errcode(ERRCODE_NOT_NULL_VIOLATION),
                                errmsg("a merged row of \"%s\" has no version",
                                       RelationGetRelationName(rel))));
        } else if (update) {
            // An explicit newer version is kept; otherwise the row's clock moves forward. The
            // previous version passed check_version when it was written, so +1 cannot overflow.
            bool old_null;
            Datum old =
                heap_getattr(td->tg_trigtuple, columns->version, RelationGetDescr(rel), &old_null);
            int64 previous = old_null ? 0 : DatumGetInt64(old);
            if (isnull || version <= previous) {
                if (previous == PG_INT64_MAX)
                    check_version(rel, previous);
                version = Max(idsync::hlc_now(), previous + 1);
            }
        } else {
            if (isnull)
                version = idsync::hlc_now();
            // A deleted key written again: the row will replace its tombstone, so its version
            // goes past the tombstone's. The tombstone itself goes at the end of the statement,
            // once the row is in (tombstone_settle.cpp): a trigger after this one, or ON CONFLICT
            // on another unique index, may still keep the row out.
            if (columns->tombstones && !columns->tombstones_read) {
                columns->tombstones = idsync::has_tombstones(columns->relid);
                columns->tombstones_read = true;
            }
            if (columns->tombstones) {
                if (columns->key == nullptr)
                    columns->key = idsync::key_plan(columns->relid, fcinfo->flinfo->fn_mcxt);
                TupleDesc desc = RelationGetDescr(rel);
                Datum *row_values = idsync::work_array<Datum>(desc->natts);
                bool *row_nulls = idsync::work_array<bool>(desc->natts);
                heap_deform_tuple(row, desc, row_values, row_nulls);
                idsync::NaturalKey key;
                int64 buried = -1;
                if (idsync::natural_key_of_row(columns->key, row_values, row_nulls, &key))
                    idsync::tombstone_versions(columns->relid, &key.hash, 1, &buried);
                if (buried >= version)
                    version = buried + 1;
            }
        }
        replace[nreplace] = columns->version;
        values[nreplace] = Int64GetDatum(version);
        nreplace++;
    }
    HeapTuple stamped =
        heap_modify_tuple_by_cols(row, RelationGetDescr(rel), nreplace, replace, values, nulls);
    return PointerGetDatum(stamped);
}
