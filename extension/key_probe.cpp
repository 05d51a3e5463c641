#include "key_probe.hpp"

#include "work_array.hpp"

namespace idsync {

namespace {

[[noreturn]] void report_existing_conflict(const TargetTable &t, const ColumnValues &v,
                                           const RowKeys &k, int64 row, TupleTableSlot *slot)
{
    int column = 0;
    for (int c = 0; c < t.ncolumns; c++) {
        bool isnull;
        Datum d = slot_getattr(slot, t.attnums[c], &isnull);
        if (ApplySortComparator(v.values[c][row], v.nulls[c][row], d, isnull, &t.column_order[c]) !=
            0) {
            column = c;
            break;
        }
    }
    Datum values[INDEX_MAX_KEYS];
    bool nulls[INDEX_MAX_KEYS];
    for (int key = 0; key < t.nkeys; key++) {
        values[key] = k.key_values[key][row];
        nulls[key] = k.key_nulls[key][row];
    }
    char *key = BuildIndexValueDescription(t.index, values, nulls);
    ereport(ERROR,
            (errcode(ERRCODE_UNIQUE_VIOLATION),
             errmsg("input row %lld conflicts with an existing row of \"%s\"",
                    static_cast<long long>(row + 1), RelationGetRelationName(t.rel)),
             key ? errdetail("Key %s already exists with a different value in column \"%s\".", key,
                             t.columns[column])
                 : errdetail("A row with the same key already exists with a different value in "
                             "column \"%s\".",
                             t.columns[column]),
             errtableconstraint(t.rel, RelationGetRelationName(t.index))));
}

} // namespace

void probe_groups(const TargetTable &t, const ColumnValues &v, const RowKeys &k,
                  const int32 *groups, int64 count, GroupIds &ids)
{
    if (count == 0)
        return;
    IndexInfo *info = t.index_info;
    FmgrInfo *equality = work_array<FmgrInfo>(t.nkeys);
    for (int key = 0; key < t.nkeys; key++)
        fmgr_info(info->ii_UniqueProcs[key], &equality[key]);
    ScanKeyData *scankeys = work_array<ScanKeyData>(t.nkeys);

    // A fresh snapshot: in READ COMMITTED it also sees rows that other transactions committed
    // after the statement began; in REPEATABLE READ it is the transaction's snapshot. It sees
    // this transaction's earlier inserts, this call's included.
    PushCopiedSnapshot(GetTransactionSnapshot());
    UpdateActiveSnapshotCommandId();
    IndexScanDesc scan = index_beginscan(t.rel, t.index, GetActiveSnapshot(), t.nkeys, 0);
    TupleTableSlot *slot = table_slot_create(t.rel, nullptr);
    MemoryContext caller = CurrentMemoryContext;
    MemoryContext per_probe = AllocSetContextCreate(caller, "idsync probe", ALLOCSET_DEFAULT_SIZES);

    for (int64 i = 0; i < count; i++) {
        CHECK_FOR_INTERRUPTS();
        int32 group = groups[i];
        int32 row = k.group_row[group];
        for (int key = 0; key < t.nkeys; key++) {
            if (k.key_nulls[key][row])
                ScanKeyEntryInitialize(&scankeys[key], SK_ISNULL | SK_SEARCHNULL, key + 1,
                                       InvalidStrategy, InvalidOid, InvalidOid, InvalidOid, 0);
            else
                ScanKeyEntryInitializeWithInfo(
                    &scankeys[key], 0, key + 1, info->ii_UniqueStrats[key], InvalidOid,
                    t.index->rd_indcollation[key], &equality[key], k.key_values[key][row]);
        }
        MemoryContextSwitchTo(per_probe);
        index_rescan(scan, scankeys, t.nkeys, nullptr, 0);
        while (index_getnext_slot(scan, ForwardScanDirection, slot)) {
            if (row_equals_slot(t, v, row, slot)) {
                ids.id[group] = read_id(t, slot);
                ids.state[group] = IdState::found;
                break;
            }
            // Only rows the index does not protect (NULL keys) may share a key and differ.
            if (k.protected_row[row])
                report_existing_conflict(t, v, k, row, slot);
        }
        MemoryContextSwitchTo(caller);
        MemoryContextReset(per_probe);
    }

    index_endscan(scan);
    ExecDropSingleTupleTableSlot(slot);
    PopActiveSnapshot();
    MemoryContextDelete(per_probe);
}

} // namespace idsync
