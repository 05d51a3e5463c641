// What a sender reads: the preflight (sync_info), the changes after a point (items_since, which
// runs the table's plan) and the query of a bulk copy (bulk_query). Every one reads as its
// caller, with search_path pinned, after idsync._registration's checks (require_replicable).
#include "boundary.hpp"
#include "change_points.hpp"
#include "insert_missing.hpp"
#include "kept_plans.hpp"
#include "natural_form.hpp"
#include "registration.hpp"
#include "spi_calls.hpp"
#include "state_access.hpp"
#include "tombstones.hpp"

using namespace idsync;

namespace {

// Runs `sql` with search_path pinned (in an SPI connection of the caller's) and returns the
// first column of its first row, or (Datum) 0 with *isnull set when there is none.
Datum query_value(const char *sql, int nargs, Oid *types, Datum *values, bool *isnull)
{
    run_pinned(sql, nargs, types, values, nullptr, false, 1);
    *isnull = true;
    if (SPI_processed == 0)
        return Datum(0);
    return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
}

Datum query_about(const char *sql, Oid relid, bool *isnull)
{
    Oid types[1] = {OIDOID};
    Datum values[1] = {ObjectIdGetDatum(relid)};
    return query_value(sql, 1, types, values, isnull);
}

// The stable point, at most `up_to` when that is given.
int64 bound(FunctionCallInfo fcinfo, int up_to_arg)
{
    int64 stable = stable_point();
    return PG_ARGISNULL(up_to_arg) ? stable : Min(stable, PG_GETARG_INT64(up_to_arg));
}

// The items query of the plan of `relid`, or 55000 when it could not be built (a table
// registered before 0.5.0 whose foreign key points at a table that is not registered). Read
// from idsync.tables, never taken from a caller.
char *items_plan(Oid relid)
{
    bool isnull;
    Datum sql = query_about("SELECT t.plan OPERATOR(pg_catalog.->>) 'items' FROM idsync.tables t "
                            "WHERE t.relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
                            relid, &isnull);
    if (!isnull)
        return TextDatumGetCString(sql);
    // Names what kept the plan from being built, when something still does.
    query_about("SELECT pg_catalog.count(*) FROM idsync._references($1::pg_catalog.regclass)",
                relid, &isnull);
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("table %s has no replication plan", relid_name(relid)),
                    errhint("Register every table it references, then ALTER it (or register it "
                            "again) to build the plan.")));
    return nullptr;
}

} // namespace

// idsync.sync_info(target regclass, up_to bigint DEFAULT NULL, OUT node_id uuid, OUT max_point
// bigint, OUT row_count bigint, OUT content_hash text, OUT rejects bigint): a sender's
// preflight: node id, largest stable change point (at most up_to), row count, content hash,
// parked rejects.
IDSYNC_FUNCTION(idsync_sync_info)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    require_replicable(relid);
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "idsync.sync_info must return a record");
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    Datum values[5];
    bool nulls[5] = {false, false, false, false, false};
    bool isnull;
    int64 upper = bound(fcinfo, 1);

    // Keeps the delta list short; only at READ COMMITTED, where folding cannot conflict.
    int64 pending =
        DatumGetInt64(query_about("SELECT pg_catalog.count(*) FROM idsync.table_deltas d "
                                  "WHERE d.relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
                                  relid, &isnull));
    if (pending >= 1000 && XactIsoLevel == XACT_READ_COMMITTED)
        query_about("SELECT idsync.compact($1::pg_catalog.regclass)", relid, &isnull);

    const char *point = quote_identifier(reg->point_column);
    Oid types[1] = {INT8OID};
    Datum args[1] = {Int64GetDatum(upper)};
    int pinned = pin_search_path();
    SPIPlanPtr newest = kept_plan(psprintf("SELECT pg_catalog.max(c.%s) FROM %s c WHERE c.%s "
                                           "OPERATOR(pg_catalog.<=) $1",
                                           point, relid_name(relid), point),
                                  1, types);
    unpin_search_path(pinned);
    if (SPI_execute_plan(newest, args, nullptr, false, 1) != SPI_OK_SELECT)
        elog(ERROR, "idsync: reading the largest change point failed");
    Datum max_point = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    int64 largest = isnull ? -1 : DatumGetInt64(max_point);
    if (reg->lww) {
        // Deletes are changes too: their points are their tombstones'.
        Oid tomb_types[2] = {OIDOID, INT8OID};
        Datum tomb_args[2] = {ObjectIdGetDatum(relid), Int64GetDatum(upper)};
        Datum tomb = query_value("SELECT pg_catalog.max(t.point) FROM idsync.tombstones t WHERE "
                                 "t.relid OPERATOR(pg_catalog.=) $1 AND t.point "
                                 "OPERATOR(pg_catalog.<=) $2",
                                 2, tomb_types, tomb_args, &isnull);
        if (!isnull)
            largest = Max(largest, DatumGetInt64(tomb));
    }
    values[1] = Int64GetDatum(largest);

    Oid state_types[1] = {OIDOID};
    Datum state_args[1] = {ObjectIdGetDatum(relid)};
    run_pinned(
        "SELECT t.row_count OPERATOR(pg_catalog.+) COALESCE(pg_catalog.sum(d.row_count)"
        "::pg_catalog.int8, 0), t.hash1 OPERATOR(pg_catalog.#) COALESCE(pg_catalog.bit_xor("
        "d.hash1), 0), t.hash2 OPERATOR(pg_catalog.#) COALESCE(pg_catalog.bit_xor(d.hash2), 0), "
        "(SELECT pg_catalog.count(*) FROM idsync.rejects r WHERE r.relid OPERATOR(pg_catalog.=) "
        "t.relid) FROM idsync.tables t LEFT JOIN idsync.table_deltas d ON d.relid "
        "OPERATOR(pg_catalog.=) t.relid WHERE t.relid OPERATOR(pg_catalog.=) "
        "$1::pg_catalog.regclass GROUP BY t.relid, t.row_count, t.hash1, t.hash2",
        1, state_types, state_args, nullptr, false, 1);
    if (SPI_processed != 1)
        elog(ERROR, "idsync: reading the content state of a table failed");
    HeapTuple state = SPI_tuptable->vals[0];
    TupleDesc state_desc = SPI_tuptable->tupdesc;
    values[2] = SPI_getbinval(state, state_desc, 1, &isnull);
    uint64 h1 = DatumGetInt64(SPI_getbinval(state, state_desc, 2, &isnull));
    uint64 h2 = DatumGetInt64(SPI_getbinval(state, state_desc, 3, &isnull));
    values[4] = SPI_getbinval(state, state_desc, 4, &isnull);
    SPI_finish();
    pg_uuid_t *node = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
    *node = this_node();
    values[0] = UUIDPGetDatum(node);
    values[3] = CStringGetTextDatum(psprintf("%016llx%016llx", static_cast<unsigned long long>(h1),
                                             static_cast<unsigned long long>(h2)));
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls));
}

// idsync.items_since(target regclass, point bigint, max_rows integer DEFAULT 1000, up_to bigint
// DEFAULT NULL, to_node uuid DEFAULT NULL) RETURNS TABLE (point bigint, item jsonb, origin
// uuid): the next changes after a point, in point order, up to the stable point (and up_to),
// as the table's plan reads them (idsync._items_query). Its SET clauses keep the planner on
// the point index even without statistics, right after a bulk load.
namespace {

// items_since and tombstones_since: the rows of `sql` (a query over $1 .. $5 as the plan's) for
// the arguments (target, point, max_rows, up_to, to_node).
Datum return_changes(FunctionCallInfo fcinfo, Oid relid, const char *function,
                     char *(*query)(Oid relid))
{
    if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("point and max_rows must not be NULL")));
    int32 max_rows = PG_GETARG_INT32(2);
    if (max_rows < 1)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("max_rows must be positive")));
    // The rows are read with a snapshot taken after the stable point; a transaction snapshot
    // taken earlier could miss a commit below it and skip the row for good.
    if (XactIsoLevel != XACT_READ_COMMITTED)
        ereport(ERROR, (errcode(ERRCODE_INVALID_TRANSACTION_STATE),
                        errmsg("%s must run at READ COMMITTED", function),
                        errdetail("Under REPEATABLE READ or SERIALIZABLE the snapshot may predate "
                                  "a change it would report as read.")));
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    pg_uuid_t node = this_node();
    Datum me = UUIDPGetDatum(&node);
    int64 upper = bound(fcinfo, 3);
    char *sql = query(relid);
    Oid types[5] = {INT8OID, INT8OID, INT4OID, UUIDOID, UUIDOID};
    Datum args[5] = {PG_GETARG_DATUM(1), Int64GetDatum(upper), Int32GetDatum(max_rows),
                     PG_ARGISNULL(4) ? Datum(0) : PG_GETARG_DATUM(4), me};
    char arg_nulls[6] = {' ', ' ', ' ', PG_ARGISNULL(4) ? 'n' : ' ', ' ', '\0'};
    int pinned = pin_search_path();
    SPIPlanPtr plan = kept_plan(sql, 5, types);
    unpin_search_path(pinned);
    if (SPI_execute_plan(plan, args, arg_nulls, false, 0) != SPI_OK_SELECT)
        elog(ERROR, "idsync: reading the changes of a table failed");
    return_spi_rows(fcinfo);
    SPI_finish();
    return Datum(0);
}

char *tombstones_of(Oid relid)
{
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    if (!reg->lww)
        return pstrdup(
            "SELECT NULL::pg_catalog.int8, NULL::pg_catalog.jsonb, NULL::pg_catalog.uuid "
            "WHERE $1 IS NULL AND $2 IS NULL AND $3 IS NULL AND $4 IS NULL AND $5 IS "
            "NULL AND false");
    return tombstone_items_query(relid, reg);
}

} // namespace

IDSYNC_FUNCTION(idsync_items_since)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    require_replicable(relid);
    return return_changes(fcinfo, relid, "idsync.items_since", items_plan);
}

// idsync.tombstones_since(target regclass, point bigint, max_rows integer DEFAULT 1000, up_to
// bigint DEFAULT NULL, to_node uuid DEFAULT NULL) RETURNS TABLE (point bigint, item jsonb, origin
// uuid): the tombstones of an lww table after a point, as items_since returns them (none for
// insert_only tables). A bulk copy streams the live rows, then sends these.
IDSYNC_FUNCTION(idsync_tombstones_since)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    require_replicable(relid);
    return return_changes(fcinfo, relid, "idsync.tombstones_since", tombstones_of);
}

// idsync.bulk_query(target regclass, up_to bigint DEFAULT NULL, to_node uuid DEFAULT NULL,
// in_key_order boolean DEFAULT false) RETURNS text: the SELECT a bulk copy of a table streams: its
// replicated columns, references as natural keys (jsonb); with up_to, the rows whose point is at
// most up_to; with to_node, also idsync_origin, and not the rows that node wrote. Without to_node
// the columns are those of 0.4.0, which a 0.4.0 idsyncd copies.
IDSYNC_FUNCTION(idsync_bulk_query)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    require_replicable(relid);
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    const char *to_node = nullptr;
    const char *origin = nullptr;
    if (!PG_ARGISNULL(2)) {
        to_node =
            quote_literal_cstr(DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(2))));
        pg_uuid_t node = this_node();
        origin = psprintf("COALESCE(c.idsync_origin, %s::pg_catalog.uuid) AS idsync_origin",
                          quote_literal_cstr(DatumGetCString(
                              DirectFunctionCall1(uuid_out, UUIDPGetDatum(&node)))));
    }
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfo(&sql, "%s WHERE true",
                     natural_select(relid, relid_name(relid), NaturalPurpose::json, origin));
    if (!PG_ARGISNULL(1))
        appendStringInfo(&sql, " AND c.%s OPERATOR(pg_catalog.<=) %lld",
                         quote_identifier(reg->point_column),
                         static_cast<long long>(PG_GETARG_INT64(1)));
    if (to_node != nullptr)
        appendStringInfo(&sql,
                         " AND (c.idsync_origin IS NULL OR c.idsync_origin "
                         "OPERATOR(pg_catalog.<>) %s::pg_catalog.uuid)",
                         to_node);
    // In the natural key's order, for a copy straight into the receiver's table (its key index
    // then grows at its right end); not when the key holds a reference, whose order here is
    // that of local ids.
    bool in_key_order = !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);
    for (int k = 0; k < reg->nkey && in_key_order; k++)
        in_key_order =
            !registered_name_among(reg->key_columns[k], reg->reference_columns, reg->nreferences);
    for (int k = 0; k < reg->nkey && in_key_order; k++)
        appendStringInfo(&sql, "%s c.%s", k == 0 ? " ORDER BY" : ",",
                         quote_identifier(reg->key_columns[k]));
    PG_RETURN_TEXT_P(cstring_to_text(sql.data));
}
