#include "natural_hash.hpp"

#include "boundary.hpp"
#include "natural_key.hpp"
#include "state_access.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

void free_plans(void *arg)
{
    auto *h = static_cast<NaturalHash *>(arg);
    for (int r = 0; r < h->nrefs; r++)
        if (h->prepared[r] != nullptr) {
            SPI_freeplan(h->prepared[r]);
            h->prepared[r] = nullptr;
        }
}

} // namespace

NaturalHash *natural_hash(Relation rel, const Registration *reg, MemoryContext context)
{
    MemoryContext caller = MemoryContextSwitchTo(context);
    TupleDesc desc = RelationGetDescr(rel);
    auto *h = static_cast<NaturalHash *>(palloc0(sizeof(NaturalHash)));
    h->natts = desc->natts;
    h->plan = registration_hash_plan(rel, reg, context);
    h->nrefs = reg->nreferences;
    h->attnums = work_array<AttrNumber>(h->nrefs);
    h->types = work_array<Oid>(h->nrefs);
    h->queries = work_array<const char *>(h->nrefs);
    h->prepared = work_array0<SPIPlanPtr>(h->nrefs);
    h->parents = work_array0<Oid>(h->nrefs);
    h->parent_attnums = work_array0<AttrNumber>(h->nrefs);
    List *fkeys = RelationGetFKeyList(rel);
    for (int r = 0; r < h->nrefs; r++) {
        const char *column = reg->reference_columns[r];
        h->attnums[r] = SPI_fnumber(desc, column);
        if (h->attnums[r] <= 0)
            elog(ERROR, "idsync: reference column \"%s\" of \"%s\" does not exist", column,
                 RelationGetRelationName(rel));
        h->types[r] = TupleDescAttr(desc, h->attnums[r] - 1)->atttypid;
        h->queries[r] = pstrdup(reg->reference_queries[r]);
        ListCell *lc;
        foreach (lc, fkeys) {
            auto *fk = static_cast<ForeignKeyCacheInfo *>(lfirst(lc));
            if (fk->nkeys == 1 && fk->conkey[0] == h->attnums[r]) {
                h->parents[r] = fk->confrelid;
                h->parent_attnums[r] = fk->confkey[0];
            }
        }
        for (int c = 0; c < h->plan->ncolumns; c++)
            if (h->plan->attnums[c] == h->attnums[r])
                fmgr_info_cxt(F_UUID_SEND, &h->plan->send[c], context);
    }
    // The lookups' plans are kept (SPI_keepplan) until `context` goes, also when an error ends
    // the statement first.
    auto *callback = static_cast<MemoryContextCallback *>(palloc0(sizeof(MemoryContextCallback)));
    callback->func = free_plans;
    callback->arg = h;
    MemoryContextRegisterResetCallback(context, callback);
    MemoryContextSwitchTo(caller);
    return h;
}

bool deleted_reference_hash(const NaturalHash *h, int ref, int64 id, pg_uuid_t *out)
{
    NaturalKey key;
    if (h->parents[ref] == InvalidOid ||
        !deleted_key(h->parents[ref], h->parent_attnums[ref], id, &key))
        return false;
    RowHash k = key.hash;
    for (int i = 0; i < 8; i++) {
        out->data[i] = (unsigned char)(k.h1 >> (56 - 8 * i));
        out->data[8 + i] = (unsigned char)(k.h2 >> (56 - 8 * i));
    }
    return true;
}

int64 reference_id(Datum value, Oid type)
{
    return type == INT8OID   ? DatumGetInt64(value)
           : type == INT4OID ? DatumGetInt32(value)
                             : DatumGetInt16(value);
}

RowHash natural_row_hash(NaturalHash *h, const Datum *values, const bool *nulls)
{
    int natts = h->natts;
    Datum *row = work_array<Datum>(natts);
    bool *row_nulls = work_array<bool>(natts);
    memcpy(row, values, sizeof(Datum) * natts);
    memcpy(row_nulls, nulls, sizeof(bool) * natts);
    pg_uuid_t *keys = work_array<pg_uuid_t>(h->nrefs);

    int pinned = pin_search_path();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    for (int r = 0; r < h->nrefs; r++) {
        int at = h->attnums[r] - 1;
        if (row_nulls[at])
            continue;
        if (h->prepared[r] == nullptr) {
            Oid types[1] = {INT8ARRAYOID};
            SPIPlanPtr plan = SPI_prepare(h->queries[r], 1, types);
            if (plan == nullptr || SPI_keepplan(plan) != 0)
                elog(ERROR, "idsync: preparing a natural-key lookup failed");
            h->prepared[r] = plan;
        }
        Datum id = Int64GetDatum(reference_id(row[at], h->types[r]));
        Datum args[1] = {
            PointerGetDatum(construct_array(&id, 1, INT8OID, 8, true, TYPALIGN_DOUBLE))};
        // Not read-only: a fresh snapshot, as the content trigger's lookups.
        if (SPI_execute_plan(h->prepared[r], args, nullptr, false, 1) != SPI_OK_SELECT)
            elog(ERROR, "idsync: looking up the natural key of a referenced row failed");
        bool null_hash = true;
        Datum hash = SPI_processed == 0 ? Datum(0)
                                        : SPI_getbinval(SPI_tuptable->vals[0],
                                                        SPI_tuptable->tupdesc, 2, &null_hash);
        if (null_hash &&
            deleted_reference_hash(h, r, reference_id(row[at], h->types[r]), &keys[r])) {
            row[at] = UUIDPGetDatum(&keys[r]);
            continue;
        }
        row_nulls[at] = null_hash;
        if (!null_hash) {
            keys[r] = *DatumGetUUIDP(hash);
            row[at] = UUIDPGetDatum(&keys[r]);
        }
    }
    SPI_finish();
    unpin_search_path(pinned);
    return hash_row(h->plan, row, row_nulls);
}

} // namespace idsync

using namespace idsync;

namespace {

// What idsync._natural_row_hash keeps across the calls of one expression.
struct NaturalHashCache {
    Oid relid;
    Oid type;
    int32 typmod;
    TupleDesc desc;    // the record's
    AttrNumber *moved; // per record attribute: the table's attribute of that name, or 0
    NaturalHash *hash;
};

NaturalHashCache *make_cache(FunctionCallInfo fcinfo, Oid relid, Oid type, int32 typmod)
{
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    if (reg == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("table with OID %u is not registered for replication", relid)));
    MemoryContext context = fcinfo->flinfo->fn_mcxt;
    auto *cache =
        static_cast<NaturalHashCache *>(MemoryContextAllocZero(context, sizeof(NaturalHashCache)));
    cache->relid = relid;
    cache->type = type;
    cache->typmod = typmod;
    Relation rel = relation_open(relid, AccessShareLock);
    cache->hash = natural_hash(rel, reg, context);
    TupleDesc rowdesc = lookup_rowtype_tupdesc(type, typmod);
    MemoryContext caller = MemoryContextSwitchTo(context);
    cache->desc = CreateTupleDescCopy(rowdesc);
    cache->moved = work_array0<AttrNumber>(rowdesc->natts);
    MemoryContextSwitchTo(caller);
    TupleDesc table = RelationGetDescr(rel);
    for (int i = 0; i < rowdesc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(rowdesc, i);
        if (att->attisdropped)
            continue;
        AttrNumber attnum = get_attnum(relid, NameStr(att->attname));
        if (attnum <= 0)
            continue;
        // Hashed with the table column's send function: the types must be the same.
        Oid expected = TupleDescAttr(table, attnum - 1)->atttypid;
        if (att->atttypid != expected)
            ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                            errmsg("column \"%s\" of the row has type %s, but column \"%s\" of "
                                   "\"%s\" has type %s",
                                   NameStr(att->attname), format_type_be(att->atttypid),
                                   NameStr(att->attname), RelationGetRelationName(rel),
                                   format_type_be(expected))));
        cache->moved[i] = attnum;
    }
    ReleaseTupleDesc(rowdesc);
    relation_close(rel, NoLock);
    return cache;
}

} // namespace

// idsync._natural_row_hash(target regclass, row record) RETURNS uuid: the row hash of `row` as
// a row of `target` (its columns taken by name), translated references hashed as the natural
// keys they point at: the hash lww merges break version ties with.
IDSYNC_FUNCTION(idsync_natural_row_hash)
{
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        PG_RETURN_NULL();
    Oid relid = PG_GETARG_OID(0);
    HeapTupleHeader record = PG_GETARG_HEAPTUPLEHEADER(1);
    Oid type = HeapTupleHeaderGetTypeId(record);
    int32 typmod = HeapTupleHeaderGetTypMod(record);
    auto *cache = static_cast<NaturalHashCache *>(fcinfo->flinfo->fn_extra);
    if (cache == nullptr || cache->relid != relid || cache->type != type ||
        cache->typmod != typmod) {
        cache = make_cache(fcinfo, relid, type, typmod);
        fcinfo->flinfo->fn_extra = cache;
    }
    Datum *fields;
    bool *field_nulls;
    deform_record(record, cache->desc, &fields, &field_nulls);
    int natts = cache->hash->natts;
    Datum *values = work_array0<Datum>(natts);
    bool *nulls = work_array<bool>(natts);
    memset(nulls, true, sizeof(bool) * natts);
    for (int i = 0; i < cache->desc->natts; i++)
        if (cache->moved[i] > 0) {
            values[cache->moved[i] - 1] = fields[i];
            nulls[cache->moved[i] - 1] = field_nulls[i];
        }
    return hash_as_uuid(natural_row_hash(cache->hash, values, nulls));
}
