// What `idsyncctl compare` and `repair` read on each node: a registered table's rows (and lww
// tombstones) as (key hash, row hash), the hashes every node computes alike whatever its local
// ids (references hashed as the natural keys they point at). Rows fall into buckets by the first
// bits of their key hash: two nodes first compare the per-bucket counts and hash XORs
// (compare_buckets), then only the rows of the buckets that differ (compare_rows), with their
// natural keys and items to report and re-send. Read as the caller, after
// idsync._registration's checks, with search_path pinned.
#include "boundary.hpp"
#include "insert_missing.hpp"
#include "natural_form.hpp"
#include "registration.hpp"
#include "spi_calls.hpp"
#include "state_access.hpp"

using namespace idsync;

namespace {

// The bucket of key hash `hash` (an SQL uuid expression) with $2 bits.
char *bucket_of(const char *hash)
{
    return psprintf("((('x' OPERATOR(pg_catalog.||) pg_catalog.substr(pg_catalog.replace(%s::"
                    "pg_catalog.text, '-', ''), 1, 4))::pg_catalog.bit(16)::pg_catalog.int4) "
                    "OPERATOR(pg_catalog.>>) (16 OPERATOR(pg_catalog.-) $2))",
                    hash);
}

// (kh, rh, tid) of the live rows of `relid` in `source` (the table, or a query over it whose
// column `tid` names the table's ctid): key hash, row hash and ctid.
char *row_hashes(Oid relid, const Registration *reg, const char *source, const char *tid)
{
    StringInfoData key;
    initStringInfo(&key);
    for (int k = 0; k < reg->nkey; k++)
        appendStringInfo(&key, "%sn.%s AS %s", k ? ", " : "", quote_identifier(reg->key_columns[k]),
                         quote_identifier(reg->key_columns[k]));
    char *rows =
        natural_select(relid, source, NaturalPurpose::hash, psprintf("c.%s AS idsync_ctid", tid));
    return psprintf("SELECT (SELECT idsync.row_hash(k.*, '{}'::pg_catalog.text[]) FROM (SELECT %s) "
                    "k) AS kh, idsync.row_hash(n.*, '{idsync_ctid}'::pg_catalog.text[]) AS rh, "
                    "n.idsync_ctid AS tid FROM (%s) n",
                    key.data, rows);
}

// (kh, rh) of the tombstones of `relid`.
char *tombstone_hashes(Oid relid)
{
    return psprintf("SELECT t.key_hash AS kh, idsync._tombstone_hash(t.key_hash, t.version) AS rh, "
                    "NULL::pg_catalog.tid AS tid FROM idsync.tombstones t WHERE t.relid "
                    "OPERATOR(pg_catalog.=) %u::pg_catalog.oid",
                    relid);
}

int32 bits_arg(FunctionCallInfo fcinfo, int arg)
{
    int32 bits = DatumGetInt32(required_arg(fcinfo, arg, "bits"));
    if (bits < 1 || bits > 16)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("bits must be between 1 and 16")));
    return bits;
}

// Every level of a comparison reads the same table under REPEATABLE READ (idsyncctl compare
// runs in such a transaction on each node): the table is hashed once per transaction into its
// 65,536 finest buckets, and each level, and the rows of the buckets that differ (by ctid),
// come from that. Kept for the transaction, for one table, user and snapshot command (a write
// in the transaction starts over, and so does a rolled-back subtransaction); under READ
// COMMITTED each call reads the table afresh.
constexpr int kFinest = 16;
constexpr int kBuckets = 1 << kFinest;
// Past this many rows the ctids are not kept (8 bytes a row while reading, 6 kept): the rows of
// the differing buckets are then found by reading the table again.
constexpr int64 kMaxKeptRows = 4000000;

struct TableBuckets {
    Oid relid;
    Oid user;
    CommandId command;
    int64 count[kBuckets];
    uint64 hash1[kBuckets];
    uint64 hash2[kBuckets];
    bool has_tids;
    uint32 first[kBuckets + 1]; // the ctids of bucket b: tids[first[b] .. first[b + 1] - 1]
    ItemPointerData *tids;
};

LocalTransactionId kept_lxid = InvalidLocalTransactionId;
// In kept_context, a child of TopTransactionContext: only valid while kept_lxid is current.
TableBuckets *kept = nullptr;
MemoryContext kept_context = nullptr;
bool callback_registered = false;

// Drops what is kept (in this transaction).
void forget_kept()
{
    if (kept_lxid == MyProc->lxid && kept_context != nullptr)
        MemoryContextDelete(kept_context);
    kept = nullptr;
    kept_context = nullptr;
}

// A rolled-back subtransaction may have written the rows that were read, or read them under
// locks now released: what was kept goes (whichever subtransaction it came from).
void on_subxact(SubXactEvent event, SubTransactionId, SubTransactionId, void *)
{
    if (event == SUBXACT_EVENT_ABORT_SUB)
        forget_kept();
}

uint64 uuid_half(const pg_uuid_t *uuid, int half)
{
    uint64 v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | uuid->data[half * 8 + i];
    return v;
}

int finest_bucket(const pg_uuid_t *key_hash)
{
    return (key_hash->data[0] << 8) | key_hash->data[1];
}

// Reads (key hash, row hash, ctid) of every row and tombstone of `relid` once, into `context`;
// the ctids too when `keep_tids`.
TableBuckets *read_buckets(Oid relid, const Registration *reg, MemoryContext context,
                           bool keep_tids)
{
    char *hashes = row_hashes(relid, reg, relid_name(relid), "ctid");
    if (reg->lww)
        hashes = psprintf("%s UNION ALL %s", hashes, tombstone_hashes(relid));
    auto *t = static_cast<TableBuckets *>(MemoryContextAllocZero(context, sizeof(TableBuckets)));
    t->relid = relid;
    t->user = GetUserId();
    t->command = GetActiveSnapshot()->curcid;
    t->has_tids = keep_tids;
    MemoryContext work = AllocSetContextCreate(CurrentMemoryContext, "idsync compare buckets",
                                               ALLOCSET_DEFAULT_SIZES);
    int64 kept_rows = 0, room = 0;
    uint16 *row_bucket = nullptr;
    ItemPointerData *row_tid = nullptr;
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    int pinned = pin_search_path();
    Portal cursor =
        SPI_cursor_open_with_args(nullptr, hashes, 0, nullptr, nullptr, nullptr, true, 0);
    unpin_search_path(pinned);
    for (;;) {
        SPI_cursor_fetch(cursor, true, 10000);
        if (SPI_processed == 0)
            break;
        for (uint64 r = 0; r < SPI_processed; r++) {
            HeapTuple tuple = SPI_tuptable->vals[r];
            TupleDesc desc = SPI_tuptable->tupdesc;
            bool kh_null, rh_null, tid_null;
            Datum kh = SPI_getbinval(tuple, desc, 1, &kh_null);
            Datum rh = SPI_getbinval(tuple, desc, 2, &rh_null);
            Datum tid = SPI_getbinval(tuple, desc, 3, &tid_null);
            if (kh_null || rh_null)
                continue; // cannot happen: every row has a key
            int b = finest_bucket(DatumGetUUIDP(kh));
            t->count[b]++;
            t->hash1[b] ^= uuid_half(DatumGetUUIDP(rh), 0);
            t->hash2[b] ^= uuid_half(DatumGetUUIDP(rh), 1);
            if (tid_null || !t->has_tids)
                continue;
            if (kept_rows == kMaxKeptRows) {
                t->has_tids = false;
                continue;
            }
            if (kept_rows == room) {
                room = room ? room * 2 : 65536;
                MemoryContext old = MemoryContextSwitchTo(work);
                row_bucket =
                    row_bucket
                        ? static_cast<uint16 *>(repalloc_huge(row_bucket, sizeof(uint16) * room))
                        : static_cast<uint16 *>(
                              palloc_extended(sizeof(uint16) * room, MCXT_ALLOC_HUGE));
                row_tid = row_tid ? static_cast<ItemPointerData *>(
                                        repalloc_huge(row_tid, sizeof(ItemPointerData) * room))
                                  : static_cast<ItemPointerData *>(palloc_extended(
                                        sizeof(ItemPointerData) * room, MCXT_ALLOC_HUGE));
                MemoryContextSwitchTo(old);
            }
            row_bucket[kept_rows] = static_cast<uint16>(b);
            row_tid[kept_rows] = *reinterpret_cast<ItemPointer>(DatumGetPointer(tid));
            kept_rows++;
        }
        SPI_freetuptable(SPI_tuptable);
    }
    SPI_cursor_close(cursor);
    SPI_finish();
    if (t->has_tids) {
        // Grouped by bucket (a counting sort).
        for (int64 i = 0; i < kept_rows; i++)
            t->first[row_bucket[i] + 1]++;
        for (int b = 0; b < kBuckets; b++)
            t->first[b + 1] += t->first[b];
        t->tids = static_cast<ItemPointerData *>(
            MemoryContextAllocHuge(context, sizeof(ItemPointerData) * Max(kept_rows, 1)));
        uint32 *next = static_cast<uint32 *>(palloc(sizeof(uint32) * kBuckets));
        memcpy(next, t->first, sizeof(uint32) * kBuckets);
        for (int64 i = 0; i < kept_rows; i++)
            t->tids[next[row_bucket[i]]++] = row_tid[i];
        pfree(next);
    }
    MemoryContextDelete(work);
    return t;
}

// The finest buckets of `relid`: kept for the transaction under REPEATABLE READ (with the
// ctids of the rows), else read afresh for this call (without them).
TableBuckets *table_buckets(Oid relid, const Registration *reg)
{
    if (!IsolationUsesXactSnapshot())
        return read_buckets(relid, reg, CurrentMemoryContext, false);
    if (!callback_registered) {
        RegisterSubXactCallback(on_subxact, nullptr);
        callback_registered = true;
    }
    if (kept_lxid != MyProc->lxid) { // its context went with its transaction
        kept = nullptr;
        kept_context = nullptr;
    }
    // The statement's snapshot, down to its command: a write in the transaction (or a cursor
    // opened before one) reads afresh.
    if (kept != nullptr && kept->relid == relid && kept->user == GetUserId() &&
        kept->command == GetActiveSnapshot()->curcid)
        return kept;
    forget_kept();
    MemoryContext context =
        AllocSetContextCreate(TopTransactionContext, "idsync compare kept", ALLOCSET_DEFAULT_SIZES);
    TableBuckets *t = read_buckets(relid, reg, context, true);
    kept = t;
    kept_context = context;
    kept_lxid = MyProc->lxid;
    return t;
}

// Which of the 2^bits buckets `array` (int4[], nulls ignored) names.
bool *bucket_set(Datum array, int bits)
{
    bool *set = static_cast<bool *>(palloc0(sizeof(bool) * (1 << bits)));
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(DatumGetArrayTypeP(array), INT4OID, sizeof(int32), true, TYPALIGN_INT, &elems,
                      &nulls, &n);
    for (int i = 0; i < n; i++) {
        int32 v = DatumGetInt32(elems[i]);
        if (!nulls[i] && v >= 0 && v < (1 << bits))
            set[v] = true;
    }
    return set;
}

// compare_buckets' rows from the finest buckets.
void return_buckets(FunctionCallInfo fcinfo, const TableBuckets *t, int bits, const bool *parents)
{
    int n = 1 << bits;
    int64 *count = static_cast<int64 *>(palloc0(sizeof(int64) * n));
    uint64 *h1 = static_cast<uint64 *>(palloc0(sizeof(uint64) * n));
    uint64 *h2 = static_cast<uint64 *>(palloc0(sizeof(uint64) * n));
    for (int b = 0; b < kBuckets; b++) {
        int bucket = b >> (kFinest - bits);
        count[bucket] += t->count[b];
        h1[bucket] ^= t->hash1[b];
        h2[bucket] ^= t->hash2[b];
    }
    InitMaterializedSRF(fcinfo, 0);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (int bucket = 0; bucket < n; bucket++) {
        if (count[bucket] == 0 || (parents != nullptr && !parents[bucket >> 4]))
            continue;
        Datum values[4] = {Int32GetDatum(bucket), Int64GetDatum(count[bucket]),
                           Int64GetDatum(static_cast<int64>(h1[bucket])),
                           Int64GetDatum(static_cast<int64>(h2[bucket]))};
        bool nulls[4] = {false, false, false, false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
}

// The ctids of the rows of `wanted` (buckets of `bits` bits), as a tid[].
Datum kept_tids(const TableBuckets *t, const bool *wanted, int bits)
{
    int shift = kFinest - bits;
    int64 n = 0;
    for (int b = 0; b < kBuckets; b++)
        if (wanted[b >> shift])
            n += t->first[b + 1] - t->first[b];
    Datum *elems =
        static_cast<Datum *>(palloc_extended(sizeof(Datum) * Max(n, 1), MCXT_ALLOC_HUGE));
    int64 i = 0;
    for (int b = 0; b < kBuckets; b++)
        if (wanted[b >> shift])
            for (uint32 r = t->first[b]; r < t->first[b + 1]; r++)
                elems[i++] = PointerGetDatum(&t->tids[r]);
    return PointerGetDatum(construct_array(elems, static_cast<int>(n), TIDOID,
                                           sizeof(ItemPointerData), false, TYPALIGN_SHORT));
}

} // namespace

// idsync.compare_buckets(target regclass, bits integer DEFAULT 12, parents integer[] DEFAULT
// NULL) RETURNS TABLE (bucket integer, row_count bigint, hash1 bigint, hash2 bigint): per bucket
// of the first `bits` bits of the key hash, the rows (and lww tombstones) and the XOR of their
// hashes; buckets without rows are left out. With `parents`, only the buckets within those
// buckets of `bits` - 4 bits (the next level of a comparison).
IDSYNC_FUNCTION(idsync_compare_buckets)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    int32 bits = bits_arg(fcinfo, 1);
    require_replicable(relid);
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    return_buckets(fcinfo, table_buckets(relid, reg), bits,
                   PG_ARGISNULL(2) ? nullptr : bucket_set(PG_GETARG_DATUM(2), Max(bits - 4, 0)));
    return Datum(0);
}

// idsync.compare_rows(target regclass, buckets integer[], bits integer DEFAULT 12) RETURNS TABLE
// (key_hash uuid, row_hash uuid, key jsonb, item jsonb, origin uuid): the rows (and lww
// tombstones) of those buckets: their hashes, natural keys, items as items_since gives them
// (tombstones with their marker) and the node that wrote them.
IDSYNC_FUNCTION(idsync_compare_rows)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    Datum buckets = required_arg(fcinfo, 1, "buckets");
    int32 bits = bits_arg(fcinfo, 2);
    require_replicable(relid);
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    StringInfoData key;
    initStringInfo(&key);
    for (int k = 0; k < reg->nkey; k++)
        appendStringInfo(&key, "%s%s, j.%s", k ? ", " : "", quote_literal_cstr(reg->key_columns[k]),
                         quote_identifier(reg->key_columns[k]));
    char *source = psprintf("(SELECT s.*, s.ctid AS idsync_ctid FROM %s s WHERE s.ctid "
                            "OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT h.tid FROM h)))",
                            relid_name(relid));
    char *json = natural_select(relid, source, NaturalPurpose::json,
                                "c.idsync_ctid, COALESCE(c.idsync_origin, $3) AS idsync_from");
    // Under REPEATABLE READ, the ctids of the rows of those buckets are known (table_buckets):
    // only those rows are read and hashed ($4); else the whole table is.
    TableBuckets *t = IsolationUsesXactSnapshot() ? table_buckets(relid, reg) : nullptr;
    bool by_tid = t != nullptr && t->has_tids;
    char *hashed = by_tid ? row_hashes(relid, reg,
                                       psprintf("(SELECT s.*, s.ctid AS idsync_tid FROM %s s WHERE "
                                                "s.ctid OPERATOR(pg_catalog.=) ANY ($4))",
                                                relid_name(relid)),
                                       "idsync_tid")
                          : row_hashes(relid, reg, relid_name(relid), "ctid");
    Datum tids = by_tid ? kept_tids(t, bucket_set(buckets, bits), bits) : Datum(0);
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfo(
        &sql,
        "WITH h AS (SELECT r.* FROM (%s) r WHERE %s OPERATOR(pg_catalog.=) ANY ($1)) "
        "SELECT h.kh, h.rh, pg_catalog.jsonb_build_object(%s), pg_catalog.to_jsonb(j.*) "
        "OPERATOR(pg_catalog.-) 'idsync_ctid'::pg_catalog.text "
        "OPERATOR(pg_catalog.-) 'idsync_from'::pg_catalog.text, j.idsync_from "
        "FROM h JOIN (%s) j ON j.idsync_ctid OPERATOR(pg_catalog.=) h.tid",
        hashed, bucket_of("r.kh"), key.data, json);
    if (reg->lww)
        appendStringInfo(
            &sql,
            " UNION ALL SELECT t.key_hash, idsync._tombstone_hash(t.key_hash, t.version), t.key, "
            "t.key OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(%s::pg_catalog.text, "
            "t.version, %s::pg_catalog.text, true), COALESCE(t.origin, $3) FROM idsync.tombstones "
            "t "
            "WHERE t.relid OPERATOR(pg_catalog.=) %u::pg_catalog.oid AND %s OPERATOR(pg_catalog.=) "
            "ANY ($1)",
            quote_literal_cstr(reg->version_column), quote_literal_cstr(reg->tombstone_column),
            relid, bucket_of("t.key_hash"));
    pg_uuid_t node = this_node();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    Oid types[4] = {INT4ARRAYOID, INT4OID, UUIDOID, TIDARRAYOID};
    Datum values[4] = {buckets, Int32GetDatum(bits), UUIDPGetDatum(&node), tids};
    run_pinned(sql.data, by_tid ? 4 : 3, types, values, nullptr, true, 0);
    return_spi_rows(fcinfo);
    SPI_finish();
    return Datum(0);
}
