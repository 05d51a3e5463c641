#include "missing_insert.hpp"

#include "kept_plans.hpp"
#include "state_access.hpp"

#include "work_array.hpp"

namespace idsync {

namespace {

// Rows per INSERT statement: bounds the parameter arrays and the RETURNING result in memory.
constexpr int64 kInsertChunk = 10000;

// " ON CONFLICT (<the unique index's keys>) [WHERE <its predicate>] DO NOTHING"
void append_on_conflict(StringInfo sql, const TargetTable &t)
{
    Oid relid = RelationGetRelid(t.rel);
    appendStringInfo(
        sql, " ON CONFLICT (%s)",
        pg_get_indexdef_columns_extended(RelationGetRelid(t.index), RULE_INDEXDEF_KEYS_ONLY));
    if (t.index_info->ii_Predicate != NIL) {
        Node *predicate = reinterpret_cast<Node *>(make_ands_explicit(t.index_info->ii_Predicate));
        appendStringInfo(sql, " WHERE %s",
                         deparse_expression(
                             predicate, deparse_context_for(RelationGetRelationName(t.rel), relid),
                             false, false));
    }
    appendStringInfoString(sql, " DO NOTHING");
}

char *build_insert_sql(const TargetTable &t, bool on_conflict)
{
    Oid relid = RelationGetRelid(t.rel);
    StringInfoData sql;
    initStringInfo(&sql);
    append_insert_from_arrays(&sql, t, "t");
    if (on_conflict)
        append_on_conflict(&sql, t);
    if (t.id_attnum == 0) // a merge into a table without an id column
        appendStringInfoString(&sql, " RETURNING NULL::pg_catalog.int8");
    else
        appendStringInfo(&sql, " RETURNING t.%s::pg_catalog.int8",
                         quote_identifier(get_attname(relid, t.id_attnum, false)));
    for (int c = 0; c < t.nmatched; c++)
        appendStringInfo(&sql, ", t.%s", quote_identifier(t.columns[c]));
    return sql.data;
}

// Deparsed with search_path pinned, so that the text names every object schema-qualified and a
// replan under another path (the plan cache replans when the path differs) finds the same ones;
// executed under the caller's path, so that the table's own triggers and defaults run as after
// an INSERT.
SPIPlanPtr prepare_insert(const TargetTable &t, bool on_conflict)
{
    Oid *argtypes = work_array<Oid>(t.ncolumns);
    for (int c = 0; c < t.ncolumns; c++)
        argtypes[c] = column_param_type(t, c);
    int pinned = pin_search_path(); // deparsing names objects as the pinned path sees them
    char *sql = build_insert_sql(t, on_conflict);
    unpin_search_path(pinned);
    return kept_plan(sql, t.ncolumns, argtypes);
}

// True when the returned tuple (id, columns...) equals input row `row` in every given column.
bool returned_row_matches(const TargetTable &t, const ColumnValues &v, int32 row, HeapTuple tuple,
                          TupleDesc desc)
{
    for (int c = 0; c < t.nmatched; c++) {
        bool isnull;
        Datum d = SPI_getbinval(tuple, desc, c + 2, &isnull);
        if (ApplySortComparator(v.values[c][row], v.nulls[c][row], d, isnull, &t.column_order[c]) !=
            0)
            return false;
    }
    return true;
}

void insert_chunk(SPIPlanPtr plan, const TargetTable &t, const ColumnValues &v, const RowKeys &k,
                  const int32 *groups, int64 count, GroupIds &ids)
{
    Datum *params = work_array<Datum>(t.ncolumns);
    for (int c = 0; c < t.ncolumns; c++)
        params[c] = group_column_array(t, v, k, c, groups, count);
    MemoryContext caller = CurrentMemoryContext; // SPI returns in its own context
    int ret = SPI_execute_plan(plan, params, nullptr, false, 0);
    MemoryContextSwitchTo(caller);
    if (ret != SPI_OK_INSERT_RETURNING)
        elog(ERROR, "idsync insert failed: %s", SPI_result_code_string(ret));

    // RETURNING lists inserted rows in insertion order, which is the order of `groups`; the
    // rows ON CONFLICT skipped are simply absent.
    SPITupleTable *result = SPI_tuptable;
    int64 next = 0;
    for (uint64 j = 0; j < SPI_processed; j++) {
        HeapTuple tuple = result->vals[j];
        while (next < count &&
               !returned_row_matches(t, v, k.group_row[groups[next]], tuple, result->tupdesc))
            next++;
        if (next == count)
            ereport(ERROR,
                    (errcode(ERRCODE_TRIGGERED_DATA_CHANGE_VIOLATION),
                     errmsg("a row inserted into \"%s\" does not match its input row",
                            RelationGetRelationName(t.rel)),
                     errdetail("A BEFORE INSERT trigger or a rule changed a given column.")));
        bool isnull;
        int32 group = groups[next++];
        ids.id[group] = DatumGetInt64(SPI_getbinval(tuple, result->tupdesc, 1, &isnull));
        ids.state[group] = IdState::inserted;
    }
    SPI_freetuptable(result);
    for (int c = 0; c < t.ncolumns; c++)
        pfree(DatumGetPointer(params[c]));
    pfree(params);
}

void insert_all(SPIPlanPtr plan, const TargetTable &t, const ColumnValues &v, const RowKeys &k,
                const int32 *groups, int64 count, GroupIds &ids)
{
    for (int64 start = 0; start < count; start += kInsertChunk)
        insert_chunk(plan, t, v, k, groups + start, Min(kInsertChunk, count - start), ids);
}

} // namespace

Datum group_column_array(const TargetTable &t, const ColumnValues &v, const RowKeys &k, int c,
                         const int32 *groups, int64 count)
{
    Datum *values = work_array<Datum>(count);
    bool *nulls = work_array<bool>(count);
    for (int64 i = 0; i < count; i++) {
        int32 row = k.group_row[groups[i]];
        values[i] = v.values[c][row];
        nulls[i] = v.nulls[c][row];
    }
    Datum array = column_array(t, c, values, nulls, count);
    pfree(values);
    pfree(nulls);
    return array;
}

void append_insert_from_arrays(StringInfo sql, const TargetTable &t, const char *alias)
{
    StringInfoData columns, typed;
    initStringInfo(&columns);
    initStringInfo(&typed);
    bool any_text = false;
    for (int c = 0; c < t.ncolumns; c++) {
        const char *column = quote_identifier(t.columns[c]);
        appendStringInfo(&columns, "%s%s", c ? ", " : "", column);
        // Values that travel as text are read back with the column type's input function.
        if (t.as_text[c])
            appendStringInfo(&typed, "%su.%s::%s AS %s", c ? ", " : "", column,
                             format_type_with_typemod(t.types[c], t.typmods[c]), column);
        else
            appendStringInfo(&typed, "%su.%s", c ? ", " : "", column);
        any_text |= t.as_text[c];
    }
    appendStringInfo(sql, "INSERT INTO %s AS %s (%s) SELECT * FROM ", t.name, alias, columns.data);
    if (any_text)
        appendStringInfo(sql, "(SELECT %s FROM ", typed.data);
    // The unnests in a select list, which runs them in step row by row; ROWS FROM would first
    // copy every row into a tuplestore. (The arrays have the same length.)
    appendStringInfoString(sql, "(SELECT ");
    for (int c = 0; c < t.ncolumns; c++)
        appendStringInfo(sql, "%spg_catalog.unnest($%d) AS %s", c ? ", " : "", c + 1,
                         quote_identifier(t.columns[c]));
    appendStringInfo(sql, ") AS %s", any_text ? "u" : "s");
    if (any_text)
        appendStringInfoString(sql, ") AS s");
    pfree(columns.data);
    pfree(typed.data);
}

MissingInsert prepare_missing_insert(const TargetTable &t)
{
    return MissingInsert{prepare_insert(t, true), nullptr};
}

void insert_groups(MissingInsert &insert, const TargetTable &t, const ColumnValues &v,
                   const RowKeys &k, const int32 *groups, int64 count, GroupIds &ids, bool plain)
{
    if (plain && insert.plain_plan == nullptr)
        insert.plain_plan = prepare_insert(t, false);
    insert_all(plain ? insert.plain_plan : insert.plan, t, v, k, groups, count, ids);
}

} // namespace idsync
