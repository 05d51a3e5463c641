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

// "OPERATOR(schema.name)" for an operator oid.
char *qualified_operator(Oid opno)
{
    HeapTuple tuple = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
    if (!HeapTupleIsValid(tuple))
        elog(ERROR, "cache lookup failed for operator %u", opno);
    Form_pg_operator op = reinterpret_cast<Form_pg_operator>(GETSTRUCT(tuple));
    char *name = psprintf("OPERATOR(%s.%s)", quote_identifier(get_namespace_name(op->oprnamespace)),
                          NameStr(op->oprname));
    ReleaseSysCache(tuple);
    return name;
}

// The staging table must be a relation rows can be read from, and the caller must be allowed to
// read some of it: checked before it is locked.
void check_staging_access(Oid staging)
{
    char kind = get_rel_relkind(staging);
    if (kind == '\0')
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("relation with OID %u does not exist", staging)));
    if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE && kind != RELKIND_VIEW &&
        kind != RELKIND_MATVIEW && kind != RELKIND_FOREIGN_TABLE)
        ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                        errmsg("\"%s\" cannot be read as a staging table", get_rel_name(staging)),
                        errdetail("A staging table is a table, view or materialized view.")));
    if (pg_class_aclcheck(staging, GetUserId(), ACL_SELECT) != ACLCHECK_OK &&
        pg_attribute_aclcheck_all(staging, GetUserId(), ACL_SELECT, ACLMASK_ANY) != ACLCHECK_OK)
        aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(kind), get_rel_name(staging));
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
    Oid index = RelationGetRelid(t.index);
    for (int k = 0; k < t.nkeys; k++) {
        char *key =
            TextDatumGetCString(DirectFunctionCall3(pg_get_indexdef_ext, ObjectIdGetDatum(index),
                                                    Int32GetDatum(k + 1), BoolGetDatum(false)));
        int16 option = t.index->rd_indoption[k];
        Oid opno = get_opfamily_member(
            t.index->rd_opfamily[k], t.index->rd_opcintype[k], t.index->rd_opcintype[k],
            (option & INDOPTION_DESC) ? BTGreaterStrategyNumber : BTLessStrategyNumber);
        appendStringInfo(&sql, "(%s)", key);
        if (OidIsValid(t.index->rd_indcollation[k]))
            appendStringInfo(&sql, " COLLATE %s",
                             generate_collation_name(t.index->rd_indcollation[k]));
        appendStringInfo(&sql, " USING %s NULLS %s, ", qualified_operator(opno),
                         (option & INDOPTION_NULLS_FIRST) ? "FIRST" : "LAST");
    }
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
