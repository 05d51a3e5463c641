// The merge of a batch of items (merge_items) on the insert-missing engine (merge_rows.hpp). The
// items' values are read straight from the jsonb into the target's column types, as
// jsonb_populate_record reads them, so that a value converts here exactly as it would there; array
// and composite values are read by jsonb_to_record itself. A row that names a column this node
// lacks, or whose value does not convert, is parked with its error; the rest is merged. The batch
// is checked before (idsync._check_items).
//
// waiting_ready: which of a table's rows parked as waiting would no longer wait.
#include "boundary.hpp"
#include "kept_plans.hpp"
#include "merge_rows.hpp"
#include "state_access.hpp"
#include "subtransaction.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

bool is_marker(const char *marker, const JsonbValue *key)
{
    return marker != nullptr && key->type == jbvString &&
           key->val.string.len == static_cast<int>(strlen(marker)) &&
           memcmp(key->val.string.val, marker, key->val.string.len) == 0;
}

// Splits the batch into rows: the items that are objects (an item of null is the receiver's own
// row: only its point counts), with their points and origins. A row with a key that is not one
// of the table's replicated columns is set aside at once.
MergeRows split_items(Merge &m, Jsonb *items)
{
    int64 capacity = JsonContainerSize(&items->root);
    MergeRows rows = new_merge_rows(m, capacity);
    rows.item = work_array<JsonbValue>(capacity);
    rows.point = work_array<int64>(capacity);
    const char *marker = tombstone_marker(m);
    JsonbIterator *it = JsonbIteratorInit(&items->root);
    JsonbValue element;
    while (next_array_element(&it, &element)) {
        if (element.type != jbvBinary || !JsonContainerIsObject(element.val.binary.data))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("malformed item")));
        JsonbValue item, point, origin;
        JsonbContainer *envelope = element.val.binary.data;
        if (getKeyJsonValueFromContainer(envelope, "item", 4, &item) == nullptr ||
            item.type != jbvBinary || !JsonContainerIsObject(item.val.binary.data))
            continue;
        int64 row = rows.values.nrows++;
        rows.item[row] = item;
        rows.point[row] = getKeyJsonValueFromContainer(envelope, "point", 5, &point) != nullptr &&
                                  point.type == jbvNumeric
                              ? DatumGetInt64(DirectFunctionCall1(
                                    numeric_int8, NumericGetDatum(point.val.numeric)))
                              : 0;
        ColumnValues &v = rows.values;
        if (getKeyJsonValueFromContainer(envelope, "origin", 6, &origin) != nullptr &&
            origin.type == jbvString) {
            char *text = pnstrdup(origin.val.string.val, origin.val.string.len);
            v.values[m.ncolumns][row] = DirectFunctionCall1(uuid_in, CStringGetDatum(text));
            v.nulls[m.ncolumns][row] = false;
        } else {
            v.values[m.ncolumns][row] = m.source;
            v.nulls[m.ncolumns][row] = m.source_null;
        }

        StringInfoData unknown;
        initStringInfo(&unknown);
        JsonbIterator *fields = JsonbIteratorInit(item.val.binary.data);
        JsonbValue value;
        JsonbIteratorToken token;
        bool at_marker = false;
        while ((token = JsonbIteratorNext(&fields, &value, true)) != WJB_DONE) {
            if (token == WJB_VALUE && at_marker)
                rows.deleted[row] = value.type == jbvBool && value.val.boolean;
            at_marker = token == WJB_KEY && is_marker(marker, &value);
            if (token == WJB_KEY && !at_marker &&
                find_item_column(m.columns, m.ncolumns, &value) < 0)
                appendStringInfo(&unknown, "%s%.*s", unknown.len ? ", " : "", value.val.string.len,
                                 value.val.string.val);
        }
        if (unknown.len > 0)
            set_aside(m, rows, row, ERRCODE_UNDEFINED_COLUMN,
                      psprintf("column %s of table %s does not exist on this node", unknown.data,
                               relid_name(m.relid)),
                      nullptr);
    }
    return rows;
}

struct ReadCall {
    Merge *m;
    MergeRows *rows;
    int64 first;
    int64 count;
};

// Reads the values of rows first .. first + count - 1 that are not settled; translated
// references keep their natural keys for settle_references, arrays and composites wait for
// read_populated.
void run_read_values(void *arg)
{
    auto *call = static_cast<ReadCall *>(arg);
    Merge &m = *call->m;
    MergeRows &rows = *call->rows;
    for (int64 row = call->first; row < call->first + call->count; row++) {
        if (rows.settled[row])
            continue;
        for (int c = 0; c < m.ncolumns; c++)
            rows.values.nulls[c][row] = true;
        JsonbIterator *fields = JsonbIteratorInit(rows.item[row].val.binary.data);
        JsonbValue value;
        int column = -1;
        JsonbIteratorToken token;
        while ((token = JsonbIteratorNext(&fields, &value, true)) != WJB_DONE) {
            if (token == WJB_KEY) {
                column = find_item_column(m.columns, m.ncolumns, &value);
                continue;
            }
            if (token != WJB_VALUE || column < 0 || value.type == jbvNull ||
                m.columns[column].populated)
                continue;
            ItemColumn &c = m.columns[column];
            if (c.reference == nullptr) {
                rows.values.values[column][row] = read_item_value(c, &value);
            } else if (value.type == jbvBinary) {
                rows.keys[column][row] = value.val.binary.data;
            } else {
                ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                                errmsg("a natural key does not convert: reference %s is not a JSON "
                                       "object",
                                       c.name)));
            }
            rows.values.nulls[column][row] = false;
        }
        // A tombstone carries its key and version only.
        for (int c = 0; c < m.ncolumns && !rows.deleted[row]; c++)
            if (rows.values.nulls[c][row] && !m.columns[c].populated)
                check_item_null(m.columns[c]);
    }
}

// The statement that reads the array and composite columns of items as jsonb_populate_record
// does: over the whole batch ($1, the items), or over one item object ($1).
SPIPlanPtr prepare_populate(const Merge &m, bool whole_batch)
{
    StringInfoData sql, list, definition;
    initStringInfo(&sql);
    initStringInfo(&list);
    initStringInfo(&definition);
    for (int c = 0; c < m.ncolumns; c++) {
        if (!m.columns[c].populated)
            continue;
        const char *name = quote_identifier(m.columns[c].name);
        appendStringInfo(&list, "%sr.%s", list.len ? ", " : "", name);
        appendStringInfo(&definition, "%s%s %s", definition.len ? ", " : "", name,
                         format_type_with_typemod(m.columns[c].type, m.columns[c].typmod));
    }
    if (whole_batch)
        appendStringInfo(&sql,
                         "SELECT %s FROM pg_catalog.jsonb_array_elements($1) WITH ORDINALITY "
                         "AS e (x, n), pg_catalog.jsonb_to_record(e.x OPERATOR(pg_catalog.->) "
                         "'item') AS r (%s) WHERE pg_catalog.jsonb_typeof(e.x "
                         "OPERATOR(pg_catalog.->) 'item') OPERATOR(pg_catalog.=) 'object' "
                         "ORDER BY e.n",
                         list.data, definition.data);
    else
        appendStringInfo(&sql, "SELECT %s FROM pg_catalog.jsonb_to_record($1) AS r (%s)", list.data,
                         definition.data);
    Oid types[1] = {JSONBOID};
    return kept_plan(sql.data, 1, types);
}

struct PopulateCall {
    Merge *m;
    MergeRows *rows;
    SPIPlanPtr plan;
    Datum argument;
    int64 first; // the row of the first result row
};

// Runs the populate statement and keeps the values of the rows it returns (from `first` on).
void run_populate(void *arg)
{
    auto *call = static_cast<PopulateCall *>(arg);
    Merge &m = *call->m;
    MergeRows &rows = *call->rows;
    MemoryContext caller = CurrentMemoryContext; // SPI returns in its own context
    if (SPI_execute_plan(call->plan, &call->argument, nullptr, true, 0) != SPI_OK_SELECT)
        elog(ERROR, "idsync: reading array and composite values failed");
    MemoryContextSwitchTo(caller);
    SPITupleTable *result = SPI_tuptable;
    for (uint64 j = 0; j < SPI_processed; j++) {
        int64 row = call->first + static_cast<int64>(j);
        int field = 0;
        for (int c = 0; c < m.ncolumns; c++) {
            if (!m.columns[c].populated)
                continue;
            bool isnull;
            Datum d = SPI_getbinval(result->vals[j], result->tupdesc, ++field, &isnull);
            rows.values.nulls[c][row] = isnull;
            rows.values.values[c][row] = isnull ? Datum(0) : datumCopy(d, false, -1);
        }
    }
    SPI_freetuptable(result);
}

bool any_populated(const Merge &m)
{
    for (int c = 0; c < m.ncolumns; c++)
        if (m.columns[c].populated)
            return true;
    return false;
}

// Reads every row's values; when one does not convert, each row on its own, and the rows that
// do not convert are set aside with their errors.
void read_values(Merge &m, MergeRows &rows, Jsonb *items)
{
    int64 n = rows.values.nrows;
    ReadCall call = {&m, &rows, 0, n};
    if (try_subtransaction(run_read_values, &call, row_error) != nullptr)
        for (int64 row = 0; row < n; row++) {
            ReadCall one = {&m, &rows, row, 1};
            ErrorData *error;
            if (!rows.settled[row] &&
                (error = try_subtransaction(run_read_values, &one, row_error)) != nullptr)
                set_aside_error(m, rows, row, error);
        }
    if (!any_populated(m) || n == 0)
        return;
    PopulateCall whole = {&m, &rows, prepare_populate(m, true), JsonbPGetDatum(items), 0};
    ErrorData *failed = try_subtransaction(run_populate, &whole, row_error);
    if (failed == nullptr)
        return;
    SPIPlanPtr one_plan = prepare_populate(m, false);
    for (int64 row = 0; row < n; row++) {
        if (rows.settled[row])
            continue;
        PopulateCall one = {&m, &rows, one_plan, JsonbPGetDatum(JsonbValueToJsonb(&rows.item[row])),
                            row};
        ErrorData *error = try_subtransaction(run_populate, &one, row_error);
        if (error != nullptr)
            set_aside_error(m, rows, row, error);
    }
}

} // namespace

// Whether a batch for lww table `reg` holds a tombstone (its marker set).
bool holds_tombstones(const Registration *reg, Jsonb *items)
{
    if (reg == nullptr || !reg->lww || reg->tombstone_column == nullptr)
        return false;
    JsonbIterator *it = JsonbIteratorInit(&items->root);
    JsonbValue element;
    while (next_array_element(&it, &element)) {
        JsonbValue item, marker;
        if (element.type == jbvBinary && JsonContainerIsObject(element.val.binary.data) &&
            getKeyJsonValueFromContainer(element.val.binary.data, "item", 4, &item) != nullptr &&
            item.type == jbvBinary && JsonContainerIsObject(item.val.binary.data) &&
            getKeyJsonValueFromContainer(item.val.binary.data, reg->tombstone_column,
                                         strlen(reg->tombstone_column), &marker) != nullptr &&
            marker.type == jbvBool && marker.val.boolean)
            return true;
    }
    return false;
}

MergeResult merge_item_batch(Oid relid, Jsonb *items, Datum source, bool source_null)
{
    // Tombstones apply under SHARE ROW EXCLUSIVE (merge_tombstones.cpp), taken before the merge
    // opens the table: upgraded from its ROW EXCLUSIVE, two such merges would deadlock. (The
    // caller's rights were checked when the merge's flag was raised.)
    if (holds_tombstones(load_registration(relid, CurrentMemoryContext), items))
        LockRelationOid(relid, ShareRowExclusiveLock);
    Merge m;
    begin_merge(m, relid, source, source_null);
    MergeRows rows = split_items(m, items);
    read_values(m, rows, items);
    settle_references(m, rows);
    write_rows(m, rows, true);
    flush_parked(m);
    end_merge(m);
    return {JsonContainerSize(&items->root), m.counts.inserted, m.counts.updated, m.rejected};
}

ArrayType *waiting_ready(Oid relid, Jsonb *items)
{
    Merge m;
    begin_merge(m, relid, Datum(0), true);
    MergeRows rows = split_items(m, items);
    read_values(m, rows, items);
    settle_references(m, rows);
    Datum *ready = work_array<Datum>(rows.values.nrows);
    int count = 0;
    for (int64 row = 0; row < rows.values.nrows; row++)
        if (!rows.settled[row])
            ready[count++] = Int64GetDatum(rows.point[row]);
    MemoryContext work = MemoryContextSwitchTo(m.batch.caller); // outlives end_merge
    ArrayType *result =
        construct_array(ready, count, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
    MemoryContextSwitchTo(work);
    end_merge(m);
    return result;
}

} // namespace idsync

using namespace idsync;

// idsync._merge_batch(target regclass, items jsonb, source uuid, OUT inserted integer,
// OUT updated integer, OUT rejected integer): the merge itself, without the checks and the
// sync point of merge_items (for tests).
IDSYNC_FUNCTION(idsync_merge_batch)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    Jsonb *items = DatumGetJsonbP(required_arg(fcinfo, 1, "items"));
    if (!JB_ROOT_IS_ARRAY(items) || JB_ROOT_IS_SCALAR(items))
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("items must be a JSON array")));
    MergeResult r = merge_item_batch(relid, items, PG_ARGISNULL(2) ? Datum(0) : PG_GETARG_DATUM(2),
                                     PG_ARGISNULL(2));
    return merge_counts_record(fcinfo, r);
}
