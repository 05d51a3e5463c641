// idsync.content_trigger: the AFTER ... FOR EACH STATEMENT trigger that keeps a registered
// table's row count and content hash. It reads the statement's transition tables, XORs the
// hashes of the rows that left and of the rows that arrived, and appends one delta row to
// idsync.table_deltas. Deltas commit or roll back with the rows they describe; sync_info sums
// them and folds them into idsync.tables now and then. One row per statement, never a shared
// counter row, so concurrent writers do not wait for each other.
//
// Arguments: the local columns that the content hash leaves out (surrogate id, change point).
// Tables whose rows reference other registered tables by local id hash those references as the
// natural keys they point at, which only a query can reach; their arguments are "natural", then
// the queries (row count, hash1, hash2) over idsync_new and over idsync_old that idsync.replicate
// generated. They run as the user who wrote the rows.
#include "boundary.hpp"
#include "row_hash.hpp"

namespace {

struct Delta {
    uint64 h1;
    uint64 h2;
    int64 rows;
};

void add_rows(Tuplestorestate *rows, TupleDesc desc, const idsync::HashPlan *plan, int sign,
              Delta *delta)
{
    if (rows == nullptr)
        return;
    TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
    MemoryContext per_row =
        AllocSetContextCreate(CurrentMemoryContext, "idsync content row", ALLOCSET_DEFAULT_SIZES);
    // A read pointer of our own: other triggers may read the same transition table.
    int reader = tuplestore_alloc_read_pointer(rows, EXEC_FLAG_REWIND);
    tuplestore_select_read_pointer(rows, reader);
    tuplestore_rescan(rows);
    while (tuplestore_gettupleslot(rows, true, false, slot)) {
        MemoryContext old = MemoryContextSwitchTo(per_row);
        slot_getallattrs(slot);
        idsync::RowHash h = idsync::hash_row(plan, slot->tts_values, slot->tts_isnull);
        MemoryContextSwitchTo(old);
        MemoryContextReset(per_row);
        delta->h1 ^= h.h1;
        delta->h2 ^= h.h2;
        delta->rows += sign;
    }
    tuplestore_select_read_pointer(rows, 0);
    MemoryContextDelete(per_row);
    ExecDropSingleTupleTableSlot(slot);
}

void add_natural_rows(TriggerData *td, const char *query, Delta *delta)
{
    SPI_connect();
    if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
        elog(ERROR, "idsync: registering the transition tables failed");
    // Not read-only: a fresh snapshot sees referenced rows written earlier in the statement.
    if (SPI_execute(query, false, 0) != SPI_OK_SELECT || SPI_processed != 1 ||
        SPI_tuptable->tupdesc->natts != 3)
        elog(ERROR, "idsync: the natural content query of a registered table failed");
    bool null_count, null_h1, null_h2;
    HeapTuple tuple = SPI_tuptable->vals[0];
    TupleDesc desc = SPI_tuptable->tupdesc;
    int64 rows = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &null_count));
    int64 h1 = DatumGetInt64(SPI_getbinval(tuple, desc, 2, &null_h1));
    int64 h2 = DatumGetInt64(SPI_getbinval(tuple, desc, 3, &null_h2));
    SPI_finish();
    if (null_count || null_h1 || null_h2)
        elog(ERROR, "idsync: the natural content query of a registered table returned NULL");
    delta->h1 ^= static_cast<uint64>(h1);
    delta->h2 ^= static_cast<uint64>(h2);
    delta->rows += rows; // the query over idsync_old counts rows negatively
}

SPIPlanPtr delta_insert = nullptr;

// Appends the delta as the owner of idsync.table_deltas: writers of a registered table need
// no privilege on idsync's own tables.
void append_delta(Oid relid, const Delta &delta)
{
    Oid deltas = get_relname_relid("table_deltas", get_namespace_oid("idsync", false));
    HeapTuple cls = SearchSysCache1(RELOID, ObjectIdGetDatum(deltas));
    if (!HeapTupleIsValid(cls))
        elog(ERROR, "cache lookup failed for idsync.table_deltas");
    Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(cls))->relowner;
    ReleaseSysCache(cls);

    Oid saved_user;
    int saved_context;
    GetUserIdAndSecContext(&saved_user, &saved_context);
    SetUserIdAndSecContext(owner, saved_context | SECURITY_LOCAL_USERID_CHANGE);
    SPI_connect();
    if (delta_insert == nullptr) {
        Oid types[4] = {OIDOID, INT8OID, INT8OID, INT8OID};
        SPIPlanPtr plan = SPI_prepare("INSERT INTO idsync.table_deltas (relid, hash1, hash2, "
                                      "row_count) VALUES ($1, $2, $3, $4)",
                                      4, types);
        if (plan == nullptr)
            elog(ERROR, "idsync: preparing the delta insert failed: %s",
                 SPI_result_code_string(SPI_result));
        SPI_keepplan(plan);
        delta_insert = plan;
    }
    Datum values[4] = {ObjectIdGetDatum(relid), Int64GetDatum((int64)delta.h1),
                       Int64GetDatum((int64)delta.h2), Int64GetDatum(delta.rows)};
    if (SPI_execute_plan(delta_insert, values, nullptr, false, 0) != SPI_OK_INSERT)
        elog(ERROR, "idsync: appending a content delta failed");
    SPI_finish();
    SetUserIdAndSecContext(saved_user, saved_context);
}

} // namespace

IDSYNC_FUNCTION(idsync_content_trigger)
{
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("idsync.content_trigger must be called as a trigger")));
    auto *td = reinterpret_cast<TriggerData *>(fcinfo->context);
    if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("idsync.content_trigger must fire AFTER ... FOR EACH STATEMENT")));
    Relation rel = td->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    const Trigger *trigger = td->tg_trigger;
    Delta delta = {0, 0, 0};
    if (trigger->tgnargs == 3 && strcmp(trigger->tgargs[0], "natural") == 0) {
        if (td->tg_newtable != nullptr)
            add_natural_rows(td, trigger->tgargs[1], &delta);
        if (td->tg_oldtable != nullptr)
            add_natural_rows(td, trigger->tgargs[2], &delta);
    } else {
        idsync::HashPlan *plan = idsync::build_hash_plan(desc, trigger->tgargs, trigger->tgnargs);
        add_rows(td->tg_oldtable, desc, plan, -1, &delta);
        add_rows(td->tg_newtable, desc, plan, +1, &delta);
    }
    if (delta.h1 != 0 || delta.h2 != 0 || delta.rows != 0)
        append_delta(RelationGetRelid(rel), delta);
    return PointerGetDatum(nullptr);
}
