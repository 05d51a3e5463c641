// idsync._merge_new_rows: the merge of a batch of items into an insert_only table, on the
// insert-missing engine (insert_missing.hpp). The items' values are read straight from the
// jsonb into the target's column types; the rows this node lacks are inserted in the key
// index's order with the node each comes from; the rows it has stay as they are, whatever
// their other columns hold. The batch is checked before (idsync._check_items).
//
// The SQL merge (sql/src/merges.sql) remains the way for what this does not take: lww tables,
// translated references, row-level security, array and composite columns, and every batch that
// fails here (the caller undoes it and stages the rows, parking the ones refused).
#include "boundary.hpp"
#include "insert_missing.hpp"
#include "registration.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

// A replicated column, as read from items.
struct ItemColumn {
    const char *name;
    int length;
    Oid input; // the type's input function
    Oid ioparam;
    int32 typmod;
    bool json; // json or jsonb (or a domain over one): takes the JSON text of any value
    FmgrInfo flinfo;
};

bool among(const char *name, char **names, int n)
{
    for (int i = 0; i < n; i++)
        if (names[i] != nullptr && strcmp(names[i], name) == 0)
            return true;
    return false;
}

// The replicated columns: the registered key columns first, then the other stored columns in
// table order, leaving out local ones (idsync_origin is local: it is carried separately).
// Returns -1 when a column's type is one only the SQL merge reads (arrays, composites).
int replicated_columns(Relation rel, const Registration *reg, ItemColumn *out)
{
    TupleDesc desc = RelationGetDescr(rel);
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < desc->natts; i++) {
            Form_pg_attribute att = TupleDescAttr(desc, i);
            const char *name = NameStr(att->attname);
            if (att->attisdropped ||
                among(const_cast<char *>(name), reg->local_columns, reg->nlocal))
                continue;
            bool key = among(const_cast<char *>(name), reg->key_columns, reg->nkey);
            if (key != (pass == 0))
                continue;
            Oid base = getBaseType(att->atttypid);
            if (type_is_array(base) || type_is_rowtype(base))
                return -1;
            ItemColumn &c = out[n++];
            c.name = pstrdup(name);
            c.length = strlen(name);
            getTypeInputInfo(att->atttypid, &c.input, &c.ioparam);
            fmgr_info(c.input, &c.flinfo);
            c.typmod = att->atttypmod;
            c.json = base == JSONOID || base == JSONBOID;
        }
    return n;
}

// One item value in its column's type, as jsonb_populate_record reads it: a string as its
// text, a number, boolean, object or array as its JSON text (any value, for json columns).
Datum read_value(ItemColumn &c, JsonbValue *v)
{
    char *text;
    if (c.json || v->type == jbvBinary) {
        Jsonb *jb = JsonbValueToJsonb(v);
        text = JsonbToCString(nullptr, &jb->root, VARSIZE(jb));
    } else if (v->type == jbvString) {
        text = pnstrdup(v->val.string.val, v->val.string.len);
    } else if (v->type == jbvBool) {
        text = pstrdup(v->val.boolean ? "true" : "false");
    } else if (v->type == jbvNumeric) {
        text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
    } else {
        elog(ERROR, "idsync: unexpected jsonb value type %d", static_cast<int>(v->type));
    }
    return InputFunctionCall(&c.flinfo, text, c.ioparam, c.typmod);
}

int find_column(const ItemColumn *columns, int n, const JsonbValue *key)
{
    for (int c = 0; c < n; c++)
        if (columns[c].length == key->val.string.len &&
            memcmp(columns[c].name, key->val.string.val, columns[c].length) == 0)
            return c;
    return -1;
}

// The rows of the batch: the items that are objects (an item of null is the receiver's own row:
// only its point counts), one array per column, and the origin of each as the last column.
ColumnValues read_items(Jsonb *items, ItemColumn *columns, int ncolumns, Datum source,
                        bool source_null)
{
    int64 capacity = JsonContainerSize(&items->root);
    ColumnValues v = {0, work_array<Datum *>(ncolumns + 1), work_array<bool *>(ncolumns + 1)};
    for (int c = 0; c <= ncolumns; c++) {
        v.values[c] = work_array0<Datum>(Max(capacity, 1));
        v.nulls[c] = work_array<bool>(Max(capacity, 1));
        memset(v.nulls[c], true, sizeof(bool) * Max(capacity, 1));
    }
    JsonbIterator *it = JsonbIteratorInit(&items->root);
    JsonbValue element;
    JsonbIteratorToken token;
    while ((token = JsonbIteratorNext(&it, &element, true)) != WJB_DONE) {
        if (token != WJB_ELEM)
            continue;
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
        JsonbValue key, value;
        int column = -1;
        while ((token = JsonbIteratorNext(&fields, &key, true)) != WJB_DONE) {
            if (token == WJB_KEY) {
                column = find_column(columns, ncolumns, &key);
                if (column < 0)
                    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                                    errmsg("column \"%.*s\" does not exist on this node",
                                           key.val.string.len, key.val.string.val)));
            } else if (token == WJB_VALUE) {
                value = key;
                if (value.type != jbvNull) {
                    v.values[column][row] = read_value(columns[column], &value);
                    v.nulls[column][row] = false;
                }
            }
        }
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

ArrayType *column_names(const ItemColumn *columns, int ncolumns)
{
    Datum *names = work_array<Datum>(ncolumns + 1);
    for (int c = 0; c < ncolumns; c++)
        names[c] = CStringGetTextDatum(columns[c].name);
    names[ncolumns] = CStringGetTextDatum("idsync_origin");
    return construct_array(names, ncolumns + 1, TEXTOID, -1, false, TYPALIGN_INT);
}

} // namespace

} // namespace idsync

using namespace idsync;

// idsync._merge_new_rows(target regclass, items jsonb, source uuid) RETURNS integer: how many
// rows were inserted, or NULL when the table is one the SQL merge takes (see the top).
IDSYNC_FUNCTION(idsync_merge_new_rows)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    Jsonb *items = DatumGetJsonbP(required_arg(fcinfo, 1, "items"));
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    if (reg == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("table with OID %u is not registered for replication", relid)));
    if (reg->lww || reg->nreferences > 0 || reg->nkey == 0 ||
        check_enable_rls(relid, InvalidOid, false) == RLS_ENABLED)
        PG_RETURN_NULL();
    if (!JB_ROOT_IS_ARRAY(items) || JB_ROOT_IS_SCALAR(items))
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("items must be a JSON array")));

    // The column types are read before the table is opened for writing, under a weaker lock.
    Relation rel = relation_open(relid, AccessShareLock);
    ItemColumn *columns = work_array0<ItemColumn>(RelationGetDescr(rel)->natts);
    int ncolumns = replicated_columns(rel, reg, columns);
    relation_close(rel, AccessShareLock);
    if (ncolumns < reg->nkey)
        PG_RETURN_NULL();

    Batch b = {};
    begin_batch(b, relid, column_names(columns, ncolumns), reg->nkey);
    b.plain_first = true;
    b.values = read_items(items, columns, ncolumns, PG_ARGISNULL(2) ? Datum(0) : PG_GETARG_DATUM(2),
                          PG_ARGISNULL(2));
    resolve_batch(b);
    int32 inserted = 0;
    for (int64 g = 0; g < b.keys.ngroups; g++)
        inserted += b.ids.state[g] == IdState::inserted;
    end_batch(b);
    PG_RETURN_INT32(inserted);
}
