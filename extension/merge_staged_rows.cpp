// idsync._merge_staged_rows: merge_staged (the bulk path) into an insert_only table on the
// insert-missing engine. The staging table is read in the key index's order in chunks of 50,000
// rows, and each chunk goes through the engine as a batch of items does (merge_new_rows.cpp):
// references resolved to local ids, rows this node lacks inserted in key order (a plain INSERT
// first when they are known missing), the others left as they are. The global key order keeps
// two bulk merges into one table (two peers loading a new node) from deadlocking.
//
// Not taken (NULL; the SQL merge does it): what merge_new_rows leaves, staging columns whose
// types are not the target's (the SQL merge casts them), and tables whose key holds a translated
// reference (the staging table cannot be read in the order of ids it does not hold yet). A
// chunk with a row that waits for a referenced row raises 23503, so that the caller undoes the
// merge and parks that row by the SQL merge.
#include "boundary.hpp"
#include "insert_missing.hpp"
#include "merge_rows.hpp"
#include "state_access.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

constexpr int64 kStagedChunk = 50000;
// Each plain INSERT attempt is a subtransaction with an xid of its own; past 64 of them in one
// transaction, PostgreSQL's per-backend cache of them overflows and every snapshot in the
// cluster gets slower. Later chunks use ON CONFLICT.
constexpr int kPlainChunks = 32;

// The staging table's column for each replicated column, of the target's type (jsonb for a
// translated reference); false when one is missing or of another type.
bool staging_fits(Relation staging, const ItemColumn *columns, int ncolumns, bool *has_origin)
{
    Oid relid = RelationGetRelid(staging);
    TupleDesc desc = RelationGetDescr(staging);
    for (int c = 0; c < ncolumns; c++) {
        AttrNumber attnum = get_attnum(relid, columns[c].name);
        if (attnum <= 0)
            return false;
        Oid type = TupleDescAttr(desc, attnum - 1)->atttypid;
        if (type != (columns[c].reference != nullptr ? JSONBOID : columns[c].type))
            return false;
    }
    AttrNumber origin = get_attnum(relid, "idsync_origin");
    *has_origin = origin > 0 && TupleDescAttr(desc, origin - 1)->atttypid == UUIDOID;
    return true;
}

// SELECT the replicated columns and the origin (the row's, else $1) ORDER BY the key index.
char *staged_rows_sql(const TargetTable &t, Relation staging, const ItemColumn *columns,
                      int ncolumns, bool has_origin)
{
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfoString(&sql, "SELECT ");
    for (int c = 0; c < ncolumns; c++)
        appendStringInfo(&sql, "s.%s, ", quote_identifier(columns[c].name));
    appendStringInfoString(&sql, has_origin ? "COALESCE(s.idsync_origin, $1)" : "$1");
    appendStringInfo(&sql, " FROM %s s ORDER BY ",
                     quote_qualified_identifier(get_namespace_name(RelationGetNamespace(staging)),
                                                RelationGetRelationName(staging)));
    append_key_order(&sql, t);
    return sql.data;
}

// The chunk's rows as column values (translated references as pointers to their keys).
ColumnValues chunk_values(SPITupleTable *tuples, int64 n, const ItemColumn *columns, int ncolumns)
{
    ColumnValues v = {n, work_array<Datum *>(ncolumns + 1), work_array<bool *>(ncolumns + 1)};
    for (int c = 0; c <= ncolumns; c++) {
        v.values[c] = work_array<Datum>(n);
        v.nulls[c] = work_array<bool>(n);
        for (int64 i = 0; i < n; i++) {
            Datum d = SPI_getbinval(tuples->vals[i], tuples->tupdesc, c + 1, &v.nulls[c][i]);
            if (c < ncolumns && columns[c].reference != nullptr && !v.nulls[c][i])
                d = PointerGetDatum(&DatumGetJsonbP(d)->root);
            v.values[c][i] = d;
        }
    }
    return v;
}

bool key_holds_reference(const ItemColumn *columns, int nkey)
{
    for (int c = 0; c < nkey; c++)
        if (columns[c].reference != nullptr)
            return true;
    return false;
}

} // namespace

} // namespace idsync

using namespace idsync;

// idsync._merge_staged_rows(target regclass, staging regclass, source uuid) RETURNS integer: how
// many rows were inserted, or NULL when the SQL merge takes the table (see the top).
IDSYNC_FUNCTION(idsync_merge_staged_rows)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    Oid staging_id = DatumGetObjectId(required_arg(fcinfo, 1, "staging"));
    const Registration *reg = engine_registration(relid, false);
    if (reg == nullptr)
        PG_RETURN_NULL();
    check_staging_access(staging_id);

    // The column types are read under a lock kept to the end of the transaction, so that they
    // cannot change before the rows are written.
    check_before_lock(relid, ACL_SELECT | ACL_INSERT);
    Relation rel = relation_open(relid, AccessShareLock);
    ItemColumn *columns = work_array0<ItemColumn>(RelationGetDescr(rel)->natts);
    int ncolumns = replicated_columns(rel, reg, columns);
    relation_close(rel, NoLock);
    if (ncolumns < reg->nkey || key_holds_reference(columns, reg->nkey)) {
        close_resolvers(columns, Max(ncolumns, 0));
        PG_RETURN_NULL();
    }
    Relation staging = relation_open(staging_id, AccessShareLock);
    bool has_origin;
    if (!staging_fits(staging, columns, ncolumns, &has_origin)) {
        relation_close(staging, AccessShareLock);
        close_resolvers(columns, ncolumns);
        PG_RETURN_NULL();
    }

    Batch b = {};
    begin_batch(b, relid, column_names(columns, ncolumns), reg->nkey);
    b.plain_first = true;
    Oid argtypes[1] = {UUIDOID};
    Datum args[1] = {PG_ARGISNULL(2) ? Datum(0) : PG_GETARG_DATUM(2)};
    char argnulls[1] = {PG_ARGISNULL(2) ? 'n' : ' '};
    int pinned = pin_search_path();
    Portal cursor = SPI_cursor_open_with_args(
        nullptr, staged_rows_sql(b.target, staging, columns, ncolumns, has_origin), 1, argtypes,
        args, argnulls, true, 0);
    unpin_search_path(pinned);
    MemoryContext per_chunk =
        AllocSetContextCreate(b.work, "idsync staged merge chunk", ALLOCSET_DEFAULT_SIZES);
    int64 inserted = 0;
    for (int chunk = 0;; chunk++) {
        if (chunk == kPlainChunks)
            b.plain_first = false;
        SPI_cursor_fetch(cursor, true, kStagedChunk);
        if (SPI_processed == 0)
            break;
        SPITupleTable *tuples = SPI_tuptable;
        MemoryContextSwitchTo(per_chunk);
        b.values = chunk_values(tuples, static_cast<int64>(SPI_processed), columns, ncolumns);
        if (!resolve_references(b.values, columns, ncolumns))
            ereport(ERROR, (errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
                            errmsg("a staged row of \"%s\" waits for a referenced row",
                                   RelationGetRelationName(b.target.rel))));
        resolve_batch(b);
        for (int64 g = 0; g < b.keys.ngroups; g++)
            inserted += b.ids.state[g] == IdState::inserted;
        SPI_freetuptable(tuples);
        MemoryContextSwitchTo(b.work);
        MemoryContextReset(per_chunk);
    }
    SPI_cursor_close(cursor);
    close_resolvers(columns, ncolumns);
    end_batch(b);
    relation_close(staging, NoLock);
    PG_RETURN_INT32(static_cast<int32>(Min(inserted, static_cast<int64>(PG_INT32_MAX))));
}
