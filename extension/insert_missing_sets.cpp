// idsync.insert_missing_sets: insert_missing for many small sets of rows at once, returning
// per set the sorted distinct ids of its members.
#include "boundary.hpp"
#include "insert_missing.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

struct Members {
    const int64 *set_key; // [row]
    const Batch *batch;
};

int64 member_id(const Members &m, int32 row)
{
    return m.batch->ids.id[m.batch->keys.row_group[row]];
}

int compare_members(const void *pa, const void *pb, void *arg)
{
    const Members &m = *static_cast<const Members *>(arg);
    int32 a = *static_cast<const int32 *>(pa), b = *static_cast<const int32 *>(pb);
    if (m.set_key[a] != m.set_key[b])
        return m.set_key[a] < m.set_key[b] ? -1 : 1;
    int64 x = member_id(m, a), y = member_id(m, b);
    return (x > y) - (x < y);
}

int64 *read_set_keys(FunctionCallInfo fcinfo, int arg, int64 nrows)
{
    ArrayType *array = DatumGetArrayTypeP(required_arg(fcinfo, arg, "set_keys"));
    if (ARR_NDIM(array) > 1)
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("set_keys must be a one-dimensional array")));
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(array, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE, &elems, &nulls, &n);
    if (n != nrows)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("set_keys has %d elements but the value arrays have %lld", n,
                               static_cast<long long>(nrows))));
    int64 *keys = work_array<int64>(n);
    for (int i = 0; i < n; i++) {
        if (nulls[i])
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("set_keys must not contain NULL")));
        keys[i] = DatumGetInt64(elems[i]);
    }
    return keys;
}

} // namespace

} // namespace idsync

using namespace idsync;

// idsync.insert_missing_sets(target regclass, columns text[], set_keys bigint[],
//                            VARIADIC values "any") RETURNS TABLE (set_key bigint, ids bigint[])
IDSYNC_FUNCTION(idsync_insert_missing_sets)
{
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    Batch b = {};
    begin_batch(b, DatumGetObjectId(required_arg(fcinfo, 0, "target")),
                DatumGetArrayTypeP(required_arg(fcinfo, 1, "columns")));
    b.values = read_value_arrays(fcinfo, 3, b.target, b.estate);
    Members m = {read_set_keys(fcinfo, 2, b.values.nrows), &b};
    resolve_batch(b);

    int64 n = b.values.nrows;
    int32 *rows = work_array<int32>(n);
    for (int64 i = 0; i < n; i++)
        rows[i] = static_cast<int32>(i);
    qsort_arg(rows, n, sizeof(int32), compare_members, &m);

    Datum *ids = work_array<Datum>(n);
    for (int64 start = 0; start < n;) {
        int64 set_key = m.set_key[rows[start]];
        int count = 0;
        int64 end = start;
        for (; end < n && m.set_key[rows[end]] == set_key; end++) {
            int64 id = member_id(m, rows[end]);
            if (count == 0 || DatumGetInt64(ids[count - 1]) != id)
                ids[count++] = Int64GetDatum(id);
        }
        Datum out[2] = {Int64GetDatum(set_key),
                        PointerGetDatum(construct_array(ids, count, INT8OID, sizeof(int64), true,
                                                        TYPALIGN_DOUBLE))};
        bool nulls[2] = {false, false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, nulls);
        start = end;
    }
    end_batch(b);
    return Datum(0);
}
