#include "natural_key.hpp"

#include "boundary.hpp"
#include "insert_missing.hpp"
#include "kept_plans.hpp"
#include "natural_form.hpp"
#include "natural_hash.hpp"
#include "state_access.hpp"
#include "work_array.hpp"

namespace idsync {

struct KeyPart {
    const char *name;
    AttrNumber attnum; // in the table
    Oid type;
    FmgrInfo send;     // plain columns
    ItemColumn column; // plain columns: how an item's value is read
    KeyPlan *parent;   // a translated reference: the referenced table's key
    AttrNumber parent_attnum;
    const char *lookup; // natural_key_by_id of the referenced row
};

namespace {

int compare_parts(const void *a, const void *b)
{
    return strcmp(static_cast<const KeyPart *>(a)->name, static_cast<const KeyPart *>(b)->name);
}

// Whether key column `attnum` of `rel` is a translated reference (a foreign key of its own to a
// local column of a registered table, as idsync._translated finds them), and to what. Read from
// the relcache: the other foreign keys of the table do not matter here.
bool translated_key_column(Relation rel, AttrNumber attnum, Oid *parent, AttrNumber *parent_attnum)
{
    // A copy: the relcache's list goes with the next invalidation, which the catalog lookups
    // below may process.
    List *fkeys = static_cast<List *>(copyObjectImpl(RelationGetFKeyList(rel)));
    ListCell *lc;
    foreach (lc, fkeys) {
        auto *fk = static_cast<ForeignKeyCacheInfo *>(lfirst(lc));
        if (fk->nkeys != 1 || fk->conkey[0] != attnum)
            continue;
        const Registration *reg = load_registration(fk->confrelid, CurrentMemoryContext);
        if (reg == nullptr)
            continue;
        const char *column = get_attname(fk->confrelid, fk->confkey[0], false);
        if (!registered_name_among(column, reg->local_columns, reg->nlocal))
            continue;
        *parent = fk->confrelid;
        *parent_attnum = fk->confkey[0];
        return true;
    }
    return false;
}

KeyPlan *build_plan(Oid relid, MemoryContext context, int depth)
{
    if (depth > kMaxNesting)
        ereport(ERROR, (errcode(ERRCODE_STATEMENT_TOO_COMPLEX),
                        errmsg("natural keys nest deeper than %d levels at table %s", kMaxNesting,
                               relid_name(relid))));
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    if (reg == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("table %s is not registered for replication", relid_name(relid))));
    MemoryContext caller = MemoryContextSwitchTo(context);
    auto *plan = static_cast<KeyPlan *>(palloc0(sizeof(KeyPlan)));
    plan->relid = relid;
    plan->nparts = reg->nkey;
    plan->parts = static_cast<KeyPart *>(palloc0(sizeof(KeyPart) * Max(reg->nkey, 1)));
    Relation rel = relation_open(relid, AccessShareLock);
    TupleDesc desc = RelationGetDescr(rel);
    for (int k = 0; k < reg->nkey; k++) {
        KeyPart &part = plan->parts[k];
        part.name = pstrdup(reg->key_columns[k]);
        part.attnum = SPI_fnumber(desc, part.name);
        if (part.attnum <= 0)
            elog(ERROR, "idsync: key column \"%s\" of %s does not exist", part.name,
                 relid_name(relid));
        Form_pg_attribute att = TupleDescAttr(desc, part.attnum - 1);
        part.type = att->atttypid;
        Oid parent;
        AttrNumber parent_attnum;
        if (translated_key_column(rel, part.attnum, &parent, &parent_attnum)) {
            const char *parent_column = get_attname(parent, parent_attnum, false);
            part.parent_attnum = parent_attnum;
            part.lookup = natural_key_by_id(parent, parent_column);
            part.parent = build_plan(parent, context, depth + 1);
        }
        if (part.parent == nullptr) {
            prepare_item_column(part.column, att);
            Oid send;
            bool varlena;
            getTypeBinaryOutputInfo(part.type, &send, &varlena);
            fmgr_info_cxt(send, &part.send, context);
        }
    }
    relation_close(rel, AccessShareLock);
    qsort(plan->parts, plan->nparts, sizeof(KeyPart), compare_parts);
    MemoryContextSwitchTo(caller);
    return plan;
}

// The natural key of the row of the referenced table whose id is `id`, looked up with a fresh
// snapshot (it sees rows this transaction wrote just before), as the caller.
bool lookup_parent(const KeyPart &part, int64 id, NaturalKey *out)
{
    MemoryContext caller = CurrentMemoryContext;
    int pinned = pin_search_path();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    Oid types[1] = {INT8OID};
    Datum args[1] = {Int64GetDatum(id)};
    SPIPlanPtr plan = kept_plan(part.lookup, 1, types);
    if (SPI_execute_plan(plan, args, nullptr, false, 1) != SPI_OK_SELECT)
        elog(ERROR, "idsync: looking up the natural key of a referenced row failed");
    bool found = false;
    if (SPI_processed == 1) {
        bool null_json, null_hash;
        Datum json = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &null_json);
        Datum hash = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &null_hash);
        if (!null_json && !null_hash) {
            MemoryContext spi = MemoryContextSwitchTo(caller);
            out->json = DatumGetJsonbPCopy(json);
            out->hash = hash_of_uuid(DatumGetUUIDP(hash));
            MemoryContextSwitchTo(spi);
            found = true;
        }
    }
    SPI_finish();
    unpin_search_path(pinned);
    return found;
}

void push_key(JsonbParseState **state, const char *name)
{
    JsonbValue v;
    v.type = jbvString;
    v.val.string.val = const_cast<char *>(name);
    v.val.string.len = strlen(name);
    pushJsonbValue(state, WJB_KEY, &v);
}

void push_json(JsonbParseState **state, Jsonb *json)
{
    JsonbValue v;
    v.type = jbvBinary;
    v.val.binary.data = &json->root;
    v.val.binary.len = VARSIZE(json) - VARHDRSZ;
    pushJsonbValue(state, WJB_VALUE, &v);
}

// The rows deleted in this transaction, by (table, integer local column, id).
struct DeletedId {
    Oid relid;
    AttrNumber attnum;
    int64 id;
};

struct DeletedEntry {
    DeletedId id;
    Jsonb *json;
    RowHash hash;
};

HTAB *deleted = nullptr;
bool callback_registered = false;

void forget_deleted(XactEvent event, void *)
{
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
        event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
        event == XACT_EVENT_PREPARE)
        deleted = nullptr; // its memory goes with TopTransactionContext
}

} // namespace

KeyPlan *key_plan(Oid relid, MemoryContext context)
{
    return build_plan(relid, context, 1);
}

bytea *hash_bytes_of(RowHash h)
{
    auto *b = static_cast<bytea *>(palloc(VARHDRSZ + 16));
    SET_VARSIZE(b, VARHDRSZ + 16);
    auto *data = reinterpret_cast<unsigned char *>(VARDATA(b));
    for (int i = 0; i < 8; i++) {
        data[i] = (unsigned char)(h.h1 >> (56 - 8 * i));
        data[8 + i] = (unsigned char)(h.h2 >> (56 - 8 * i));
    }
    return b;
}

RowHash hash_of_uuid(const pg_uuid_t *u)
{
    RowHash h = {0, 0};
    for (int i = 0; i < 8; i++) {
        h.h1 = (h.h1 << 8) | u->data[i];
        h.h2 = (h.h2 << 8) | u->data[8 + i];
    }
    return h;
}

RowHash key_hash_from_json(KeyPlan *plan, JsonbContainer *key)
{
    auto **sent = work_array0<bytea *>(plan->nparts);
    for (int p = 0; p < plan->nparts; p++) {
        KeyPart &part = plan->parts[p];
        JsonbValue v;
        if (getKeyJsonValueFromContainer(key, part.name, strlen(part.name), &v) == nullptr ||
            v.type == jbvNull)
            continue;
        if (part.parent != nullptr) {
            if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
                ereport(ERROR,
                        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                         errmsg("a natural key does not convert: reference %s is not a JSON object",
                                part.name)));
            sent[p] = hash_bytes_of(key_hash_from_json(part.parent, v.val.binary.data));
        } else {
            sent[p] = SendFunctionCall(&part.send, read_item_value(part.column, &v));
        }
    }
    return hash_sent(plan->nparts, sent);
}

Jsonb *key_json_of_item(const KeyPlan *plan, JsonbContainer *item)
{
    JsonbParseState *state = nullptr;
    pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    for (int p = 0; p < plan->nparts; p++) {
        const KeyPart &part = plan->parts[p];
        JsonbValue v;
        if (getKeyJsonValueFromContainer(item, part.name, strlen(part.name), &v) == nullptr)
            v.type = jbvNull;
        push_key(&state, part.name);
        pushJsonbValue(&state, WJB_VALUE, &v);
    }
    return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, nullptr));
}

namespace {

bool natural_key_of_stored_row(KeyPlan *plan, const Datum *values, const bool *nulls,
                               NaturalKey *out);

} // namespace

bool natural_key_of_row(KeyPlan *plan, const Datum *values, const bool *nulls, NaturalKey *out)
{
    int pinned = pin_output_styles();
    bool found = natural_key_of_stored_row(plan, values, nulls, out);
    unpin_output_styles(pinned);
    return found;
}

namespace {

bool natural_key_of_stored_row(KeyPlan *plan, const Datum *values, const bool *nulls,
                               NaturalKey *out)
{
    auto **sent = work_array0<bytea *>(plan->nparts);
    JsonbParseState *state = nullptr;
    pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    for (int p = 0; p < plan->nparts; p++) {
        KeyPart &part = plan->parts[p];
        int at = part.attnum - 1;
        push_key(&state, part.name);
        if (nulls[at]) {
            JsonbValue v;
            v.type = jbvNull;
            pushJsonbValue(&state, WJB_VALUE, &v);
            continue;
        }
        if (part.parent == nullptr) {
            push_value_json(&state, part.type, values[at]);
            sent[p] = SendFunctionCall(&part.send, values[at]);
            continue;
        }
        int64 id = reference_id(values[at], part.type);
        NaturalKey parent;
        if (!lookup_parent(part, id, &parent) &&
            !deleted_key(part.parent->relid, part.parent_attnum, id, &parent))
            return false;
        push_json(&state, parent.json);
        sent[p] = hash_bytes_of(parent.hash);
    }
    out->json = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, nullptr));
    out->hash = hash_sent(plan->nparts, sent);
    return true;
}

} // namespace

void remember_deleted(const Registration *reg, TupleDesc desc, const Datum *values,
                      const bool *nulls, const NaturalKey &key)
{
    if (deleted == nullptr) {
        if (!callback_registered) {
            RegisterXactCallback(forget_deleted, nullptr);
            callback_registered = true;
        }
        HASHCTL ctl = {};
        ctl.keysize = sizeof(DeletedId);
        ctl.entrysize = sizeof(DeletedEntry);
        ctl.hcxt = TopTransactionContext;
        deleted =
            hash_create("idsync deleted rows", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    }
    Jsonb *json = nullptr;
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (att->attisdropped || nulls[i] ||
            (att->atttypid != INT2OID && att->atttypid != INT4OID && att->atttypid != INT8OID) ||
            strcmp(NameStr(att->attname), reg->point_column) == 0 ||
            !registered_name_among(NameStr(att->attname), reg->local_columns, reg->nlocal))
            continue;
        if (json == nullptr) {
            MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
            json = static_cast<Jsonb *>(palloc(VARSIZE(key.json)));
            memcpy(json, key.json, VARSIZE(key.json));
            MemoryContextSwitchTo(old);
        }
        DeletedId id;
        memset(&id, 0, sizeof(id)); // the padding is hashed too
        id.relid = reg->relid;
        id.attnum = att->attnum;
        id.id = reference_id(values[i], att->atttypid);
        bool found;
        auto *entry = static_cast<DeletedEntry *>(hash_search(deleted, &id, HASH_ENTER, &found));
        entry->json = json;
        entry->hash = key.hash;
    }
}

bool deleted_key(Oid relid, AttrNumber attnum, int64 id, NaturalKey *out)
{
    if (deleted == nullptr)
        return false;
    DeletedId key;
    memset(&key, 0, sizeof(key));
    key.relid = relid;
    key.attnum = attnum;
    key.id = id;
    auto *entry = static_cast<DeletedEntry *>(hash_search(deleted, &key, HASH_FIND, nullptr));
    if (entry == nullptr)
        return false;
    out->json = entry->json;
    out->hash = entry->hash;
    return true;
}

} // namespace idsync

using namespace idsync;

// idsync._natural_key(target regclass, row_value record, OUT key jsonb, OUT key_hash uuid): the
// natural key of a row of registered table `target` (a value of its row type), as a tombstone
// keeps it; NULLs when a row it references is not here. Read as the caller.
IDSYNC_FUNCTION(idsync_natural_key)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    HeapTupleHeader record = DatumGetHeapTupleHeader(required_arg(fcinfo, 1, "row_value"));
    require_replicable(relid);
    TupleDesc result;
    if (get_call_result_type(fcinfo, nullptr, &result) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "idsync._natural_key must return a record");
    if (HeapTupleHeaderGetTypeId(record) != get_rel_type_id(relid))
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("row_value must be a row of %s", relid_name(relid))));
    TupleDesc desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(record), -1);
    Datum *values;
    bool *nulls;
    deform_record(record, desc, &values, &nulls);
    ReleaseTupleDesc(desc);
    KeyPlan *plan = key_plan(relid, CurrentMemoryContext);
    NaturalKey key;
    Datum out[2] = {0, 0};
    bool out_nulls[2] = {true, true};
    if (natural_key_of_row(plan, values, nulls, &key)) {
        out[0] = JsonbPGetDatum(key.json);
        out[1] = hash_as_uuid(key.hash);
        out_nulls[0] = out_nulls[1] = false;
    }
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(result), out, out_nulls));
}
