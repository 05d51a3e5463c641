#include "conflicts.hpp"

#include "boundary.hpp"
#include "column_values.hpp"
#include "insert_missing.hpp"
#include "kept_plans.hpp"
#include "missing_insert.hpp"
#include "state_access.hpp"
#include "target_table.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

const char *kind_name(ConflictKind kind)
{
    switch (kind) {
    case ConflictKind::row_lost_to_row:
        return "row lost to row";
    case ConflictKind::row_lost_to_delete:
        return "row lost to delete";
    case ConflictKind::delete_lost_to_row:
        return "delete lost to row";
    }
    return "row lost to row";
}

int merge_column(const Merge &m, const char *name)
{
    for (int c = 0; c < m.ncolumns; c++)
        if (strcmp(m.columns[c].name, name) == 0)
            return c;
    return -1;
}

} // namespace

void record_conflict(Merge &m, const MergeRows &rows, int64 row, ConflictKind kind,
                     int64 won_version, const pg_uuid_t *won_origin)
{
    if (m.key == nullptr)
        m.key = key_plan(m.relid, m.batch.caller);
    Jsonb *item = row_item(m, rows, row);
    int vc = merge_column(m, m.reg->version_column);
    bool no_version = vc < 0 || rows.values.nulls[vc][row];
    bool no_origin = rows.values.nulls[m.ncolumns][row];
    Oid types[8] = {OIDOID, JSONBOID, JSONBOID, INT8OID, UUIDOID, INT8OID, UUIDOID, TEXTOID};
    Datum values[8] = {ObjectIdGetDatum(m.relid),
                       JsonbPGetDatum(key_json_of_item(m.key, &item->root)),
                       JsonbPGetDatum(item),
                       no_version ? Datum(0) : rows.values.values[vc][row],
                       no_origin ? Datum(0) : rows.values.values[m.ncolumns][row],
                       Int64GetDatum(won_version),
                       won_origin != nullptr ? UUIDPGetDatum(const_cast<pg_uuid_t *>(won_origin))
                                             : Datum(0),
                       CStringGetTextDatum(kind_name(kind))};
    char nulls[9] = "        ";
    nulls[3] = no_version ? 'n' : ' ';
    nulls[4] = no_origin ? 'n' : ' ';
    nulls[6] = won_origin == nullptr ? 'n' : ' ';
    exec_as_owner("INSERT INTO idsync.conflicts (relid, key, lost, lost_version, lost_origin, "
                  "won_version, won_origin, kind) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                  8, types, values, nulls);
    m.conflicts++;
}

void record_lost_rows(Merge &m, const MergeRows &rows, const int32 *live, Batch &b)
{
    const TargetTable &t = b.target;
    const Registration *reg = m.reg;
    int64 ngroups = b.keys.ngroups;
    int vc = merge_column(m, reg->version_column);
    if (ngroups == 0 || vc < 0)
        return;
    // The stored row of each group's key that is as new or newer than the group's row:
    // SELECT s.i, version, origin, hash FROM ROWS FROM (unnest($1), <keys>) s JOIN t ON key.
    TupleDesc desc = RelationGetDescr(t.rel);
    StringInfoData sql, unnests, names, match;
    initStringInfo(&sql);
    initStringInfo(&unnests);
    initStringInfo(&names);
    initStringInfo(&match);
    Oid *types = work_array<Oid>(t.nmatched + 3);
    types[0] = INT4ARRAYOID;
    for (int c = 0; c < t.nmatched; c++) {
        types[c + 1] = column_param_type(t, c);
        const char *column = quote_identifier(t.columns[c]);
        appendStringInfo(&unnests, ", pg_catalog.unnest($%d)", c + 2);
        appendStringInfo(&names, ", k%d", c + 1);
        bool not_null = TupleDescAttr(desc, t.attnums[c] - 1)->attnotnull;
        TypeCacheEntry *type = lookup_type_cache(t.types[c], TYPECACHE_EQ_OPR);
        // Values that travel as text (arrays, composites) are cast back to the column's type.
        char *value = t.as_text[c] ? psprintf("s.k%d::%s", c + 1,
                                              format_type_with_typemod(t.types[c], t.typmods[c]))
                                   : psprintf("s.k%d", c + 1);
        if (not_null && OidIsValid(type->eq_opr))
            appendStringInfo(&match, " AND t.%s %s %s", column, qualified_operator(type->eq_opr),
                             value);
        else
            appendStringInfo(&match, " AND t.%s IS NOT DISTINCT FROM %s", column, value);
    }
    int versions_arg = t.nmatched + 2;
    types[versions_arg - 1] = INT8ARRAYOID;
    types[t.ncolumns] = TEXTARRAYOID; // hash_expr's $<ncolumns + 1>: the local columns
    int nargs = Max(versions_arg, t.ncolumns + 1);
    for (int a = versions_arg; a < t.ncolumns; a++)
        types[a] = INT4OID; // unused, but typed
    appendStringInfo(&sql,
                     "SELECT s.i, t.%s, t.idsync_origin, %s FROM ROWS FROM "
                     "(pg_catalog.unnest($1)%s, pg_catalog.unnest($%d)) AS s (i%s, v) JOIN %s t "
                     "ON true%s WHERE t.%s OPERATOR(pg_catalog.>=) s.v",
                     quote_identifier(reg->version_column), hash_expr(t, reg, "t"), unnests.data,
                     versions_arg, names.data, t.name, match.data,
                     quote_identifier(reg->version_column));
    // Parameters: group numbers, key columns, versions, then the local columns' names.
    Datum *params = work_array0<Datum>(nargs);
    char *param_nulls = static_cast<char *>(palloc(nargs + 1));
    memset(param_nulls, 'n', nargs);
    param_nulls[nargs] = '\0';
    int32 *groups = work_array<int32>(ngroups);
    Datum *numbers = work_array<Datum>(ngroups);
    Datum *versions = work_array<Datum>(ngroups);
    bool *version_nulls = work_array<bool>(ngroups);
    for (int64 g = 0; g < ngroups; g++) {
        groups[g] = static_cast<int32>(g);
        numbers[g] = Int32GetDatum(static_cast<int32>(g));
        int32 row = b.keys.group_row[g];
        version_nulls[g] = b.values.nulls[vc][row];
        versions[g] = b.values.values[vc][row];
    }
    params[0] = PointerGetDatum(construct_array(numbers, static_cast<int>(ngroups), INT4OID,
                                                sizeof(int32), true, TYPALIGN_INT));
    param_nulls[0] = ' ';
    for (int c = 0; c < t.nmatched; c++) {
        params[c + 1] = group_column_array(t, b.values, b.keys, c, groups, ngroups);
        param_nulls[c + 1] = ' ';
    }
    int dims[1] = {static_cast<int>(ngroups)};
    int lbs[1] = {1};
    params[versions_arg - 1] =
        PointerGetDatum(construct_md_array(versions, version_nulls, 1, dims, lbs, INT8OID,
                                           sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
    param_nulls[versions_arg - 1] = ' ';
    Datum *locals = work_array<Datum>(Max(reg->nlocal, 1));
    for (int i = 0; i < reg->nlocal; i++)
        locals[i] = CStringGetTextDatum(reg->local_columns[i]);
    params[t.ncolumns] =
        PointerGetDatum(construct_array(locals, reg->nlocal, TEXTOID, -1, false, TYPALIGN_INT));
    param_nulls[t.ncolumns] = ' ';

    int pinned = pin_search_path();
    SPIPlanPtr plan = kept_plan(sql.data, nargs, types);
    unpin_search_path(pinned);
    MemoryContext caller = CurrentMemoryContext; // SPI returns in its own context
    if (SPI_execute_plan(plan, params, param_nulls, false, 0) != SPI_OK_SELECT)
        elog(ERROR, "idsync: reading the stored rows a merge meets failed");
    MemoryContextSwitchTo(caller);
    SPITupleTable *result = SPI_tuptable;
    uint64 found = SPI_processed;
    NaturalHash *hash = nullptr;
    for (uint64 r = 0; r < found; r++) {
        bool isnull, origin_null, hash_null;
        int32 g = DatumGetInt32(SPI_getbinval(result->vals[r], result->tupdesc, 1, &isnull));
        int64 stored = DatumGetInt64(SPI_getbinval(result->vals[r], result->tupdesc, 2, &isnull));
        Datum origin = SPI_getbinval(result->vals[r], result->tupdesc, 3, &origin_null);
        Datum stored_hash = SPI_getbinval(result->vals[r], result->tupdesc, 4, &hash_null);
        int32 row = b.keys.group_row[g];
        if (!b.values.nulls[vc][row] && stored == DatumGetInt64(b.values.values[vc][row])) {
            // As new: the same row, or a tie the larger row hash wins.
            RowHash mine = incoming_hash(b, reg, &hash, row);
            RowHash theirs = hash_null ? RowHash{0, 0} : hash_of_uuid(DatumGetUUIDP(stored_hash));
            if (theirs.h1 < mine.h1 || (theirs.h1 == mine.h1 && theirs.h2 <= mine.h2))
                continue;
        }
        pg_uuid_t won;
        if (!origin_null)
            won = *DatumGetUUIDP(origin);
        record_conflict(m, rows, live[row], ConflictKind::row_lost_to_row, stored,
                        origin_null ? nullptr : &won);
    }
    SPI_freetuptable(result);
}

void trim_conflicts(Merge &m)
{
    if (m.conflicts == 0 || m.reg->conflicts_kept <= 0)
        return;
    Oid types[2] = {OIDOID, INT4OID};
    Datum values[2] = {ObjectIdGetDatum(m.relid), Int32GetDatum(m.reg->conflicts_kept)};
    exec_as_owner("DELETE FROM idsync.conflicts c WHERE c.relid OPERATOR(pg_catalog.=) $1 AND "
                  "c.conflict_id OPERATOR(pg_catalog.<=) (SELECT k.conflict_id FROM "
                  "idsync.conflicts k WHERE k.relid OPERATOR(pg_catalog.=) $1 ORDER BY "
                  "k.conflict_id DESC OFFSET $2 LIMIT 1)",
                  2, types, values, nullptr);
    m.conflicts = 0;
}

} // namespace idsync

using namespace idsync;

// idsync.record_conflicts(target regclass, keep integer DEFAULT 10000): from now on, merges
// into lww table `target` keep the newest `keep` versions that lost in idsync.conflicts; NULL
// stops recording and forgets the records. Administrators who own the table.
IDSYNC_FUNCTION(idsync_record_conflicts)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    require_reclaim_rights(relid);
    if (registration_mode(relid) != kLww)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("table %s is replicated as insert_only, which has no conflicts",
                               relid_name(relid)),
                        errhint("Conflict records are for lww tables.")));
    if (!PG_ARGISNULL(1) && PG_GETARG_INT32(1) < 1)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("keep must be at least 1, or NULL to stop recording conflicts")));
    Oid types[2] = {OIDOID, INT4OID};
    Datum values[2] = {ObjectIdGetDatum(relid), PG_ARGISNULL(1) ? Datum(0) : PG_GETARG_DATUM(1)};
    char nulls[3] = {' ', PG_ARGISNULL(1) ? 'n' : ' ', '\0'};
    exec_as_owner("UPDATE idsync.tables t SET conflicts_kept = $2 WHERE t.relid::pg_catalog.oid "
                  "OPERATOR(pg_catalog.=) $1",
                  2, types, values, nulls);
    if (PG_ARGISNULL(1))
        exec_as_owner("DELETE FROM idsync.conflicts c WHERE c.relid OPERATOR(pg_catalog.=) $1", 1,
                      types, values, nullptr);
    registration_changed(relid);
    PG_RETURN_VOID();
}
