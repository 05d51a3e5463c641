// idsync._merge_staged_rows: merge_staged (the bulk path) on the insert-missing engine
// (merge_rows.hpp). The staging table is read in the key index's order in chunks of 50,000 rows,
// and each chunk is merged as a batch of items is: references resolved, waiting rows parked,
// the rest written in key order. The global key order keeps two bulk merges into one table (two
// peers loading a new node) from deadlocking. When the key holds a translated reference, or a
// key column is staged with another type, the staging table cannot be read in the index's order
// and is merged as one chunk.
//
// The chunks are first written as they come, in one subtransaction. When the table refuses a
// row, that is rolled back and the chunks are merged again by halves (merge_rows.hpp), so that
// a load of clean rows pays for one attempt only.
#include "boundary.hpp"
#include "merge_rows.hpp"
#include "state_access.hpp"
#include "subtransaction.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

constexpr int64 kStagedChunk = 50000;

// SELECT the replicated columns (cast to the target's types where the staging table has others;
// references stay jsonb) and the origin (the row's, else $1), in the key index's order when
// `ordered`.
char *staged_rows_sql(const Merge &m, Relation staging, bool *ordered)
{
    Oid relid = RelationGetRelid(staging);
    TupleDesc desc = RelationGetDescr(staging);
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfoString(&sql, "SELECT ");
    *ordered = true;
    for (int c = 0; c < m.ncolumns; c++) {
        const ItemColumn &column = m.columns[c];
        AttrNumber attnum = get_attnum(relid, column.name);
        if (attnum <= 0)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                            errmsg("staging table %s lacks column %s", relid_name(relid),
                                   quote_identifier(column.name))));
        Oid staged = TupleDescAttr(desc, attnum - 1)->atttypid;
        Oid wanted = column.reference != nullptr ? JSONBOID : column.type;
        if (staged == wanted) {
            appendStringInfo(&sql, "s.%s, ", quote_identifier(column.name));
        } else {
            appendStringInfo(&sql, "s.%s::%s, ", quote_identifier(column.name),
                             format_type_with_typemod(column.type, column.typmod));
        }
        if (c < m.reg->nkey && (staged != wanted || column.reference != nullptr))
            *ordered = false;
    }
    AttrNumber origin = get_attnum(relid, "idsync_origin");
    bool has_origin = origin > 0 && TupleDescAttr(desc, origin - 1)->atttypid == UUIDOID;
    appendStringInfoString(&sql, has_origin ? "COALESCE(s.idsync_origin, $1)" : "$1");
    appendStringInfo(&sql, " FROM %s s", relid_name(relid));
    if (*ordered) {
        appendStringInfoString(&sql, " ORDER BY ");
        append_key_order(&sql, m.batch.target);
    }
    return sql.data;
}

// The chunk's rows (translated references as their natural keys).
MergeRows chunk_rows(const Merge &m, SPITupleTable *tuples, int64 n)
{
    MergeRows rows = new_merge_rows(m, n);
    rows.values.nrows = n;
    for (int c = 0; c <= m.ncolumns; c++)
        for (int64 i = 0; i < n; i++) {
            bool isnull;
            Datum d = SPI_getbinval(tuples->vals[i], tuples->tupdesc, c + 1, &isnull);
            if (c < m.ncolumns && m.columns[c].reference != nullptr) {
                rows.keys[c][i] = isnull ? nullptr : &DatumGetJsonbP(d)->root;
                continue;
            }
            rows.values.values[c][i] = d;
            rows.values.nulls[c][i] = isnull;
        }
    return rows;
}

struct StagedCall {
    Merge *m;
    const char *sql;
    bool ordered;
    bool by_halves;
    int64 received;
};

// Merges the staged rows, chunk by chunk.
void run_staged(void *arg)
{
    auto *call = static_cast<StagedCall *>(arg);
    Merge &m = *call->m;
    Oid argtypes[1] = {UUIDOID};
    Datum args[1] = {m.source};
    char argnulls[1] = {m.source_null ? 'n' : ' '};
    int pinned = pin_search_path();
    Portal cursor =
        SPI_cursor_open_with_args(nullptr, call->sql, 1, argtypes, args, argnulls, true, 0);
    unpin_search_path(pinned);
    MemoryContext work = CurrentMemoryContext;
    MemoryContext per_chunk =
        AllocSetContextCreate(work, "idsync staged merge chunk", ALLOCSET_DEFAULT_SIZES);
    call->received = 0;
    for (;;) {
        SPI_cursor_fetch(cursor, true, call->ordered ? kStagedChunk : FETCH_ALL);
        if (SPI_processed == 0)
            break;
        call->received += static_cast<int64>(SPI_processed);
        SPITupleTable *tuples = SPI_tuptable;
        MemoryContextSwitchTo(per_chunk);
        MergeRows rows = chunk_rows(m, tuples, static_cast<int64>(SPI_processed));
        settle_references(m, rows);
        write_rows(m, rows, call->by_halves);
        flush_parked(m);
        SPI_freetuptable(tuples);
        MemoryContextSwitchTo(work);
        MemoryContextReset(per_chunk);
    }
    SPI_cursor_close(cursor);
    MemoryContextDelete(per_chunk);
}

// What a rolled-back pass had counted and set aside.
void forget_progress(Merge &m)
{
    m.counts = {0, 0};
    m.rejected = 0;
    m.parked = {nullptr, 0};
}

} // namespace

void check_staging(Oid relid, Oid staging)
{
    check_staging_access(staging);
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    Relation rel = relation_open(relid, AccessShareLock);
    TupleDesc desc = RelationGetDescr(rel);
    StringInfoData missing, not_jsonb;
    initStringInfo(&missing);
    initStringInfo(&not_jsonb);
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        const char *name = NameStr(att->attname);
        if (att->attisdropped || registered_name_among(name, reg->local_columns, reg->nlocal))
            continue;
        AttrNumber staged = get_attnum(staging, name);
        if (staged <= 0) {
            appendStringInfo(&missing, "%s%s", missing.len ? ", " : "", quote_identifier(name));
        } else if (registered_name_among(name, reg->reference_columns, reg->nreferences) &&
                   get_atttype(staging, staged) != JSONBOID) {
            appendStringInfo(&not_jsonb, "%s%s", not_jsonb.len ? ", " : "", quote_identifier(name));
        }
    }
    relation_close(rel, NoLock);
    if (missing.len > 0)
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_COLUMN),
                 errmsg("staging table %s lacks column %s", relid_name(staging), missing.data)));
    if (not_jsonb.len > 0)
        ereport(ERROR,
                (errcode(ERRCODE_DATATYPE_MISMATCH),
                 errmsg("column %s of staging table %s must be jsonb", not_jsonb.data,
                        relid_name(staging)),
                 errdetail("A reference to a local id travels as the natural key of the "
                           "referenced row."),
                 errhint("Create the staging table with idsync.create_staging() and fill it from "
                         "idsync.bulk_query() on the sender.")));
}

MergeResult merge_staging_table(Oid relid, Oid staging_id, Datum source, bool source_null)
{
    check_staging_access(staging_id);
    Merge m;
    begin_merge(m, relid, source, source_null);
    // ON CONFLICT throughout: with plain INSERTs (and a cursor open on the staging table), the
    // three-node demo's concurrent bulk merges crashed backends (memory corrupted; not found
    // yet). Merges of items keep the plain INSERT.
    m.batch.plain_first = false;
    Relation staging = relation_open(staging_id, AccessShareLock);
    StagedCall call = {&m, nullptr, true, false, 0};
    call.sql = staged_rows_sql(m, staging, &call.ordered);
    ErrorData *error = try_subtransaction(run_staged, &call, row_error);
    if (error != nullptr && error->sqlerrcode == ERRCODE_UNIQUE_VIOLATION && m.batch.plain_first) {
        // The plain INSERT met a row after all (a concurrent merge): ON CONFLICT this time.
        FreeErrorData(error);
        forget_progress(m);
        error = try_subtransaction(run_staged, &call, row_error);
    }
    if (error != nullptr) {
        FreeErrorData(error);
        forget_progress(m);
        call.by_halves = true;
        run_staged(&call);
    }
    relation_close(staging, NoLock);
    end_merge(m);
    return {call.received, m.counts.inserted, m.counts.updated, m.rejected};
}

} // namespace idsync

using namespace idsync;

// idsync._merge_staged_rows(target regclass, staging regclass, source uuid, OUT inserted
// integer, OUT updated integer, OUT rejected integer): the merge itself, without the checks and
// the sync point of merge_staged (for tests).
IDSYNC_FUNCTION(idsync_merge_staged_rows)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    Oid staging = DatumGetObjectId(required_arg(fcinfo, 1, "staging"));
    MergeResult r = merge_staging_table(
        relid, staging, PG_ARGISNULL(2) ? Datum(0) : PG_GETARG_DATUM(2), PG_ARGISNULL(2));
    return merge_counts_record(fcinfo, r);
}
