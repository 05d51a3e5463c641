#include "row_hash.hpp"

#include "boundary.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

constexpr uint64 kSeed1 = UINT64CONST(0x1d5c0de5eed00001);
constexpr uint64 kSeed2 = UINT64CONST(0x9e3779b97f4a7c15);
constexpr uint32 kNullMarker = 0xffffffff;

struct NamedColumn {
    const char *name;
    AttrNumber attnum;
};

int compare_names(const void *a, const void *b)
{
    return strcmp(static_cast<const NamedColumn *>(a)->name,
                  static_cast<const NamedColumn *>(b)->name);
}

bool is_excluded(const char *name, char **excluded, int nexcluded)
{
    for (int i = 0; i < nexcluded; i++)
        if (strcmp(name, excluded[i]) == 0)
            return true;
    return false;
}

} // namespace

HashPlan *build_hash_plan(TupleDesc desc, char **excluded, int nexcluded)
{
    NamedColumn *columns = work_array<NamedColumn>(desc->natts);
    int n = 0;
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (att->attisdropped || att->attgenerated ||
            is_excluded(NameStr(att->attname), excluded, nexcluded))
            continue;
        columns[n++] = {NameStr(att->attname), (AttrNumber)(i + 1)};
    }
    qsort(columns, n, sizeof(NamedColumn), compare_names);

    HashPlan *plan = static_cast<HashPlan *>(palloc(sizeof(HashPlan)));
    plan->ncolumns = n;
    plan->attnums = work_array<AttrNumber>(n);
    plan->send = work_array<FmgrInfo>(n);
    for (int c = 0; c < n; c++) {
        Oid send;
        bool varlena;
        plan->attnums[c] = columns[c].attnum;
        getTypeBinaryOutputInfo(TupleDescAttr(desc, columns[c].attnum - 1)->atttypid, &send,
                                &varlena);
        fmgr_info(send, &plan->send[c]);
    }
    return plan;
}

HashPlan *build_hash_plan(TupleDesc desc, ArrayType *excluded)
{
    Datum *names = nullptr;
    bool *nulls = nullptr;
    int n = 0;
    if (excluded != nullptr)
        deconstruct_array(excluded, TEXTOID, -1, false, TYPALIGN_INT, &names, &nulls, &n);
    char **strings = work_array<char *>(Max(n, 1));
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (!nulls[i])
            strings[kept++] = TextDatumGetCString(names[i]);
    return build_hash_plan(desc, strings, kept);
}

RowHash hash_sent(int n, bytea *const *sent)
{
    uint64 h1 = kSeed1, h2 = kSeed2;
    for (int c = 0; c < n; c++) {
        if (sent[c] == nullptr) {
            h1 = hash_bytes_uint32_extended(kNullMarker, h1);
            h2 = hash_bytes_uint32_extended(kNullMarker, h2);
            continue;
        }
        int len = VARSIZE(sent[c]) - VARHDRSZ;
        const unsigned char *data = reinterpret_cast<const unsigned char *>(VARDATA(sent[c]));
        h1 = hash_bytes_extended(data, len, hash_bytes_uint32_extended((uint32)len, h1));
        h2 = hash_bytes_extended(data, len, hash_bytes_uint32_extended((uint32)len, h2));
    }
    return {h1, h2};
}

RowHash hash_row(const HashPlan *plan, const Datum *values, const bool *nulls)
{
    uint64 h1 = kSeed1, h2 = kSeed2;
    for (int c = 0; c < plan->ncolumns; c++) {
        int at = plan->attnums[c] - 1;
        if (nulls[at]) {
            h1 = hash_bytes_uint32_extended(kNullMarker, h1);
            h2 = hash_bytes_uint32_extended(kNullMarker, h2);
            continue;
        }
        bytea *sent = SendFunctionCall(&plan->send[c], values[at]);
        int len = VARSIZE(sent) - VARHDRSZ;
        const unsigned char *data = reinterpret_cast<const unsigned char *>(VARDATA(sent));
        h1 = hash_bytes_extended(data, len, hash_bytes_uint32_extended((uint32)len, h1));
        h2 = hash_bytes_extended(data, len, hash_bytes_uint32_extended((uint32)len, h2));
        pfree(sent);
    }
    return {h1, h2};
}

void deform_record(HeapTupleHeader record, TupleDesc desc, Datum **values, bool **nulls)
{
    HeapTupleData tuple;
    tuple.t_len = HeapTupleHeaderGetDatumLength(record);
    ItemPointerSetInvalid(&tuple.t_self);
    tuple.t_tableOid = InvalidOid;
    tuple.t_data = record;
    *values = work_array<Datum>(desc->natts);
    *nulls = work_array<bool>(desc->natts);
    heap_deform_tuple(&tuple, desc, *values, *nulls);
}

Datum hash_as_uuid(RowHash h)
{
    pg_uuid_t *u = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
    for (int i = 0; i < 8; i++) {
        u->data[i] = (unsigned char)(h.h1 >> (56 - 8 * i));
        u->data[8 + i] = (unsigned char)(h.h2 >> (56 - 8 * i));
    }
    return UUIDPGetDatum(u);
}

} // namespace idsync

namespace {

// Cached across calls of one expression: the plan for the last row type seen.
struct RowHashCache {
    Oid type;
    int32 typmod;
    TupleDesc desc;
    idsync::HashPlan *plan;
};

} // namespace

// idsync.row_hash(row record, excluded text[]): the hash of one row, as a uuid. Merges use it
// to break ties between equal versions the same way on every node.
IDSYNC_FUNCTION(idsync_row_hash)
{
    if (PG_ARGISNULL(0))
        PG_RETURN_NULL();
    HeapTupleHeader row = PG_GETARG_HEAPTUPLEHEADER(0);
    Oid type = HeapTupleHeaderGetTypeId(row);
    int32 typmod = HeapTupleHeaderGetTypMod(row);

    auto *cache = static_cast<RowHashCache *>(fcinfo->flinfo->fn_extra);
    if (cache == nullptr || cache->type != type || cache->typmod != typmod) {
        MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
        cache = static_cast<RowHashCache *>(palloc(sizeof(RowHashCache)));
        cache->type = type;
        cache->typmod = typmod;
        // The plan comes from the row type itself, which still marks generated columns; the
        // copy kept for deforming does not.
        TupleDesc rowdesc = lookup_rowtype_tupdesc(type, typmod);
        cache->plan =
            idsync::build_hash_plan(rowdesc, PG_ARGISNULL(1) ? nullptr : PG_GETARG_ARRAYTYPE_P(1));
        cache->desc = CreateTupleDescCopy(rowdesc);
        ReleaseTupleDesc(rowdesc);
        MemoryContextSwitchTo(old);
        fcinfo->flinfo->fn_extra = cache;
    }

    Datum *values;
    bool *nulls;
    idsync::deform_record(row, cache->desc, &values, &nulls);
    return idsync::hash_as_uuid(idsync::hash_row(cache->plan, values, nulls));
}

// idsync.table_hash(target regclass, excluded text[]): row count and content hash recomputed
// from every row, to check the incrementally maintained ones.
IDSYNC_FUNCTION(idsync_table_hash)
{
    Oid relid = PG_GETARG_OID(0);
    // Kind, privilege and row-level security from the catalogs, before the table is locked: a
    // view or sequence has no rows to scan here, and a hash over rows the caller may not see
    // would tell their content.
    char kind = get_rel_relkind(relid);
    if (kind == '\0')
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("relation with OID %u does not exist", relid)));
    if (kind != RELKIND_RELATION && kind != RELKIND_MATVIEW)
        ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                        errmsg("\"%s\" is not a table", get_rel_name(relid)),
                        errdetail("table_hash reads ordinary tables and materialized views.")));
    if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
        aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(kind), get_rel_name(relid));
    if (check_enable_rls(relid, InvalidOid, false) == RLS_ENABLED)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("row-level security hides rows of \"%s\" from this role",
                               get_rel_name(relid)),
                        errdetail("A content hash covers every row."),
                        errhint("Compute it as the table's owner or a role with BYPASSRLS.")));
    Relation rel = table_open(relid, AccessShareLock);
    idsync::HashPlan *plan = idsync::build_hash_plan(
        RelationGetDescr(rel), PG_ARGISNULL(1) ? nullptr : PG_GETARG_ARRAYTYPE_P(1));

    uint64 h1 = 0, h2 = 0;
    int64 rows = 0;
    MemoryContext per_row = AllocSetContextCreate(CurrentMemoryContext, "idsync table_hash row",
                                                  ALLOCSET_DEFAULT_SIZES);
    TupleTableSlot *slot = table_slot_create(rel, nullptr);
    TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, nullptr);
    while (table_scan_getnextslot(scan, ForwardScanDirection, slot)) {
        MemoryContext old = MemoryContextSwitchTo(per_row);
        slot_getallattrs(slot);
        idsync::RowHash h = idsync::hash_row(plan, slot->tts_values, slot->tts_isnull);
        MemoryContextSwitchTo(old);
        MemoryContextReset(per_row);
        h1 ^= h.h1;
        h2 ^= h.h2;
        rows++;
        CHECK_FOR_INTERRUPTS();
    }
    table_endscan(scan);
    ExecDropSingleTupleTableSlot(slot);
    table_close(rel, AccessShareLock);

    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("table_hash must be called in a context that accepts a record")));
    Datum values[3] = {Int64GetDatum(rows), Int64GetDatum((int64)h1), Int64GetDatum((int64)h2)};
    bool nulls[3] = {false, false, false};
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
