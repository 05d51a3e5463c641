// The end of a statement that wrote an lww table, for the rows it actually wrote (its transition
// tables). Deleted rows get their tombstones (record_deleted_rows). Inserted rows replace the
// tombstones of their keys, which the change trigger only looked at; and rows inserted while a
// tombstone of their key appeared: an INSERT that waited
// for a concurrent DELETE of the same key (on the key index) goes on once the delete commits,
// after its change trigger looked for tombstones, and so does a merge's upsert. The content
// trigger settles such rows at the end of the statement (fresh snapshot): a local insert came
// after the delete, so it wins, with a version past the tombstone's if needed; a merged row
// keeps its version and the newer of the two stays. Per key, a node keeps the row or the
// tombstone, never both.
#include "applying.hpp"
#include "hlc.hpp"
#include "kept_plans.hpp"
#include "natural_key.hpp"
#include "state_access.hpp"
#include "tombstones.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

// Runs "<verb> <table> ... WHERE <point> = $1" on the one row it settles, as the table's owner
// and past its row-level security, as PostgreSQL's foreign keys act: a correction idsync owes
// the row whoever wrote it, which the writer's own rights (INSERT only, say) must not stop
// halfway. With search_path pinned.
void fix_row(Relation rel, const char *sql, int nargs, Oid *types, Datum *values)
{
    Oid saved_user;
    int saved_context;
    GetUserIdAndSecContext(&saved_user, &saved_context);
    SetUserIdAndSecContext(rel->rd_rel->relowner,
                           saved_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
    int pinned = pin_search_path();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    SPIPlanPtr plan = kept_plan(sql, nargs, types);
    int ret = SPI_execute_plan(plan, values, nullptr, false, 0);
    if (ret < 0 || SPI_processed != 1)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                        errmsg("idsync: settling a row of %s with its tombstone found %llu rows",
                               RelationGetRelationName(rel),
                               static_cast<unsigned long long>(ret < 0 ? 0 : SPI_processed))));
    SPI_finish();
    unpin_search_path(pinned);
    SetUserIdAndSecContext(saved_user, saved_context);
}

} // namespace

void record_deleted_rows(Relation rel, const Registration *reg, Tuplestorestate *rows)
{
    Oid relid = RelationGetRelid(rel);
    if (rows == nullptr || !reg->lww || reg->schema_outdated ||
        applying(relid, ApplyPurpose::merge) || applying(relid, ApplyPurpose::reclaim))
        return;
    TupleDesc desc = RelationGetDescr(rel);
    int version_at = SPI_fnumber(desc, reg->version_column) - 1;
    if (version_at < 0)
        return;
    KeyPlan *plan = key_plan(relid, CurrentMemoryContext);
    MemoryContext per_row =
        AllocSetContextCreate(CurrentMemoryContext, "idsync tombstone", ALLOCSET_DEFAULT_SIZES);
    TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
    int reader = tuplestore_alloc_read_pointer(rows, EXEC_FLAG_REWIND);
    tuplestore_select_read_pointer(rows, reader);
    tuplestore_rescan(rows);
    while (tuplestore_gettupleslot(rows, true, false, slot)) {
        slot_getallattrs(slot);
        MemoryContext old = MemoryContextSwitchTo(per_row);
        NaturalKey key;
        // The rows it references were remembered when it was deleted (tombstone_trigger.cpp).
        if (!natural_key_of_row(plan, slot->tts_values, slot->tts_isnull, &key))
            ereport(ERROR, (errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
                            errmsg("idsync: a deleted row of \"%s\" references a row that is gone",
                                   RelationGetRelationName(rel)),
                            errdetail("Its natural key cannot be kept for its tombstone.")));
        int64 previous =
            slot->tts_isnull[version_at] ? 0 : DatumGetInt64(slot->tts_values[version_at]);
        record_tombstone(relid, key, Max(hlc_now(), previous + 1), nullptr);
        MemoryContextSwitchTo(old);
        MemoryContextReset(per_row);
    }
    tuplestore_select_read_pointer(rows, 0);
    ExecDropSingleTupleTableSlot(slot);
    MemoryContextDelete(per_row);
}

void settle_inserted_rows(Relation rel, const Registration *reg, Tuplestorestate *rows)
{
    Oid relid = RelationGetRelid(rel);
    if (rows == nullptr || !reg->lww || reg->schema_outdated || !has_tombstones(relid))
        return;
    TupleDesc desc = RelationGetDescr(rel);
    int version_at = SPI_fnumber(desc, reg->version_column) - 1;
    int point_at = SPI_fnumber(desc, reg->point_column) - 1;
    if (version_at < 0 || point_at < 0)
        return;
    KeyPlan *plan = key_plan(relid, CurrentMemoryContext);
    int64 n = tuplestore_tuple_count(rows);
    RowHash *keys = work_array<RowHash>(n);
    int64 *versions = work_array<int64>(n);
    int64 *points = work_array<int64>(n);
    int64 count = 0;
    TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
    int reader = tuplestore_alloc_read_pointer(rows, EXEC_FLAG_REWIND);
    tuplestore_select_read_pointer(rows, reader);
    tuplestore_rescan(rows);
    while (tuplestore_gettupleslot(rows, true, false, slot)) {
        slot_getallattrs(slot);
        NaturalKey key;
        if (slot->tts_isnull[version_at] || slot->tts_isnull[point_at] ||
            !natural_key_of_row(plan, slot->tts_values, slot->tts_isnull, &key))
            continue;
        keys[count] = key.hash;
        versions[count] = DatumGetInt64(slot->tts_values[version_at]);
        points[count] = DatumGetInt64(slot->tts_values[point_at]);
        count++;
    }
    tuplestore_select_read_pointer(rows, 0);
    ExecDropSingleTupleTableSlot(slot);

    int64 *buried = work_array<int64>(count);
    tombstone_versions(relid, keys, count, buried);
    bool merging = applying(relid, ApplyPurpose::merge);
    RowHash *dropped = work_array<RowHash>(count);
    int64 ndropped = 0;
    const char *point = quote_identifier(reg->point_column);
    const char *version = quote_identifier(reg->version_column);
    for (int64 i = 0; i < count; i++) {
        if (buried[i] < 0)
            continue;
        if (merging && buried[i] >= versions[i]) {
            // The tombstone is as new or newer: the merged row goes (under the merge's flag,
            // which keeps the tombstone trigger from keeping another).
            Oid types[1] = {INT8OID};
            Datum values[1] = {Int64GetDatum(points[i])};
            fix_row(rel,
                    psprintf("DELETE FROM %s t WHERE t.%s OPERATOR(pg_catalog.=) $1",
                             relid_name(relid), point),
                    1, types, values);
            continue;
        }
        dropped[ndropped++] = keys[i];
        if (!merging && buried[i] >= versions[i]) {
            Oid types[2] = {INT8OID, INT8OID};
            Datum values[2] = {Int64GetDatum(buried[i] + 1), Int64GetDatum(points[i])};
            fix_row(rel,
                    psprintf("UPDATE %s t SET %s = $1 WHERE t.%s OPERATOR(pg_catalog.=) $2",
                             relid_name(relid), version, point),
                    2, types, values);
        }
    }
    drop_tombstones(relid, dropped, ndropped);
}

} // namespace idsync
