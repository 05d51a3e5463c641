#include "key_probe.hpp"

#include "work_array.hpp"

namespace idsync {

namespace {

[[noreturn]] void report_existing_conflict(const TargetTable &t, const ColumnValues &v,
                                           const RowKeys &k, int64 row, TupleTableSlot *slot)
{
    int column = 0;
    for (int c = 0; c < t.nmatched; c++) {
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

// One index scan, re-aimed at each distinct row in turn.
struct Scanner {
    IndexScanDesc scan;
    TupleTableSlot *slot;
    ScanKeyData *scankeys;
    FmgrInfo *equality;
    MemoryContext per_probe;
};

Scanner begin_scan(const TargetTable &t, Snapshot snapshot)
{
    Scanner s;
    IndexInfo *info = t.index_info;
    s.equality = work_array<FmgrInfo>(t.nkeys);
    for (int key = 0; key < t.nkeys; key++)
        fmgr_info(info->ii_UniqueProcs[key], &s.equality[key]);
    s.scankeys = work_array<ScanKeyData>(t.nkeys);
    s.scan = index_beginscan(t.rel, t.index, snapshot, t.nkeys, 0);
    s.slot = table_slot_create(t.rel, nullptr);
    s.per_probe =
        AllocSetContextCreate(CurrentMemoryContext, "idsync probe", ALLOCSET_DEFAULT_SIZES);
    return s;
}

void end_scan(Scanner &s)
{
    index_endscan(s.scan);
    ExecDropSingleTupleTableSlot(s.slot);
    MemoryContextDelete(s.per_probe);
}

// Looks up input row `row`; returns true and sets *id when a row equal in every given column
// is visible to the scan's snapshot.
bool probe_row(Scanner &s, const TargetTable &t, const ColumnValues &v, const RowKeys &k, int32 row,
               int64 *id)
{
    for (int key = 0; key < t.nkeys; key++) {
        if (k.key_nulls[key][row])
            ScanKeyEntryInitialize(&s.scankeys[key], SK_ISNULL | SK_SEARCHNULL, key + 1,
                                   InvalidStrategy, InvalidOid, InvalidOid, InvalidOid, 0);
        else
            ScanKeyEntryInitializeWithInfo(
                &s.scankeys[key], 0, key + 1, t.index_info->ii_UniqueStrats[key], InvalidOid,
                t.index->rd_indcollation[key], &s.equality[key], k.key_values[key][row]);
    }
    // The index AM runs in the scan's own context: btree keeps memory of the scan there (the
    // entries it marks dead, allocated on first use) until the scan ends.
    bool found = false;
    index_rescan(s.scan, s.scankeys, t.nkeys, nullptr, 0);
    while (index_getnext_slot(s.scan, ForwardScanDirection, s.slot)) {
        // What comparing the row allocates (detoasted values) goes with the probe.
        MemoryContext caller = MemoryContextSwitchTo(s.per_probe);
        bool equal = row_equals_slot(t, v, row, s.slot);
        if (equal)
            *id = read_id(t, s.slot);
        MemoryContextSwitchTo(caller);
        MemoryContextReset(s.per_probe);
        if (equal) {
            found = true;
            break;
        }
        // Only rows the index does not protect (NULL keys) may share a key and differ.
        if (k.protected_row[row])
            report_existing_conflict(t, v, k, row, s.slot);
    }
    return found;
}

} // namespace

void probe_groups(const TargetTable &t, const ColumnValues &v, const RowKeys &k,
                  const int32 *groups, int64 count, GroupIds &ids)
{
    if (count == 0)
        return;
    // A fresh snapshot: in READ COMMITTED it also sees rows that other transactions committed
    // after the statement began; in REPEATABLE READ it is the transaction's snapshot. It sees
    // this transaction's earlier inserts, this call's included.
    PushCopiedSnapshot(GetTransactionSnapshot());
    UpdateActiveSnapshotCommandId();
    Scanner s = begin_scan(t, GetActiveSnapshot());
    for (int64 i = 0; i < count; i++) {
        CHECK_FOR_INTERRUPTS();
        int32 group = groups[i];
        if (probe_row(s, t, v, k, k.group_row[group], &ids.id[group]))
            ids.state[group] = IdState::found;
    }
    end_scan(s);
    PopActiveSnapshot();
}

void check_unprotected_visible(const TargetTable &t, const ColumnValues &v, const RowKeys &k,
                               const GroupIds &ids)
{
    Snapshot latest = RegisterSnapshot(GetLatestSnapshot());
    Scanner s = begin_scan(t, latest);
    for (int64 group = 0; group < k.ngroups; group++) {
        int32 row = k.group_row[group];
        int64 id;
        if (ids.state[group] != IdState::missing || k.protected_row[row])
            continue;
        CHECK_FOR_INTERRUPTS();
        if (probe_row(s, t, v, k, row, &id))
            ereport(ERROR,
                    (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                     errmsg("could not serialize access due to concurrent insert"),
                     errdetail("Input row %lld of \"%s\" was inserted by a transaction "
                               "that committed after this transaction's snapshot.",
                               static_cast<long long>(row + 1), RelationGetRelationName(t.rel))));
    }
    end_scan(s);
    UnregisterSnapshot(latest);
}

} // namespace idsync
