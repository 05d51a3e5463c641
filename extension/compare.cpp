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

// (kh, rh, tid) of the live rows of `relid`: key hash, row hash and ctid.
char *row_hashes(Oid relid, const Registration *reg)
{
    StringInfoData key;
    initStringInfo(&key);
    for (int k = 0; k < reg->nkey; k++)
        appendStringInfo(&key, "%sn.%s AS %s", k ? ", " : "", quote_identifier(reg->key_columns[k]),
                         quote_identifier(reg->key_columns[k]));
    char *rows =
        natural_select(relid, relid_name(relid), NaturalPurpose::hash, "c.ctid AS idsync_ctid");
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
    char *hashes = row_hashes(relid, reg);
    if (reg->lww)
        hashes = psprintf("%s UNION ALL %s", hashes, tombstone_hashes(relid));
    char *sql = psprintf(
        "SELECT %s AS bucket, pg_catalog.count(*)::pg_catalog.int8, "
        "COALESCE(pg_catalog.bit_xor(('x' OPERATOR(pg_catalog.||) pg_catalog.\"left\"(x.h, 16))"
        "::pg_catalog.\"bit\"(64)::pg_catalog.int8), 0), "
        "COALESCE(pg_catalog.bit_xor(('x' OPERATOR(pg_catalog.||) pg_catalog.\"right\"(x.h, 16))"
        "::pg_catalog.\"bit\"(64)::pg_catalog.int8), 0) "
        "FROM (SELECT r.kh, pg_catalog.replace(r.rh::pg_catalog.text, '-', '') AS h FROM (%s) r) x "
        "WHERE $1 IS NULL OR (%s OPERATOR(pg_catalog.>>) 4) OPERATOR(pg_catalog.=) ANY ($1) "
        "GROUP BY 1 ORDER BY 1",
        bucket_of("x.kh"), hashes, bucket_of("x.kh"));
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    Oid types[2] = {INT4ARRAYOID, INT4OID};
    Datum values[2] = {PG_ARGISNULL(2) ? Datum(0) : PG_GETARG_DATUM(2), Int32GetDatum(bits)};
    char nulls[3] = {PG_ARGISNULL(2) ? 'n' : ' ', ' ', '\0'};
    run_pinned(sql, 2, types, values, nulls, true, 0);
    return_spi_rows(fcinfo);
    SPI_finish();
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
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfo(
        &sql,
        "WITH h AS (SELECT r.* FROM (%s) r WHERE %s OPERATOR(pg_catalog.=) ANY ($1)) "
        "SELECT h.kh, h.rh, pg_catalog.jsonb_build_object(%s), pg_catalog.to_jsonb(j.*) "
        "OPERATOR(pg_catalog.-) 'idsync_ctid'::pg_catalog.text "
        "OPERATOR(pg_catalog.-) 'idsync_from'::pg_catalog.text, j.idsync_from "
        "FROM h JOIN (%s) j ON j.idsync_ctid OPERATOR(pg_catalog.=) h.tid",
        row_hashes(relid, reg), bucket_of("r.kh"), key.data, json);
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
    Oid types[3] = {INT4ARRAYOID, INT4OID, UUIDOID};
    Datum values[3] = {buckets, Int32GetDatum(bits), UUIDPGetDatum(&node)};
    run_pinned(sql.data, 3, types, values, nullptr, true, 0);
    return_spi_rows(fcinfo);
    SPI_finish();
    return Datum(0);
}
