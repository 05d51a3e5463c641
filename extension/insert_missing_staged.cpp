// idsync.insert_missing_staged: insert_missing for batches too big to pass as arrays. The rows
// come from a staging table (typically a temporary table filled by COPY) with an `ord` column.
//
// The staging rows are read with a cursor in the unique index's order, then by every given
// column, and resolved in chunks: memory stays bounded, every chunk inserts in index order and
// the chunks follow each other in that order, so concurrent staged loads cannot deadlock.
#include "boundary.hpp"
#include "column_values.hpp"
#include "insert_missing.hpp"
#include "state_access.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

constexpr int64 kStagedChunk = 50000;

// The staging table's given columns default to all its columns but ord.
ArrayType *staging_columns(Relation staging)
{
    TupleDesc desc = RelationGetDescr(staging);
    Datum *names = work_array<Datum>(desc->natts);
    int n = 0;
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (!att->attisdropped && strcmp(NameStr(att->attname), "ord") != 0)
            names[n++] = CStringGetTextDatum(NameStr(att->attname));
    }
    return construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT);
}

void check_staging(const TargetTable &t, Relation staging)
{
    Oid relid = RelationGetRelid(staging);
    AttrNumber ord = get_attnum(relid, "ord");
    if (ord <= 0 || !(TupleDescAttr(RelationGetDescr(staging), ord - 1)->atttypid == INT8OID ||
                      TupleDescAttr(RelationGetDescr(staging), ord - 1)->atttypid == INT4OID))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                        errmsg("staging table \"%s\" has no integer column \"ord\"",
                               RelationGetRelationName(staging)),
                        errhint("Add ord bigint GENERATED ALWAYS AS IDENTITY; COPY fills it.")));
    for (int c = 0; c < t.ncolumns; c++) {
        AttrNumber attnum = get_attnum(relid, t.columns[c]);
        if (attnum <= 0)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                            errmsg("column \"%s\" of staging table \"%s\" does not exist",
                                   t.columns[c], RelationGetRelationName(staging))));
        Oid type = TupleDescAttr(RelationGetDescr(staging), attnum - 1)->atttypid;
        if (type != t.types[c])
            ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                            errmsg("column \"%s\" of staging table \"%s\" has type %s, but the "
                                   "target column has type %s",
                                   t.columns[c], RelationGetRelationName(staging),
                                   format_type_be(type), format_type_be(t.types[c]))));
    }
}

// SELECT ord, columns FROM staging ORDER BY <the index's keys, in its order>, <every column>.
char *build_staged_sql(const TargetTable &t, Relation staging)
{
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfoString(&sql, "SELECT s.ord::pg_catalog.int8");
    for (int c = 0; c < t.ncolumns; c++)
        appendStringInfo(&sql, ", s.%s", quote_identifier(t.columns[c]));
    appendStringInfo(&sql, " FROM %s s ORDER BY ",
                     quote_qualified_identifier(get_namespace_name(RelationGetNamespace(staging)),
                                                RelationGetRelationName(staging)));
    append_key_order(&sql, t);
    appendStringInfoString(&sql, ", ");
    for (int c = 0; c < t.ncolumns; c++)
        appendStringInfo(&sql, "%ss.%s", c ? ", " : "", quote_identifier(t.columns[c]));
    return sql.data;
}

// The chunk's rows as column arrays, cast to the target's types (and typmods) as INSERT would.
ColumnValues chunk_values(const TargetTable &t, SPITupleTable *tuples, int64 n, EState *estate,
                          int64 *ords)
{
    ColumnValues v = {n, work_array<Datum *>(t.ncolumns), work_array<bool *>(t.ncolumns)};
    Datum *elems = work_array<Datum>(n);
    bool *nulls = work_array<bool>(n);
    bool isnull;
    for (int64 i = 0; i < n; i++)
        ords[i] = DatumGetInt64(SPI_getbinval(tuples->vals[i], tuples->tupdesc, 1, &isnull));
    for (int c = 0; c < t.ncolumns; c++) {
        for (int64 i = 0; i < n; i++)
            elems[i] = SPI_getbinval(tuples->vals[i], tuples->tupdesc, c + 2, &nulls[i]);
        Datum array = column_array(t, c, elems, nulls, n);
        int count;
        cast_column_array(array, get_array_type(t.types[c]), t, c, estate, &v.values[c],
                          &v.nulls[c], &count);
    }
    return v;
}

// The last distinct row of the previous chunk, which the next chunk may continue.
struct Carry {
    bool valid;
    Datum *values;
    bool *nulls;
    int64 id;
    bool inserted;
};

bool continues_carry(const Carry &carry, const TargetTable &t, const ColumnValues &v, int64 row)
{
    if (!carry.valid)
        return false;
    for (int c = 0; c < t.ncolumns; c++)
        if (ApplySortComparator(carry.values[c], carry.nulls[c], v.values[c][row], v.nulls[c][row],
                                &t.column_order[c]) != 0)
            return false;
    return true;
}

// Copies the chunk's last distinct row into `context`, which holds nothing else.
void keep_carry(Carry &carry, const Batch &b, MemoryContext context)
{
    const TargetTable &t = b.target;
    int64 last_group = b.keys.ngroups - 1;
    int32 row = b.keys.group_row[last_group];
    // A chunk that only continues the carry keeps the carry's inserted flag.
    carry.inserted = b.ids.state[last_group] == IdState::inserted ||
                     (carry.valid && carry.id == b.ids.id[last_group] && carry.inserted);
    carry.id = b.ids.id[last_group];
    carry.valid = true;
    MemoryContextReset(context);
    MemoryContext old = MemoryContextSwitchTo(context);
    carry.values = work_array<Datum>(t.ncolumns);
    carry.nulls = work_array<bool>(t.ncolumns);
    for (int c = 0; c < t.ncolumns; c++) {
        int16 typlen;
        bool byval;
        get_typlenbyval(t.types[c], &typlen, &byval);
        carry.nulls[c] = b.values.nulls[c][row];
        carry.values[c] =
            carry.nulls[c] ? Datum(0) : datumCopy(b.values.values[c][row], byval, typlen);
    }
    MemoryContextSwitchTo(old);
}

} // namespace

} // namespace idsync

using namespace idsync;

// idsync.insert_missing_staged(target regclass, staging regclass, columns text[] DEFAULT NULL)
//   RETURNS TABLE (ord bigint, id bigint, inserted boolean)
IDSYNC_FUNCTION(idsync_insert_missing_staged)
{
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    Oid target = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    Oid staging_id = DatumGetObjectId(required_arg(fcinfo, 1, "staging"));
    check_staging_access(staging_id);
    Relation staging = relation_open(staging_id, AccessShareLock);
    ArrayType *columns = PG_ARGISNULL(2) ? staging_columns(staging) : PG_GETARG_ARRAYTYPE_P(2);
    Batch b = {};
    begin_batch(b, target, columns);
    check_staging(b.target, staging);
    int pinned = pin_search_path();
    Portal cursor = SPI_cursor_open_with_args(nullptr, build_staged_sql(b.target, staging), 0,
                                              nullptr, nullptr, nullptr, true, 0);
    unpin_search_path(pinned);
    MemoryContext per_chunk =
        AllocSetContextCreate(b.work, "idsync staged chunk", ALLOCSET_DEFAULT_SIZES);
    MemoryContext carry_context =
        AllocSetContextCreate(b.work, "idsync staged carry", ALLOCSET_SMALL_SIZES);
    Carry carry = {};

    for (;;) {
        SPI_cursor_fetch(cursor, true, kStagedChunk);
        if (SPI_processed == 0)
            break;
        SPITupleTable *tuples = SPI_tuptable;
        int64 n = static_cast<int64>(SPI_processed);
        MemoryContextSwitchTo(per_chunk);
        EState *estate = CreateExecutorState();
        int64 *ords = work_array<int64>(n);
        b.values = chunk_values(b.target, tuples, n, estate, ords);
        resolve_batch(b);
        for (int64 row = 0; row < n; row++) {
            int32 group = b.keys.row_group[row];
            bool inserted =
                b.ids.state[group] == IdState::inserted ||
                (group == 0 && continues_carry(carry, b.target, b.values, row) && carry.inserted);
            Datum out[3] = {Int64GetDatum(ords[row]), Int64GetDatum(b.ids.id[group]),
                            BoolGetDatum(inserted)};
            bool nulls[3] = {false, false, false};
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, nulls);
        }
        keep_carry(carry, b, carry_context);
        FreeExecutorState(estate);
        SPI_freetuptable(tuples);
        MemoryContextSwitchTo(b.work);
        MemoryContextReset(per_chunk);
    }
    SPI_cursor_close(cursor);
    end_batch(b);
    relation_close(staging, NoLock);
    return Datum(0);
}
