// idsync.tombstone_trigger: the BEFORE DELETE row trigger of lww tables. The row is deleted as
// the user asked; what replicates the delete is its tombstone, kept in idsync.tombstones
// (tombstones.hpp) by the statement's content trigger for the rows actually deleted
// (record_deleted_rows: a trigger after this one may still keep a row). Here the row's natural
// key is remembered for the rest of the transaction, while the rows it references are still
// here, so that rows deleted after it (ON DELETE CASCADE, SET NULL) and its own tombstone still
// find the keys they referenced.
#include "applying.hpp"
#include "boundary.hpp"
#include "natural_key.hpp"
#include "registration.hpp"
#include "state_access.hpp"
#include "tombstones.hpp"
#include "work_array.hpp"

namespace {

struct TombstoneColumns {
    Oid relid;
    const idsync::Registration *reg;
    AttrNumber version;
    idsync::KeyPlan *key;
};

const TombstoneColumns *tombstone_columns(FunctionCallInfo fcinfo, TriggerData *td)
{
    auto *cached = static_cast<TombstoneColumns *>(fcinfo->flinfo->fn_extra);
    Oid relid = RelationGetRelid(td->tg_relation);
    if (cached != nullptr && cached->relid == relid)
        return cached;
    MemoryContext context = fcinfo->flinfo->fn_mcxt;
    const idsync::Registration *reg =
        idsync::trigger_registration(td, context, "idsync.tombstone_trigger");
    if (reg->schema_outdated)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("the idsync extension in this database is older than its library"),
                        errhint("Run ALTER EXTENSION idsync UPDATE.")));
    if (!reg->lww)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("idsync.tombstone_trigger fired on \"%s\", which is not an lww table",
                        RelationGetRelationName(td->tg_relation))));
    auto *columns =
        static_cast<TombstoneColumns *>(MemoryContextAllocZero(context, sizeof(TombstoneColumns)));
    columns->relid = relid;
    columns->reg = reg;
    columns->version = SPI_fnumber(RelationGetDescr(td->tg_relation), reg->version_column);
    if (columns->version <= 0)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                        errmsg("version column \"%s\" of \"%s\" does not exist",
                               reg->version_column, RelationGetRelationName(td->tg_relation))));
    columns->key = idsync::key_plan(relid, context);
    fcinfo->flinfo->fn_extra = columns;
    return columns;
}

} // namespace

IDSYNC_FUNCTION(idsync_tombstone_trigger)
{
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("idsync.tombstone_trigger must be called as a trigger")));
    auto *td = reinterpret_cast<TriggerData *>(fcinfo->context);
    if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
        !TRIGGER_FIRED_BY_DELETE(td->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("idsync.tombstone_trigger must fire BEFORE DELETE FOR EACH ROW")));
    Relation rel = td->tg_relation;
    const TombstoneColumns *columns = tombstone_columns(fcinfo, td);
    if (idsync::applying(columns->relid, idsync::ApplyPurpose::reclaim))
        return PointerGetDatum(td->tg_trigtuple);

    TupleDesc desc = RelationGetDescr(rel);
    Datum *values = idsync::work_array<Datum>(desc->natts);
    bool *nulls = idsync::work_array<bool>(desc->natts);
    heap_deform_tuple(td->tg_trigtuple, desc, values, nulls);
    idsync::NaturalKey key;
    if (!idsync::natural_key_of_row(columns->key, values, nulls, &key))
        ereport(ERROR, (errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
                        errmsg("idsync: a row of \"%s\" references a row that is gone",
                               RelationGetRelationName(rel)),
                        errdetail("Its natural key cannot be kept for its tombstone.")));
    idsync::remember_deleted(columns->reg, desc, values, nulls, key);
    return PointerGetDatum(td->tg_trigtuple);
}
