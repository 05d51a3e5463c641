#include "row_keys.hpp"

#include "work_array.hpp"

namespace idsync {

namespace {

struct Rows {
    const TargetTable *t;
    const ColumnValues *v;
    const RowKeys *k;
};

int compare_keys(const Rows &r, int64 a, int64 b)
{
    for (int k = 0; k < r.t->nkeys; k++) {
        int cmp =
            ApplySortComparator(r.k->key_values[k][a], r.k->key_nulls[k][a], r.k->key_values[k][b],
                                r.k->key_nulls[k][b], &r.t->key_order[k]);
        if (cmp != 0)
            return cmp;
    }
    return 0;
}

// Returns the first given column in which rows a and b differ, or -1.
int first_difference(const Rows &r, int64 a, int64 b)
{
    for (int c = 0; c < r.t->nmatched; c++)
        if (ApplySortComparator(r.v->values[c][a], r.v->nulls[c][a], r.v->values[c][b],
                                r.v->nulls[c][b], &r.t->column_order[c]) != 0)
            return c;
    return -1;
}

int compare_rows(const void *pa, const void *pb, void *arg)
{
    const Rows &r = *static_cast<const Rows *>(arg);
    int32 a = *static_cast<const int32 *>(pa);
    int32 b = *static_cast<const int32 *>(pb);
    int cmp = compare_keys(r, a, b);
    if (cmp != 0)
        return cmp;
    for (int c = 0; c < r.t->nmatched; c++) {
        cmp = ApplySortComparator(r.v->values[c][a], r.v->nulls[c][a], r.v->values[c][b],
                                  r.v->nulls[c][b], &r.t->column_order[c]);
        if (cmp != 0)
            return cmp;
    }
    return (a > b) - (a < b); // equal rows keep input order, so a group starts at its first row
}

// The index key of each row: the given columns themselves for a plain index, otherwise the
// index expressions evaluated on each row. Checks the predicate of a partial index.
void compute_keys(const TargetTable &t, const ColumnValues &v, RowKeys &k)
{
    int64 n = v.nrows;
    k.key_values = work_array<Datum *>(t.nkeys);
    k.key_nulls = work_array<bool *>(t.nkeys);
    if (!t.index_computes_keys) {
        for (int key = 0; key < t.nkeys; key++) {
            k.key_values[key] = v.values[t.key_column[key]];
            k.key_nulls[key] = v.nulls[t.key_column[key]];
        }
        return;
    }

    for (int key = 0; key < t.nkeys; key++) {
        k.key_values[key] = work_array<Datum>(n);
        k.key_nulls[key] = work_array<bool>(n);
    }
    EState *estate = CreateExecutorState();
    ExprContext *econtext = GetPerTupleExprContext(estate);
    TupleDesc desc = RelationGetDescr(t.rel);
    TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
    econtext->ecxt_scantuple = slot;
    ExprState *predicate = ExecPrepareQual(t.index_info->ii_Predicate, estate);
    Datum key_values[INDEX_MAX_KEYS];
    bool key_nulls[INDEX_MAX_KEYS];

    for (int64 row = 0; row < n; row++) {
        CHECK_FOR_INTERRUPTS();
        ExecClearTuple(slot);
        memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
        for (int c = 0; c < t.ncolumns; c++) {
            slot->tts_values[t.attnums[c] - 1] = v.values[c][row];
            slot->tts_isnull[t.attnums[c] - 1] = v.nulls[c][row];
        }
        ExecStoreVirtualTuple(slot);
        if (predicate != nullptr && !ExecQual(predicate, econtext))
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("input row %lld is outside the predicate of unique index \"%s\"",
                            static_cast<long long>(row + 1), RelationGetRelationName(t.index)),
                     errdetail("Only rows the unique index covers can be kept free of "
                               "duplicates.")));
        FormIndexDatum(t.index_info, slot, estate, key_values, key_nulls);
        for (int key = 0; key < t.nkeys; key++) {
            Form_pg_attribute att = TupleDescAttr(RelationGetDescr(t.index), key);
            k.key_nulls[key][row] = key_nulls[key];
            k.key_values[key][row] =
                key_nulls[key] ? Datum(0) : datumCopy(key_values[key], att->attbyval, att->attlen);
        }
        ResetExprContext(econtext);
    }
    ExecDropSingleTupleTableSlot(slot);
    FreeExecutorState(estate);
}

void mark_protected_rows(const TargetTable &t, int64 n, RowKeys &k)
{
    k.protected_row = work_array<bool>(n);
    for (int64 row = 0; row < n; row++) {
        bool has_null = false;
        for (int key = 0; key < t.nkeys && !has_null; key++)
            has_null = k.key_nulls[key][row];
        k.protected_row[row] = t.index_info->ii_NullsNotDistinct || !has_null;
    }
}

[[noreturn]] void report_batch_conflict(const Rows &r, int64 a, int64 b, int column)
{
    const TargetTable &t = *r.t;
    Datum values[INDEX_MAX_KEYS];
    bool nulls[INDEX_MAX_KEYS];
    for (int key = 0; key < t.nkeys; key++) {
        values[key] = r.k->key_values[key][a];
        nulls[key] = r.k->key_nulls[key][a];
    }
    char *key = BuildIndexValueDescription(t.index, values, nulls);
    ereport(ERROR, (errcode(ERRCODE_UNIQUE_VIOLATION),
                    errmsg("input rows %lld and %lld have the same key but differ in column \"%s\"",
                           static_cast<long long>(Min(a, b) + 1),
                           static_cast<long long>(Max(a, b) + 1), t.columns[column]),
                    key ? errdetail("Key %s.", key) : 0,
                    errtableconstraint(t.rel, RelationGetRelationName(t.index))));
}

} // namespace

RowKeys group_rows(const TargetTable &t, const ColumnValues &v)
{
    RowKeys k = {};
    int64 n = v.nrows;
    compute_keys(t, v, k);
    mark_protected_rows(t, n, k);

    Rows rows = {&t, &v, &k};
    int32 *order = work_array<int32>(n);
    for (int64 row = 0; row < n; row++)
        order[row] = static_cast<int32>(row);
    qsort_arg(order, n, sizeof(int32), compare_rows, &rows);

    k.group_row = work_array<int32>(n);
    k.row_group = work_array<int32>(n);
    k.ngroups = 0;
    for (int64 i = 0; i < n; i++) {
        int32 row = order[i];
        int32 prev = i > 0 ? order[i - 1] : -1;
        bool same_key = prev >= 0 && compare_keys(rows, prev, row) == 0;
        int column = same_key ? first_difference(rows, prev, row) : 0;
        if (!same_key || column >= 0) {
            if (same_key && k.protected_row[row])
                report_batch_conflict(rows, prev, row, column);
            k.group_row[k.ngroups++] = row;
        }
        k.row_group[row] = static_cast<int32>(k.ngroups - 1);
    }
    pfree(order);
    return k;
}

bool row_equals_slot(const TargetTable &t, const ColumnValues &v, int64 a, TupleTableSlot *slot)
{
    for (int c = 0; c < t.nmatched; c++) {
        bool isnull;
        Datum d = slot_getattr(slot, t.attnums[c], &isnull);
        if (ApplySortComparator(v.values[c][a], v.nulls[c][a], d, isnull, &t.column_order[c]) != 0)
            return false;
    }
    return true;
}

} // namespace idsync
