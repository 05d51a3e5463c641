#include "newest_rows.hpp"

#include "missing_insert.hpp"
#include "kept_plans.hpp"
#include "natural_hash.hpp"
#include "state_access.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

// Rows per statement, as for inserts.
constexpr int64 kUpsertChunk = 10000;

int column_index(const TargetTable &t, const char *name)
{
    for (int c = 0; c < t.ncolumns; c++)
        if (strcmp(t.columns[c], name) == 0)
            return c;
    elog(ERROR, "idsync: column \"%s\" is not among the merged columns", name);
    return -1;
}

// The row hash of input row `row`, as idsync._row_hash_expr computes it for a stored row (with
// references hashed as natural keys).
RowHash input_hash(const Batch &b, NaturalHash *hash, int64 row)
{
    TupleDesc desc = RelationGetDescr(b.target.rel);
    Datum *values = work_array0<Datum>(desc->natts);
    bool *nulls = work_array<bool>(desc->natts);
    memset(nulls, true, sizeof(bool) * desc->natts);
    for (int c = 0; c < b.target.ncolumns; c++) {
        values[b.target.attnums[c] - 1] = b.values.values[c][row];
        nulls[b.target.attnums[c] - 1] = b.values.nulls[c][row];
    }
    RowHash h = natural_row_hash(hash, values, nulls);
    pfree(values);
    pfree(nulls);
    return h;
}

// As uuids compare: h1, then h2, both unsigned.
int compare_hashes(RowHash a, RowHash b)
{
    if (a.h1 != b.h1)
        return a.h1 < b.h1 ? -1 : 1;
    return a.h2 < b.h2 ? -1 : a.h2 > b.h2;
}

// INSERT INTO t AS cur (columns) SELECT * FROM ROWS FROM (unnest($1), ...) AS s (columns)
// WHERE NOT EXISTS (a stored row of that key as new or newer) ON CONFLICT (key) DO UPDATE SET
// <non-key columns> = excluded.<column> WHERE (cur.version, hash of cur) < (excluded.version,
// hash of excluded) RETURNING whether the row was inserted. As _merge_statement: the NOT EXISTS
// keeps rows this node already has newer from ON CONFLICT, which would lock the stored row, run
// the BEFORE triggers and check the constraints of a row it then does not write; the ON
// CONFLICT WHERE settles what concurrent writers changed meanwhile.
char *build_upsert_sql(const TargetTable &t, const Registration *reg)
{
    const char *version = quote_identifier(reg->version_column);
    TupleDesc desc = RelationGetDescr(t.rel);
    StringInfoData sql;
    initStringInfo(&sql);
    append_insert_from_arrays(&sql, t, "cur");
    appendStringInfo(&sql, " WHERE NOT EXISTS (SELECT FROM %s old WHERE ", t.name);
    for (int c = 0; c < t.nmatched; c++) {
        const char *column = quote_identifier(t.columns[c]);
        bool not_null = TupleDescAttr(desc, t.attnums[c] - 1)->attnotnull;
        appendStringInfo(&sql,
                         not_null ? "old.%s = s.%s AND " : "old.%s IS NOT DISTINCT FROM s.%s AND ",
                         column, column);
    }
    appendStringInfo(&sql, "ROW(old.%s, %s) OPERATOR(pg_catalog.>=) ROW(s.%s, %s))", version,
                     hash_expr(t, reg, "old"), version, hash_expr(t, reg, "s"));
    appendStringInfo(
        &sql, " ON CONFLICT (%s) DO UPDATE SET ",
        pg_get_indexdef_columns_extended(RelationGetRelid(t.index), RULE_INDEXDEF_KEYS_ONLY));
    for (int c = t.nmatched; c < t.ncolumns; c++)
        appendStringInfo(&sql, "%s%s = excluded.%s", c > t.nmatched ? ", " : "",
                         quote_identifier(t.columns[c]), quote_identifier(t.columns[c]));
    appendStringInfo(&sql,
                     " WHERE ROW(cur.%s, %s) OPERATOR(pg_catalog.<) ROW(excluded.%s, %s) "
                     "RETURNING cur.xmax OPERATOR(pg_catalog.=) '0'::pg_catalog.xid",
                     version, hash_expr(t, reg, "cur"), version, hash_expr(t, reg, "excluded"));
    return sql.data;
}

} // namespace

char *hash_expr(const TargetTable &t, const Registration *reg, const char *alias)
{
    if (reg->nreferences > 0)
        return psprintf("idsync._natural_row_hash(%u::pg_catalog.oid::pg_catalog.regclass, %s)",
                        RelationGetRelid(t.rel), alias);
    return psprintf("idsync.row_hash(%s, $%d)", alias, t.ncolumns + 1);
}

RowHash incoming_hash(const Batch &b, const Registration *reg, NaturalHash **hash, int64 row)
{
    if (*hash == nullptr)
        *hash = natural_hash(b.target.rel, reg, CurrentMemoryContext);
    return input_hash(b, *hash, row);
}

void keep_newest(Batch &b, const Registration *reg)
{
    int version = column_index(b.target, reg->version_column);
    const ColumnValues &v = b.values;
    RowKeys &k = b.keys;
    NaturalHash *hash = nullptr;
    for (int64 row = 0; row < v.nrows; row++) {
        int32 g = k.row_group[row];
        int32 best = k.group_row[g];
        // A row without a version loses to one with (and its insert fails, parking it).
        if (best == row || v.nulls[version][row])
            continue;
        int cmp = 1;
        if (!v.nulls[version][best]) {
            int64 a = DatumGetInt64(v.values[version][row]);
            int64 w = DatumGetInt64(v.values[version][best]);
            cmp = (a > w) - (a < w);
        }
        if (cmp == 0) {
            if (hash == nullptr)
                hash = natural_hash(b.target.rel, reg, CurrentMemoryContext);
            cmp = compare_hashes(input_hash(b, hash, row), input_hash(b, hash, best));
        }
        if (cmp > 0)
            k.group_row[g] = static_cast<int32>(row);
    }
}

MergeCounts upsert_newest(Batch &b, const Registration *reg)
{
    const TargetTable &t = b.target;
    MergeCounts counts = {0, 0};
    int64 ngroups = b.keys.ngroups;
    if (ngroups == 0)
        return counts;
    Oid *argtypes = work_array<Oid>(t.ncolumns + 1);
    for (int c = 0; c < t.ncolumns; c++)
        argtypes[c] = column_param_type(t, c);
    argtypes[t.ncolumns] = TEXTARRAYOID;
    // Deparsed with search_path pinned (every object schema-qualified), run as the caller.
    int pinned = pin_search_path(); // deparsing names objects as the pinned path sees them
    char *sql = build_upsert_sql(t, reg);
    unpin_search_path(pinned);
    SPIPlanPtr plan = kept_plan(sql, t.ncolumns + 1, argtypes);

    int32 *groups = work_array<int32>(ngroups);
    for (int64 g = 0; g < ngroups; g++)
        groups[g] = static_cast<int32>(g); // groups are numbered in the key index's order
    Datum *params = work_array<Datum>(t.ncolumns + 1);
    Datum *locals = work_array<Datum>(reg->nlocal);
    for (int i = 0; i < reg->nlocal; i++)
        locals[i] = CStringGetTextDatum(reg->local_columns[i]);
    params[t.ncolumns] =
        PointerGetDatum(construct_array(locals, reg->nlocal, TEXTOID, -1, false, TYPALIGN_INT));
    for (int64 start = 0; start < ngroups; start += kUpsertChunk) {
        int64 count = Min(kUpsertChunk, ngroups - start);
        for (int c = 0; c < t.ncolumns; c++)
            params[c] = group_column_array(t, b.values, b.keys, c, groups + start, count);
        MemoryContext caller = CurrentMemoryContext; // SPI returns in its own context
        int ret = SPI_execute_plan(plan, params, nullptr, false, 0);
        MemoryContextSwitchTo(caller);
        if (ret != SPI_OK_INSERT_RETURNING)
            elog(ERROR, "idsync upsert failed: %s", SPI_result_code_string(ret));
        for (uint64 j = 0; j < SPI_processed; j++) {
            bool isnull;
            bool inserted = DatumGetBool(
                SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1, &isnull));
            (inserted ? counts.inserted : counts.updated)++;
        }
        SPI_freetuptable(SPI_tuptable);
        for (int c = 0; c < t.ncolumns; c++)
            pfree(DatumGetPointer(params[c]));
    }
    return counts;
}

} // namespace idsync
