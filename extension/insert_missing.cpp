#include "insert_missing.hpp"

#include "boundary.hpp"
#include "key_locks.hpp"
#include "key_probe.hpp"
#include "missing_insert.hpp"
#include "plain_attempt.hpp"
#include "state_access.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

// Rounds of insert-then-look-up before giving up: a row is only missing again after a round
// when a concurrent transaction deleted it in between.
constexpr int kMaxRounds = 3;

// Probing first pays off when many rows exist; when most are new, ON CONFLICT finds the few
// existing ones anyway and the probe would double the index descents. A sample of this many
// evenly spaced distinct rows decides; below kProbeHitRate found, only the rows that the
// index does not protect are probed (they always need it: ON CONFLICT cannot see them).
constexpr int64 kProbeSample = 64;
constexpr double kProbeHitRate = 0.25;

// What a sample of the distinct rows says: probe all first (many exist), or not; and whether
// the rows left to insert are likely all missing (all probed, or none of the sample found), so
// that a plain INSERT is worth trying before ON CONFLICT.
struct Sample {
    bool probe_all;
    bool all_missing;
};

Sample sample_existing(const Batch &b, GroupIds &ids)
{
    int64 ngroups = b.keys.ngroups;
    if (ngroups <= kProbeSample)
        return {true, true};
    int32 sample[kProbeSample];
    for (int64 i = 0; i < kProbeSample; i++)
        sample[i] = static_cast<int32>(i * ngroups / kProbeSample);
    probe_groups(b.target, b.values, b.keys, sample, kProbeSample, ids);
    int64 found = 0;
    for (int64 i = 0; i < kProbeSample; i++)
        found += ids.state[sample[i]] == IdState::found;
    bool probe_all = found >= kProbeHitRate * kProbeSample;
    return {probe_all, probe_all || found == 0};
}

// The distinct rows to probe before inserting: all still missing, or only the unprotected.
int64 collect_probe(const Batch &b, bool all, int32 *out)
{
    int64 n = 0;
    for (int64 g = 0; g < b.keys.ngroups; g++)
        if (b.ids.state[g] == IdState::missing &&
            (all || !b.keys.protected_row[b.keys.group_row[g]]))
            out[n++] = static_cast<int32>(g);
    return n;
}

int64 collect_missing(const GroupIds &ids, int64 ngroups, int32 *out)
{
    int64 n = 0;
    for (int64 g = 0; g < ngroups; g++)
        if (ids.state[g] == IdState::missing)
            out[n++] = static_cast<int32>(g);
    return n;
}

int compare_int64(const void *a, const void *b)
{
    int64 x = *static_cast<const int64 *>(a), y = *static_cast<const int64 *>(b);
    return (x > y) - (x < y);
}

// The probes read the table directly, which row-level security does not see. When policies
// apply, ask SQL whether the user may see every row the probes found.
void check_row_security(const Batch &b)
{
    const TargetTable &t = b.target;
    int64 n = 0;
    int64 *found = work_array<int64>(b.keys.ngroups);
    for (int64 g = 0; g < b.keys.ngroups; g++)
        if (b.ids.state[g] == IdState::found)
            found[n++] = b.ids.id[g];
    if (n == 0)
        return;
    qsort(found, n, sizeof(int64), compare_int64);
    int64 distinct = 0;
    for (int64 i = 0; i < n; i++)
        if (i == 0 || found[i] != found[i - 1])
            found[distinct++] = found[i];

    Datum *elems = work_array<Datum>(distinct);
    for (int64 i = 0; i < distinct; i++)
        elems[i] = Int64GetDatum(found[i]);
    Datum param = PointerGetDatum(construct_array(elems, static_cast<int>(distinct), INT8OID,
                                                  sizeof(int64), true, TYPALIGN_DOUBLE));
    Oid param_type = INT8ARRAYOID;
    char *sql = psprintf(
        "SELECT pg_catalog.count(*) FROM %s WHERE %s OPERATOR(pg_catalog.=) ANY($1)", t.name,
        quote_identifier(get_attname(RelationGetRelid(t.rel), t.id_attnum, false)));
    int pinned = pin_search_path();
    MemoryContext caller = CurrentMemoryContext; // SPI returns in its own context
    // Not read-only: a fresh snapshot, as the probes took, sees the rows a concurrent session
    // committed while this call waited for it.
    if (SPI_execute_with_args(sql, 1, &param_type, &param, nullptr, false, 1) != SPI_OK_SELECT)
        elog(ERROR, "idsync row security check failed");
    MemoryContextSwitchTo(caller);
    unpin_search_path(pinned);
    bool isnull;
    int64 visible =
        DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    if (visible != distinct)
        ereport(ERROR,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                 errmsg("rows matching the input are hidden by row-level security on \"%s\"",
                        RelationGetRelationName(t.rel)),
                 errdetail_plural("%lld existing row is hidden.", "%lld existing rows are hidden.",
                                  static_cast<unsigned long>(distinct - visible),
                                  static_cast<long long>(distinct - visible))));
}

} // namespace

Datum required_arg(FunctionCallInfo fcinfo, int arg, const char *name)
{
    if (PG_ARGISNULL(arg))
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", name)));
    return PG_GETARG_DATUM(arg);
}

void begin_batch(Batch &b, Oid target, ArrayType *columns, int nkey)
{
    b.caller = CurrentMemoryContext;
    b.work = AllocSetContextCreate(b.caller, "idsync batch", ALLOCSET_DEFAULT_SIZES);
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    MemoryContextSwitchTo(b.work);
    b.estate = CreateExecutorState();
    b.target = nkey > 0 ? open_merge_target(target, columns, nkey) : open_target(target, columns);
}

void resolve_batch(Batch &b)
{
    const TargetTable &t = b.target;
    const ColumnValues &v = b.values;
    b.keys = group_rows(t, v);
    const RowKeys &k = b.keys;
    int64 ngroups = k.ngroups;
    b.ids.id = work_array0<int64>(ngroups);
    b.ids.state = work_array0<IdState>(ngroups);
    if (ngroups == 0)
        return;

    lock_unprotected_rows(t, k, v.nrows);
    int32 *pending = work_array<int32>(ngroups);
    Sample sample = sample_existing(b, b.ids);
    probe_groups(t, v, k, pending, collect_probe(b, sample.probe_all, pending), b.ids);
    if (IsolationUsesXactSnapshot())
        check_unprotected_visible(t, v, k, b.ids);

    MissingInsert insert = {nullptr};
    for (int round = 0;; round++) {
        int64 missing = collect_missing(b.ids, ngroups, pending);
        if (missing == 0)
            break;
        if (round == kMaxRounds)
            ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                            errmsg("could not settle the ids of %lld rows of \"%s\"",
                                   static_cast<long long>(missing), RelationGetRelationName(t.rel)),
                            errdetail("Concurrent transactions kept deleting them."),
                            errhint("Retry the transaction.")));
        if (insert.plan == nullptr)
            insert = prepare_missing_insert(t);
        // A merge's plain INSERT fails into the merge's own subtransaction (merge_rows.hpp);
        // insert_missing's runs in one of its own (plain_attempt.hpp).
        bool likely_missing = round == 0 && sample.all_missing;
        if (likely_missing && !b.merge && plain_attempt_allowed(t.rel) &&
            try_plain_insert(insert, t, v, k, pending, missing, b.ids))
            continue; // all in: the next round finds nothing missing
        insert_groups(insert, t, v, k, pending, missing, b.ids, likely_missing && b.plain_first);
        probe_groups(t, v, k, pending, collect_missing(b.ids, ngroups, pending), b.ids);
    }
    if (t.row_security)
        check_row_security(b);
}

void end_batch(Batch &b)
{
    FreeExecutorState(b.estate);
    close_target(b.target);
    SPI_finish(); // back in b.caller
    MemoryContextDelete(b.work);
}

} // namespace idsync

using namespace idsync;

// idsync.insert_missing(target regclass, columns text[], VARIADIC values "any")
//   RETURNS TABLE (ord bigint, id bigint, inserted boolean)
IDSYNC_FUNCTION(idsync_insert_missing)
{
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    Batch b = {};
    begin_batch(b, DatumGetObjectId(required_arg(fcinfo, 0, "target")),
                DatumGetArrayTypeP(required_arg(fcinfo, 1, "columns")));
    b.values = read_value_arrays(fcinfo, 2, b.target, b.estate);
    resolve_batch(b);
    for (int64 row = 0; row < b.values.nrows; row++) {
        int32 group = b.keys.row_group[row];
        Datum out[3] = {Int64GetDatum(row + 1), Int64GetDatum(b.ids.id[group]),
                        BoolGetDatum(b.ids.state[group] == IdState::inserted)};
        bool nulls[3] = {false, false, false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, nulls);
    }
    end_batch(b);
    return Datum(0);
}
