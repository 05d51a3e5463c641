#include "reference_keys.hpp"

#include "key_probe.hpp"
#include "registration.hpp"
#include "row_keys.hpp"
#include "state_access.hpp"
#include "natural_form.hpp"
#include "work_array.hpp"

namespace idsync {

struct KeyResolver {
    Oid parent;
    AttrNumber id;
    int nkey;
    ItemColumn *keys; // the parent's key columns (a nested one has `reference` set)
    bool opened;
    TargetTable target; // opened by open_resolver, for lookups only
};

namespace {

ArrayType *key_names(const KeyResolver *r)
{
    Datum *names = work_array<Datum>(r->nkey);
    for (int k = 0; k < r->nkey; k++)
        names[k] = CStringGetTextDatum(r->keys[k].name);
    return construct_array(names, r->nkey, TEXTOID, -1, false, TYPALIGN_INT);
}

Datum id_datum(int64 id, Oid type)
{
    if ((type == INT2OID && (id < PG_INT16_MIN || id > PG_INT16_MAX)) ||
        (type == INT4OID && (id < PG_INT32_MIN || id > PG_INT32_MAX)))
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("id %lld of a referenced row is out of range for type %s",
                               static_cast<long long>(id), format_type_be(type))));
    switch (type) {
    case INT2OID:
        return Int16GetDatum(static_cast<int16>(id));
    case INT4OID:
        return Int32GetDatum(static_cast<int32>(id));
    default:
        return Int64GetDatum(id);
    }
}

// Value `name` of key object `key`: a nested object, NULL (nullptr), or a scalar in *value.
JsonbValue *key_value(JsonbContainer *key, const ItemColumn &c, JsonbValue *value)
{
    JsonbValue *v = getKeyJsonValueFromContainer(key, c.name, c.length, value);
    return v == nullptr || v->type == jbvNull ? nullptr : v;
}

[[noreturn]] void not_an_object(const KeyResolver *r)
{
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("a natural key of table %s is not a JSON object", get_rel_name(r->parent))));
}

} // namespace

KeyResolver *column_resolver(Relation rel, AttrNumber attnum, int depth)
{
    // A copy: the relcache's list goes with the next invalidation.
    List *fkeys = static_cast<List *>(copyObjectImpl(RelationGetFKeyList(rel)));
    ListCell *cell;
    foreach (cell, fkeys) {
        auto *fk = static_cast<ForeignKeyCacheInfo *>(lfirst(cell));
        if (fk->nkeys == 1 && fk->conkey[0] == attnum)
            return make_resolver(fk->confrelid, fk->confkey[0], depth);
    }
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("column %s of table %s is no longer a reference",
                           quote_identifier(get_attname(RelationGetRelid(rel), attnum, false)),
                           relid_name(RelationGetRelid(rel))),
                    errhint("ALTER the table, or register it again, to rebuild its plan.")));
    return nullptr;
}

KeyResolver *make_resolver(Oid parent, AttrNumber id, int depth)
{
    if (depth > kMaxNesting)
        ereport(ERROR, (errcode(ERRCODE_STATEMENT_TOO_COMPLEX),
                        errmsg("natural keys nest deeper than %d levels at table %s", kMaxNesting,
                               relid_name(parent))));
    const Registration *reg = load_registration(parent, CurrentMemoryContext);
    if (reg == nullptr || reg->nkey == 0)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("table %s is not registered for replication", relid_name(parent)),
                        errdetail("A registered table references it by its local ids.")));
    auto *r = static_cast<KeyResolver *>(palloc0(sizeof(KeyResolver)));
    r->parent = parent;
    r->id = id;
    r->nkey = reg->nkey;
    r->keys = work_array0<ItemColumn>(reg->nkey);
    // Kept locked to the end of the transaction: the key types read here must stay.
    check_before_lock(parent, ACL_SELECT);
    Relation rel = relation_open(parent, AccessShareLock);
    Oid id_type = TupleDescAttr(RelationGetDescr(rel), id - 1)->atttypid;
    if (id_type != INT2OID && id_type != INT4OID && id_type != INT8OID)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("references to column %s of table %s, of type %s, cannot be "
                               "translated",
                               quote_identifier(get_attname(parent, id, false)), relid_name(parent),
                               format_type_be(id_type)),
                        errdetail("A reference to a local id needs a smallint, integer or bigint "
                                  "id.")));
    for (int k = 0; k < reg->nkey; k++) {
        AttrNumber attnum = get_attnum(parent, reg->key_columns[k]);
        if (attnum <= 0)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                            errmsg("key column %s of table %s does not exist",
                                   quote_identifier(reg->key_columns[k]), relid_name(parent))));
        prepare_item_column(r->keys[k], TupleDescAttr(RelationGetDescr(rel), attnum - 1));
        if (registered_name_among(reg->key_columns[k], reg->reference_columns, reg->nreferences))
            r->keys[k].reference = column_resolver(rel, attnum, depth + 1);
    }
    relation_close(rel, NoLock);
    return r;
}

void open_resolver(KeyResolver *r)
{
    if (r == nullptr || r->opened)
        return;
    for (int k = 0; k < r->nkey; k++)
        open_resolver(r->keys[k].reference);
    // Kept with the resolver: callers reset their per-chunk memory between calls.
    MemoryContext caller = MemoryContextSwitchTo(GetMemoryChunkContext(r));
    r->target = open_lookup_target(r->parent, key_names(r), r->nkey, r->id);
    MemoryContextSwitchTo(caller);
    r->opened = true;
    // The lookups read the index directly; a policy hiding rows must not be passed by.
    if (r->target.row_security)
        ereport(ERROR,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                 errmsg("row-level security hides rows of table %s from role %s",
                        relid_name(r->parent), GetUserNameFromId(GetUserId(), false)),
                 errdetail("A merge resolves references through every row of the tables they "
                           "reference."),
                 errhint("Replicate as the table's owner or as a role with BYPASSRLS.")));
}

void resolve_keys(KeyResolver *r, JsonbContainer **keys, int64 n, Oid id_type, Datum *out,
                  bool *out_null, bool *waiting)
{
    // The non-NULL references of rows not yet known to wait, as rows of the parent's keys.
    int32 *row_of = work_array<int32>(n);
    int64 nrows = 0;
    for (int64 i = 0; i < n; i++) {
        out_null[i] = keys[i] == nullptr;
        out[i] = Datum(0);
        if (keys[i] != nullptr && !waiting[i]) {
            if (!JsonContainerIsObject(keys[i]))
                not_an_object(r);
            row_of[nrows++] = static_cast<int32>(i);
        }
    }
    if (nrows == 0)
        return;
    ColumnValues v = {nrows, work_array<Datum *>(r->nkey), work_array<bool *>(r->nkey)};
    JsonbContainer **nested = work_array<JsonbContainer *>(nrows);
    bool *nested_waiting = work_array0<bool>(nrows);
    for (int k = 0; k < r->nkey; k++) {
        ItemColumn &c = r->keys[k];
        v.values[k] = work_array0<Datum>(nrows);
        v.nulls[k] = work_array<bool>(nrows);
        for (int64 j = 0; j < nrows; j++) {
            JsonbValue value;
            JsonbValue *found = key_value(keys[row_of[j]], c, &value);
            if (c.reference != nullptr) {
                if (found != nullptr && found->type != jbvBinary)
                    not_an_object(c.reference);
                nested[j] = found == nullptr ? nullptr : found->val.binary.data;
            } else {
                v.nulls[k][j] = found == nullptr;
                if (found != nullptr)
                    v.values[k][j] = read_item_value(c, found);
                else
                    check_item_null(c);
            }
        }
        if (c.reference != nullptr)
            resolve_keys(c.reference, nested, nrows, c.type, v.values[k], v.nulls[k],
                         nested_waiting);
    }

    // A row whose nested key waits waits too; the others are looked up.
    int64 nprobe = 0;
    for (int64 j = 0; j < nrows; j++) {
        if (nested_waiting[j]) {
            waiting[row_of[j]] = true;
            continue;
        }
        row_of[nprobe] = row_of[j];
        for (int k = 0; k < r->nkey; k++) {
            v.values[k][nprobe] = v.values[k][j];
            v.nulls[k][nprobe] = v.nulls[k][j];
        }
        nprobe++;
    }
    v.nrows = nprobe;
    if (nprobe == 0)
        return;
    // Opened by the merge before any subtransaction, whose end would close it again.
    if (!r->opened)
        elog(ERROR, "idsync: a resolver of references to %s was not opened", relid_name(r->parent));
    RowKeys rk = group_rows(r->target, v);
    GroupIds ids = {work_array0<int64>(rk.ngroups), work_array0<IdState>(rk.ngroups)};
    int32 *groups = work_array<int32>(rk.ngroups);
    for (int64 g = 0; g < rk.ngroups; g++)
        groups[g] = static_cast<int32>(g);
    probe_groups(r->target, v, rk, groups, rk.ngroups, ids);
    for (int64 j = 0; j < nprobe; j++) {
        int32 g = rk.row_group[j];
        if (ids.state[g] == IdState::found)
            out[row_of[j]] = id_datum(ids.id[g], id_type);
        else
            waiting[row_of[j]] = true;
    }
}

Oid resolver_parent(const KeyResolver *r)
{
    return r->parent;
}

void close_resolver(KeyResolver *r)
{
    if (r == nullptr)
        return;
    for (int k = 0; k < r->nkey; k++)
        close_resolver(r->keys[k].reference);
    if (r->opened)
        close_target(r->target);
    r->opened = false;
}

} // namespace idsync
