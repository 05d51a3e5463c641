// idsync._merge_batch: the merge of a batch of items (merge_items) on the insert-missing engine
// (insert_missing.hpp). The items' values are read straight from the jsonb into the target's
// column types, translated references arrive as natural keys and are resolved to local ids
// (reference_keys.hpp), and the rows are grouped by key in the key index's order. Then:
// - insert_only: the rows this node lacks are inserted with the node each comes from; the rows
//   it has stay as they are, whatever their other columns hold;
// - lww: per key the newest row wins, within the batch and against the stored row
//   (newest_rows.hpp).
// The batch is checked before (idsync._check_items). The staged SQL merge (sql/src/merges.sql)
// remains the way for what this does not take: row-level security, array and composite
// columns, batches with a row that waits for a referenced row, and every batch that fails here
// (the caller undoes it and stages the rows, parking the ones refused or waiting).
#include "boundary.hpp"
#include "insert_missing.hpp"
#include "merge_rows.hpp"
#include "newest_rows.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

// The rows of the batch: the items that are objects (an item of null is the receiver's own row:
// only its point counts), one array per column, and the origin of each as the last column. A
// translated reference holds its natural key (a JsonbContainer pointer into `items`) until
// resolve_references.
ColumnValues read_items(Jsonb *items, ItemColumn *columns, int ncolumns, Datum source,
                        bool source_null)
{
    int64 capacity = Max(JsonContainerSize(&items->root), 1);
    ColumnValues v = {0, work_array<Datum *>(ncolumns + 1), work_array<bool *>(ncolumns + 1)};
    for (int c = 0; c <= ncolumns; c++) {
        v.values[c] = work_array0<Datum>(capacity);
        v.nulls[c] = work_array<bool>(capacity);
        memset(v.nulls[c], true, sizeof(bool) * capacity);
    }
    JsonbIterator *it = JsonbIteratorInit(&items->root);
    JsonbValue element;
    while (next_array_element(&it, &element)) {
        if (element.type != jbvBinary || !JsonContainerIsObject(element.val.binary.data))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("malformed item")));
        JsonbValue item_value, origin_value;
        JsonbValue *item =
            getKeyJsonValueFromContainer(element.val.binary.data, "item", 4, &item_value);
        if (item == nullptr || item->type != jbvBinary ||
            !JsonContainerIsObject(item->val.binary.data))
            continue;
        int64 row = v.nrows++;
        JsonbIterator *fields = JsonbIteratorInit(item->val.binary.data);
        JsonbValue value;
        int column = -1;
        JsonbIteratorToken token;
        while ((token = JsonbIteratorNext(&fields, &value, true)) != WJB_DONE) {
            if (token == WJB_KEY) {
                column = find_item_column(columns, ncolumns, &value);
                if (column < 0)
                    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                                    errmsg("column \"%.*s\" does not exist on this node",
                                           value.val.string.len, value.val.string.val)));
            } else if (token == WJB_VALUE && value.type != jbvNull) {
                ItemColumn &c = columns[column];
                if (c.reference == nullptr)
                    v.values[column][row] = read_item_value(c, &value);
                else if (value.type == jbvBinary)
                    v.values[column][row] = PointerGetDatum(value.val.binary.data);
                else
                    ereport(ERROR,
                            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                             errmsg("reference %s is not a natural key (a JSON object)", c.name)));
                v.nulls[column][row] = false;
            }
        }
        for (int c = 0; c < ncolumns; c++)
            if (v.nulls[c][row])
                check_item_null(columns[c]);
        JsonbValue *origin =
            getKeyJsonValueFromContainer(element.val.binary.data, "origin", 6, &origin_value);
        if (origin != nullptr && origin->type == jbvString) {
            char *text = pnstrdup(origin->val.string.val, origin->val.string.len);
            v.values[ncolumns][row] = DirectFunctionCall1(uuid_in, CStringGetDatum(text));
            v.nulls[ncolumns][row] = false;
        } else {
            v.values[ncolumns][row] = source;
            v.nulls[ncolumns][row] = source_null;
        }
    }
    return v;
}

} // namespace

} // namespace idsync

using namespace idsync;

namespace {

Datum counts_record(FunctionCallInfo fcinfo, MergeCounts counts, bool taken)
{
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("_merge_batch must return a record")));
    Datum values[2] = {Int32GetDatum(static_cast<int32>(counts.inserted)),
                       Int32GetDatum(static_cast<int32>(counts.updated))};
    bool nulls[2] = {!taken, !taken};
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls));
}

} // namespace

// idsync._merge_batch(target regclass, items jsonb, source uuid, OUT inserted integer,
// OUT updated integer): what the merge inserted and updated, or NULLs when the table or batch
// is one the SQL merge takes (see the top).
IDSYNC_FUNCTION(idsync_merge_batch)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    Jsonb *items = DatumGetJsonbP(required_arg(fcinfo, 1, "items"));
    const Registration *reg = engine_registration(relid, true);
    if (reg == nullptr)
        return counts_record(fcinfo, {0, 0}, false);
    if (!JB_ROOT_IS_ARRAY(items) || JB_ROOT_IS_SCALAR(items))
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("items must be a JSON array")));

    // The column types are read under a lock kept to the end of the transaction, so that they
    // cannot change before the rows are written.
    check_before_lock(relid, ACL_SELECT | ACL_INSERT);
    Relation rel = relation_open(relid, AccessShareLock);
    ItemColumn *columns = work_array0<ItemColumn>(RelationGetDescr(rel)->natts);
    int ncolumns = replicated_columns(rel, reg, columns);
    relation_close(rel, NoLock);
    if (ncolumns < reg->nkey)
        return counts_record(fcinfo, {0, 0}, false);

    Batch b = {};
    begin_batch(b, relid, column_names(columns, ncolumns), reg->nkey);
    b.plain_first = true;
    b.values = read_items(items, columns, ncolumns, PG_ARGISNULL(2) ? Datum(0) : PG_GETARG_DATUM(2),
                          PG_ARGISNULL(2));
    bool resolved = resolve_references(b.values, columns, ncolumns);
    close_resolvers(columns, ncolumns);
    MergeCounts counts = {0, 0};
    bool taken = resolved;
    if (taken && reg->lww) {
        b.keys = group_rows(b.target, b.values);
        taken = keep_newest(b, reg);
        if (taken)
            counts = upsert_newest(b, reg);
    } else if (taken) {
        resolve_batch(b);
        for (int64 g = 0; g < b.keys.ngroups; g++)
            counts.inserted += b.ids.state[g] == IdState::inserted;
    }
    end_batch(b);
    return counts_record(fcinfo, counts, taken);
}
