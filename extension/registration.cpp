#include "registration.hpp"

#include "boundary.hpp"
#include "state_access.hpp"

namespace idsync {

namespace {

// The value of column `name` of a row of idsync.tables; nullptr when the column is NULL or
// does not exist (a schema older than the library).
const Datum *column(HeapTuple row, TupleDesc desc, Oid tables, const char *name, Datum *value)
{
    AttrNumber attnum = get_attnum(tables, name);
    if (attnum == InvalidAttrNumber)
        return nullptr;
    bool isnull;
    *value = heap_getattr(row, attnum, desc, &isnull);
    return isnull ? nullptr : value;
}

char *text_column(HeapTuple row, TupleDesc desc, Oid tables, const char *name,
                  MemoryContext context)
{
    Datum value;
    if (column(row, desc, tables, name, &value) == nullptr)
        return nullptr;
    Oid type = TupleDescAttr(desc, get_attnum(tables, name) - 1)->atttypid;
    const char *string =
        type == NAMEOID ? NameStr(*DatumGetName(value)) : TextDatumGetCString(value);
    return MemoryContextStrdup(context, string);
}

// A name[] or text[] column as C strings in `context`; returns how many.
int array_column(HeapTuple row, TupleDesc desc, Oid tables, const char *name, MemoryContext context,
                 char ***out)
{
    *out = nullptr;
    Datum value;
    if (column(row, desc, tables, name, &value) == nullptr)
        return 0;
    ArrayType *array = DatumGetArrayTypeP(value);
    Oid element = ARR_ELEMTYPE(array);
    int16 typlen;
    bool byval;
    char align;
    get_typlenbyvalalign(element, &typlen, &byval, &align);
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(array, element, typlen, byval, align, &elems, &nulls, &n);
    *out = static_cast<char **>(MemoryContextAllocZero(context, sizeof(char *) * Max(n, 1)));
    for (int i = 0; i < n; i++)
        if (!nulls[i])
            (*out)[i] =
                MemoryContextStrdup(context, element == NAMEOID ? NameStr(*DatumGetName(elems[i]))
                                                                : TextDatumGetCString(elems[i]));
    return n;
}

// The registrations read so far, each in a context of its own under CacheMemoryContext.
struct CacheEntry {
    Oid relid; // hash key
    Registration *reg;
    HashPlan *hash_plan; // built on first use
    MemoryContext context;
};
HTAB *cache = nullptr;

void forget_entry(CacheEntry *entry)
{
    MemoryContextDelete(entry->context);
    hash_search(cache, &entry->relid, HASH_REMOVE, nullptr);
}

void on_relcache_invalidation(Datum, Oid relid)
{
    if (cache == nullptr)
        return;
    if (OidIsValid(relid)) {
        auto *entry = static_cast<CacheEntry *>(hash_search(cache, &relid, HASH_FIND, nullptr));
        if (entry != nullptr)
            forget_entry(entry);
        return;
    }
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, cache);
    while (auto *entry = static_cast<CacheEntry *>(hash_seq_search(&status)))
        forget_entry(entry);
}

char **copy_strings(char **strings, int n, MemoryContext context)
{
    if (strings == nullptr)
        return nullptr;
    auto **out = static_cast<char **>(MemoryContextAllocZero(context, sizeof(char *) * Max(n, 1)));
    for (int i = 0; i < n; i++)
        out[i] = strings[i] == nullptr ? nullptr : MemoryContextStrdup(context, strings[i]);
    return out;
}

const char *copy_string(const char *string, MemoryContext context)
{
    return string == nullptr ? nullptr : MemoryContextStrdup(context, string);
}

Registration *copy_registration(const Registration *reg, MemoryContext context)
{
    auto *copy = static_cast<Registration *>(MemoryContextAlloc(context, sizeof(Registration)));
    *copy = *reg;
    copy->point_column = copy_string(reg->point_column, context);
    copy->version_column = copy_string(reg->version_column, context);
    copy->tombstone_column = copy_string(reg->tombstone_column, context);
    copy->local_columns = copy_strings(reg->local_columns, reg->nlocal, context);
    copy->key_columns = copy_strings(reg->key_columns, reg->nkey, context);
    copy->reference_columns = copy_strings(reg->reference_columns, reg->nreferences, context);
    copy->reference_queries = copy_strings(reg->reference_queries, reg->nreferences, context);
    return copy;
}

// Read straight from idsync.tables through its primary key, with a fresh snapshot (as catalog
// lookups are): no SQL is parsed for it.
Registration *read_registration(Oid relid, MemoryContext context)
{
    Oid nsp = get_namespace_oid("idsync", false);
    Oid tables = get_relname_relid("tables", nsp);
    Oid pkey = get_relname_relid("tables_pkey", nsp);
    if (!OidIsValid(tables) || !OidIsValid(pkey))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("idsync.tables does not exist"),
                        errhint("Update the extension: ALTER EXTENSION idsync UPDATE.")));
    Relation rel = table_open(tables, AccessShareLock);
    TupleDesc desc = RelationGetDescr(rel);
    ScanKeyData key;
    ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    SysScanDesc scan = systable_beginscan(rel, pkey, true, snapshot, 1, &key);
    Registration *reg = nullptr;
    HeapTuple row = systable_getnext(scan);
    if (HeapTupleIsValid(row)) {
        reg = static_cast<Registration *>(MemoryContextAllocZero(context, sizeof(Registration)));
        reg->relid = relid;
        char *mode = text_column(row, desc, tables, "mode", context);
        reg->lww = mode != nullptr && strcmp(mode, "lww") == 0;
        reg->point_column = text_column(row, desc, tables, "point_column", context);
        reg->version_column = text_column(row, desc, tables, "version_column", context);
        reg->tombstone_column = text_column(row, desc, tables, "tombstone_column", context);
        reg->nlocal =
            array_column(row, desc, tables, "local_columns", context, &reg->local_columns);
        reg->nkey = array_column(row, desc, tables, "key_columns", context, &reg->key_columns);
        // Before ALTER EXTENSION idsync UPDATE to 0.5.0 (the library is newer than the schema)
        // there are no reference queries: tables with references refuse writes until the
        // update (content_trigger.cpp), since their old triggers kept SQL in their arguments.
        reg->schema_outdated = get_attnum(tables, "reference_columns") == InvalidAttrNumber;
        int ncolumns =
            array_column(row, desc, tables, "reference_columns", context, &reg->reference_columns);
        int nqueries =
            array_column(row, desc, tables, "reference_queries", context, &reg->reference_queries);
        reg->nreferences = Min(ncolumns, nqueries);
        AttrNumber kept = get_attnum(tables, "conflicts_kept");
        if (kept != InvalidAttrNumber) {
            bool isnull;
            Datum value = heap_getattr(row, kept, desc, &isnull);
            reg->conflicts_kept = isnull ? 0 : DatumGetInt32(value);
        }
    }
    systable_endscan(scan);
    UnregisterSnapshot(snapshot);
    table_close(rel, AccessShareLock);
    return reg;
}

} // namespace

bool registered_name_among(const char *name, char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (names[i] != nullptr && strcmp(names[i], name) == 0)
            return true;
    return false;
}

const Registration *load_registration(Oid relid, MemoryContext context)
{
    if (cache == nullptr) {
        HASHCTL info = {};
        info.keysize = sizeof(Oid);
        info.entrysize = sizeof(CacheEntry);
        cache = hash_create("idsync registrations", 64, &info, HASH_ELEM | HASH_BLOBS);
    }
    auto *entry = static_cast<CacheEntry *>(hash_search(cache, &relid, HASH_FIND, nullptr));
    if (entry == nullptr) {
        // Read first, then enter: an invalidation while reading must not leave a half entry.
        MemoryContext own =
            AllocSetContextCreate(CacheMemoryContext, "idsync registration", ALLOCSET_SMALL_SIZES);
        Registration *reg = read_registration(relid, own);
        if (reg == nullptr) {
            MemoryContextDelete(own);
            return nullptr;
        }
        entry = static_cast<CacheEntry *>(hash_search(cache, &relid, HASH_ENTER, nullptr));
        entry->reg = reg;
        entry->hash_plan = nullptr;
        entry->context = own;
    }
    // A copy: the cached one may go at the next invalidation, in the middle of a statement.
    return copy_registration(entry->reg, context);
}

namespace {

HashPlan *copy_hash_plan(const HashPlan *plan, MemoryContext context)
{
    auto *copy = static_cast<HashPlan *>(MemoryContextAlloc(context, sizeof(HashPlan)));
    copy->ncolumns = plan->ncolumns;
    copy->attnums = static_cast<AttrNumber *>(
        MemoryContextAlloc(context, sizeof(AttrNumber) * Max(plan->ncolumns, 1)));
    copy->send = static_cast<FmgrInfo *>(
        MemoryContextAlloc(context, sizeof(FmgrInfo) * Max(plan->ncolumns, 1)));
    for (int c = 0; c < plan->ncolumns; c++) {
        copy->attnums[c] = plan->attnums[c];
        fmgr_info_copy(&copy->send[c], &plan->send[c], context);
    }
    return copy;
}

CacheEntry *find_entry(Oid relid)
{
    return cache == nullptr
               ? nullptr
               : static_cast<CacheEntry *>(hash_search(cache, &relid, HASH_FIND, nullptr));
}

} // namespace

HashPlan *registration_hash_plan(Relation rel, const Registration *reg, MemoryContext context)
{
    Oid relid = RelationGetRelid(rel);
    CacheEntry *entry = find_entry(relid);
    if (entry != nullptr && entry->hash_plan != nullptr)
        return copy_hash_plan(entry->hash_plan, context);
    // Built in the caller's memory: the catalog lookups on the way may take an invalidation
    // that forgets the entry (and its context). Kept only if the entry is still there.
    MemoryContext caller = MemoryContextSwitchTo(context);
    HashPlan *plan = build_hash_plan(RelationGetDescr(rel), reg->local_columns, reg->nlocal);
    MemoryContextSwitchTo(caller);
    entry = find_entry(relid);
    if (entry != nullptr && entry->hash_plan == nullptr)
        entry->hash_plan = copy_hash_plan(plan, entry->context);
    return plan;
}

void registration_changed(Oid relid)
{
    if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
        CacheInvalidateRelcacheByRelid(relid);
    else
        on_relcache_invalidation(Datum(0), relid);
}

void register_registration_cache()
{
    CacheRegisterRelcacheCallback(on_relcache_invalidation, Datum(0));
}

const Registration *trigger_registration(TriggerData *td, MemoryContext context,
                                         const char *function)
{
    const Registration *reg = load_registration(RelationGetRelid(td->tg_relation), context);
    if (reg == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("%s fired on table \"%s\", which is not registered for replication",
                               function, RelationGetRelationName(td->tg_relation)),
                        errhint("idsync's triggers are attached by idsync.replicate() only.")));
    return reg;
}

} // namespace idsync
