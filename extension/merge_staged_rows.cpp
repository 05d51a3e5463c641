// idsync._merge_staged_rows: merge_staged (the bulk path) on the insert-missing engine
// (merge_rows.hpp). The staging table is read in the key index's order in chunks of 50,000 rows
// (larger past 800,000), and each chunk is merged as a batch of items is: references resolved,
// waiting rows parked, the rest written in key order. The global key order keeps two bulk
// merges into one table (two peers loading a new node) from deadlocking. When the key holds a
// translated reference, or a key column is staged with another type, the staging table cannot
// be read in the index's order and is read in the order of its staged key columns: two merges
// of the same rows still take their locks alike, chunk by chunk.
//
// Each chunk is written in a subtransaction of its own, as a batch of items is (merge_rows.hpp).
#include "boundary.hpp"
#include "merge_rows.hpp"
#include "state_access.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

constexpr int64 kStagedChunk = 50000;
// Each chunk's write takes a subtransaction xid; past 64 in one transaction the backend's cache
// of them overflows and every snapshot in the cluster gets slower. Chunks double in size every
// 16 chunks, up to 400,000 rows (memory), so that 64 of them cover some 12 million rows.
constexpr int kChunksPerSize = 16;
constexpr int kMaxDoublings = 3;

// SELECT the replicated columns (cast to the target's types where the staging table has others;
// references stay jsonb) and the origin (the row's, else $1), in the key index's order; when a
// key column is staged as something else (a reference as its natural key, or another type), in
// the order of the staged key columns, which every merge of the same rows reads alike.
char *staged_rows_sql(const Merge &m, Relation staging)
{
    Oid relid = RelationGetRelid(staging);
    TupleDesc desc = RelationGetDescr(staging);
    StringInfoData sql, staged_key;
    initStringInfo(&sql);
    initStringInfo(&staged_key);
    appendStringInfoString(&sql, "SELECT ");
    bool index_order = true;
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
        if (c < m.reg->nkey) {
            index_order &= staged == wanted && column.reference == nullptr;
            appendStringInfo(&staged_key, "%ss.%s", c ? ", " : "", quote_identifier(column.name));
        }
    }
    AttrNumber origin = get_attnum(relid, "idsync_origin");
    bool has_origin = origin > 0 && TupleDescAttr(desc, origin - 1)->atttypid == UUIDOID;
    appendStringInfoString(&sql, has_origin ? "COALESCE(s.idsync_origin, $1)" : "$1");
    appendStringInfo(&sql, " FROM %s s ORDER BY ", relid_name(relid));
    if (index_order)
        append_key_order(&sql, m.batch.target);
    else
        appendStringInfoString(&sql, staged_key.data);
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

// Merges the staged rows chunk by chunk; returns how many were read. The cursor is read at the
// merge's own level, never inside a subtransaction: each chunk is written in one of its own
// (merge_rows.hpp), which a refused row rolls back without touching the cursor.
int64 merge_chunks(Merge &m, const char *sql)
{
    Oid argtypes[1] = {UUIDOID};
    Datum args[1] = {m.source};
    char argnulls[1] = {m.source_null ? 'n' : ' '};
    int pinned = pin_search_path();
    // Not read-only: a fresh snapshot sees rows staged earlier in the same statement.
    Portal cursor = SPI_cursor_open_with_args(nullptr, sql, 1, argtypes, args, argnulls, false, 0);
    unpin_search_path(pinned);
    MemoryContext work = CurrentMemoryContext;
    MemoryContext per_chunk =
        AllocSetContextCreate(work, "idsync staged merge chunk", ALLOCSET_DEFAULT_SIZES);
    int64 received = 0;
    for (int chunk = 0;; chunk++) {
        SPI_cursor_fetch(cursor, true, kStagedChunk << Min(chunk / kChunksPerSize, kMaxDoublings));
        if (SPI_processed == 0)
            break;
        received += static_cast<int64>(SPI_processed);
        SPITupleTable *tuples = SPI_tuptable;
        MemoryContextSwitchTo(per_chunk);
        MergeRows rows = chunk_rows(m, tuples, static_cast<int64>(SPI_processed));
        settle_references(m, rows);
        write_rows(m, rows, true);
        flush_parked(m);
        SPI_freetuptable(tuples);
        MemoryContextSwitchTo(work);
        MemoryContextReset(per_chunk);
    }
    SPI_cursor_close(cursor);
    MemoryContextDelete(per_chunk);
    return received;
}

} // namespace

void check_staging(Oid relid, Oid staging)
{
    check_staging_access(staging);
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    if (reg == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("table %s is not registered for replication", relid_name(relid))));
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
    Relation staging = relation_open(staging_id, AccessShareLock);
    int64 received = merge_chunks(m, staged_rows_sql(m, staging));
    relation_close(staging, NoLock);
    end_merge(m);
    return {received, m.counts.inserted, m.counts.updated, m.rejected};
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
