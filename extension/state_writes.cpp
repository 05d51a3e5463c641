// The functions that change idsync's replication state. Each checks its caller, then runs one
// fixed statement as the owner of idsync's tables (state_access.hpp): no role but the owner
// writes those tables directly.
#include "boundary.hpp"
#include "registration.hpp"
#include "state_access.hpp"

using namespace idsync;

namespace {

Datum required(FunctionCallInfo fcinfo, int arg, const char *name)
{
    if (PG_ARGISNULL(arg))
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", name)));
    return PG_GETARG_DATUM(arg);
}

void check_point(int64 point)
{
    if (point < -1)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("sync point %lld is negative", static_cast<long long>(point))));
}

// ERROR unless the caller may read the state of `relid` and write incoming state for it: an
// administrator, or a peer with the rights a merge into it needs.
void require_incoming_rights(Oid relid)
{
    bool lww = require_registered(relid) == kLww;
    require_merge_rights(relid, nullptr, lww);
}

} // namespace

// idsync._raise_sync(target regclass, remote uuid, point bigint, incoming boolean): raises one
// sync point to at least `point`. Incoming points: administrators and peers that may merge into
// the table (a peer passes on the points of the nodes whose rows it merged: transitive sync).
// Outgoing points: administrators and the daemon's local role.
IDSYNC_FUNCTION(idsync_raise_sync)
{
    Oid relid = DatumGetObjectId(required(fcinfo, 0, "target"));
    Datum remote = required(fcinfo, 1, "remote");
    int64 point = DatumGetInt64(required(fcinfo, 2, "point"));
    raise_sync(relid, remote, point, DatumGetBool(required(fcinfo, 3, "incoming")));
    PG_RETURN_VOID();
}

// idsync.correct_sync(target regclass, remote uuid, point bigint) RETURNS bigint: lowers this
// node's incoming point for `remote` to `point`. Called by remote's idsyncd when the point is
// beyond anything remote ever issued (someone raised it to make this node skip remote's rows);
// only the peer role that speaks for `remote` (or an administrator) may.
IDSYNC_FUNCTION(idsync_correct_sync)
{
    Oid relid = DatumGetObjectId(required(fcinfo, 0, "target"));
    Datum remote = required(fcinfo, 1, "remote");
    int64 point = DatumGetInt64(required(fcinfo, 2, "point"));
    check_point(point);
    require_registered(relid);
    CallerRoles roles = caller_roles();
    require(roles.admin ||
                (roles.peer && memcmp(roles.node.data, DatumGetUUIDP(remote)->data, UUID_LEN) == 0),
            "only the peer role that speaks for a node corrects its sync point");
    Oid types[3] = {UUIDOID, OIDOID, INT8OID};
    Datum values[3] = {remote, ObjectIdGetDatum(relid), Int64GetDatum(point)};
    exec_as_owner(
        "UPDATE idsync.incoming_sync s SET sync_point = $3, updated_at = pg_catalog.now() "
        "WHERE s.relid OPERATOR(pg_catalog.=) $2::pg_catalog.regclass "
        "AND s.remote_id OPERATOR(pg_catalog.=) $1 "
        "AND s.sync_point OPERATOR(pg_catalog.>) $3",
        3, types, values, nullptr);
    PG_RETURN_INT64(point);
}

void idsync::raise_sync(Oid relid, Datum remote, int64 point, bool incoming)
{
    check_point(point);
    if (incoming) {
        require_incoming_rights(relid);
    } else {
        require_registered(relid);
        CallerRoles roles = caller_roles();
        require(roles.admin || roles.daemon,
                "only idsyncd's local role and administrators record outgoing sync points");
    }
    Oid types[3] = {UUIDOID, OIDOID, INT8OID};
    Datum values[3] = {remote, ObjectIdGetDatum(relid), Int64GetDatum(point)};
    // A retired node's points are not kept (idsync.retire_node): a peer passing them on does
    // not bring them back.
    exec_as_owner(incoming ? "INSERT INTO idsync.incoming_sync AS s (remote_id, relid, sync_point) "
                             "SELECT $1, $2::pg_catalog.regclass, $3 WHERE NOT EXISTS (SELECT "
                             "FROM idsync.retired_nodes n WHERE n.node_id OPERATOR(pg_catalog.=) "
                             "$1) "
                             "ON CONFLICT (relid, remote_id) DO UPDATE SET sync_point = "
                             "GREATEST(s.sync_point, excluded.sync_point), "
                             "updated_at = pg_catalog.now()"
                           : "INSERT INTO idsync.outgoing_sync AS s (remote_id, relid, sync_point) "
                             "SELECT $1, $2::pg_catalog.regclass, $3 WHERE NOT EXISTS (SELECT "
                             "FROM idsync.retired_nodes n WHERE n.node_id OPERATOR(pg_catalog.=) "
                             "$1) "
                             "ON CONFLICT (relid, remote_id) DO UPDATE SET sync_point = "
                             "GREATEST(s.sync_point, excluded.sync_point), "
                             "updated_at = pg_catalog.now()",
                  3, types, values, nullptr);
}

uint64 idsync::park_rejects(Oid relid, Datum source, bool source_null, Datum rejects)
{
    require_incoming_rights(relid);
    Oid types[3] = {OIDOID, UUIDOID, JSONBOID};
    Datum values[3] = {ObjectIdGetDatum(relid), source_null ? Datum(0) : source, rejects};
    char nulls[4] = {' ', source_null ? 'n' : ' ', ' ', '\0'};
    return exec_as_owner(
        "INSERT INTO idsync.rejects (relid, source, point, item, sqlstate, message, detail) "
        "SELECT $1::pg_catalog.regclass, $2, (r OPERATOR(pg_catalog.->>) "
        "'point')::pg_catalog.int8, "
        "r OPERATOR(pg_catalog.->) 'item', r OPERATOR(pg_catalog.->>) 'sqlstate', "
        "r OPERATOR(pg_catalog.->>) 'message', r OPERATOR(pg_catalog.->>) 'detail' "
        "FROM pg_catalog.jsonb_array_elements($3) r",
        3, types, values, nulls);
}

// idsync._park(target regclass, source uuid, rejects jsonb) RETURNS integer: parks rows a merge
// could not apply (park_rejects).
IDSYNC_FUNCTION(idsync_park)
{
    Oid relid = DatumGetObjectId(required(fcinfo, 0, "target"));
    if (PG_ARGISNULL(2)) // an aggregate over no rows: nothing to park
        PG_RETURN_INT32(0);
    uint64 parked = park_rejects(relid, PG_ARGISNULL(1) ? Datum(0) : PG_GETARG_DATUM(1),
                                 PG_ARGISNULL(1), PG_GETARG_DATUM(2));
    PG_RETURN_INT32(static_cast<int32>(parked));
}

// idsync._take_rejects(target regclass, reject_ids bigint[], waiting_only boolean) RETURNS
// TABLE (source uuid, point bigint, item jsonb, reject_id bigint): removes parked rows to merge
// them again (all of them, or those in reject_ids), skipping rows another session is taking.
// Administrators take any; peers that may merge into the table take the rows that wait for a
// referenced row (SQLSTATE 23503).
IDSYNC_FUNCTION(idsync_take_rejects)
{
    Oid relid = DatumGetObjectId(required(fcinfo, 0, "target"));
    bool waiting_only = DatumGetBool(required(fcinfo, 2, "waiting_only"));
    require_registered(relid);
    if (!waiting_only)
        require(caller_roles().admin, "only idsync administrators retry every parked row");
    else
        require_incoming_rights(relid);

    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    Oid types[3] = {OIDOID, INT8ARRAYOID, BOOLOID};
    Datum values[3] = {ObjectIdGetDatum(relid), PG_ARGISNULL(1) ? Datum(0) : PG_GETARG_DATUM(1),
                       BoolGetDatum(waiting_only)};
    char nulls[4] = {' ', PG_ARGISNULL(1) ? 'n' : ' ', ' ', '\0'};
    OwnerScope scope = enter_owner_scope();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    if (SPI_execute_with_args(
            "DELETE FROM idsync.rejects r WHERE r.reject_id OPERATOR(pg_catalog.=) ANY ("
            "SELECT x.reject_id FROM idsync.rejects x "
            "WHERE x.relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass "
            "AND ($2 IS NULL OR x.reject_id OPERATOR(pg_catalog.=) ANY ($2)) "
            "AND (NOT $3 OR x.sqlstate OPERATOR(pg_catalog.=) '23503') "
            "ORDER BY x.reject_id FOR UPDATE SKIP LOCKED) "
            "RETURNING r.source, r.point, r.item, r.reject_id",
            3, types, values, nulls, false, 0) != SPI_OK_DELETE_RETURNING)
        elog(ERROR, "idsync: taking parked rows failed");
    for (uint64 r = 0; r < SPI_processed; r++) {
        Datum out[4];
        bool out_nulls[4];
        heap_deform_tuple(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, out, out_nulls);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, out_nulls);
    }
    SPI_finish();
    leave_owner_scope(scope);
    return Datum(0);
}

// idsync._register(target regclass, key_columns name[], mode text, version_column name,
// tombstone_column name, point_column name, local_columns name[]): records a registration (the
// checks of the table's shape are replicate()'s). Only an administrator who owns the table may:
// what is registered is read and shipped to every peer.
IDSYNC_FUNCTION(idsync_register)
{
    Oid relid = DatumGetObjectId(required(fcinfo, 0, "target"));
    const int fields[] = {1, 2, 5, 6};
    for (int arg : fields)
        (void)required(fcinfo, arg, "a registration field");
    require(caller_roles().admin, "only idsync administrators register tables");
    require_owner(relid);
    char kind = get_rel_relkind(relid);
    Oid nsp = get_rel_namespace(relid);
    if (kind != RELKIND_RELATION || get_rel_persistence(relid) != RELPERSISTENCE_PERMANENT ||
        IsCatalogNamespace(nsp) || IsToastNamespace(nsp) ||
        nsp == get_namespace_oid("idsync", false) ||
        strcmp(get_namespace_name(nsp), "information_schema") == 0)
        ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                        errmsg("%s is not a permanent ordinary table of its own schema",
                               relid_name(relid)),
                        errdetail("idsync replicates user tables; catalogs, idsync's own tables, "
                                  "temporary tables, views and partitioned tables are refused.")));
    Oid types[7] = {OIDOID, NAMEARRAYOID, TEXTOID, NAMEOID, NAMEOID, NAMEOID, NAMEARRAYOID};
    Datum values[7];
    char nulls[8] = "       ";
    for (int i = 0; i < 7; i++) {
        values[i] = PG_ARGISNULL(i) ? Datum(0) : PG_GETARG_DATUM(i);
        nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
    }
    exec_as_owner("INSERT INTO idsync.tables (relid, key_columns, mode, version_column, "
                  "tombstone_column, point_column, local_columns) "
                  "VALUES ($1::pg_catalog.regclass, $2, $3, $4, $5, $6, $7)",
                  7, types, values, nulls);
    registration_changed(relid);
    PG_RETURN_VOID();
}

// idsync._forget(target oid): forgets everything idsync keeps about a table. The owner of a
// registered table (an administrator) may; anyone may forget a table that no longer exists
// (the drop event trigger).
IDSYNC_FUNCTION(idsync_forget)
{
    Oid relid = DatumGetObjectId(required(fcinfo, 0, "target"));
    if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid))) {
        require(caller_roles().admin, "only idsync administrators unregister tables");
        require_owner(relid);
    }
    Oid type = OIDOID;
    Datum value = ObjectIdGetDatum(relid);
    exec_as_owner(
        "WITH t AS (DELETE FROM idsync.tables WHERE relid::pg_catalog.oid "
        "OPERATOR(pg_catalog.=) $1), "
        "d AS (DELETE FROM idsync.table_deltas WHERE relid OPERATOR(pg_catalog.=) $1), "
        "i AS (DELETE FROM idsync.incoming_sync WHERE relid::pg_catalog.oid "
        "OPERATOR(pg_catalog.=) $1), "
        "o AS (DELETE FROM idsync.outgoing_sync WHERE relid::pg_catalog.oid "
        "OPERATOR(pg_catalog.=) $1), "
        "r AS (DELETE FROM idsync.resync_requests WHERE relid::pg_catalog.oid "
        "OPERATOR(pg_catalog.=) $1), "
        "g AS (DELETE FROM idsync.tombstones WHERE relid OPERATOR(pg_catalog.=) $1), "
        "f AS (DELETE FROM idsync.conflicts WHERE relid OPERATOR(pg_catalog.=) $1), "
        "x AS (DELETE FROM idsync.discarded_rejects WHERE relid::pg_catalog.oid "
        "OPERATOR(pg_catalog.=) $1) "
        "DELETE FROM idsync.rejects WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
        1, &type, &value, nullptr);
    registration_changed(relid);
    PG_RETURN_VOID();
}

// idsync._registration_changed(target regclass): the registration of target was changed by
// SQL (the content trigger's reference queries); the backends' copies are dropped.
IDSYNC_FUNCTION(idsync_registration_changed)
{
    registration_changed(DatumGetObjectId(required(fcinfo, 0, "target")));
    PG_RETURN_VOID();
}

// idsync._purge_syncs(target regclass, older_than interval) RETURNS bigint: reclaim's part in
// idsync's tables, for administrators who own the table.
IDSYNC_FUNCTION(idsync_purge_syncs)
{
    Oid relid = DatumGetObjectId(required(fcinfo, 0, "target"));
    Datum older_than = required(fcinfo, 1, "older_than");
    require_reclaim_rights(relid);
    Oid types[2] = {OIDOID, INTERVALOID};
    Datum values[2] = {ObjectIdGetDatum(relid), older_than};
    uint64 purged = exec_as_owner(
        "WITH i AS (DELETE FROM idsync.incoming_sync s WHERE s.relid OPERATOR(pg_catalog.=) "
        "$1::pg_catalog.regclass AND s.updated_at OPERATOR(pg_catalog.<) "
        "(pg_catalog.now() OPERATOR(pg_catalog.-) $2) RETURNING 1), "
        "o AS (DELETE FROM idsync.outgoing_sync s WHERE s.relid OPERATOR(pg_catalog.=) "
        "$1::pg_catalog.regclass AND s.updated_at OPERATOR(pg_catalog.<) "
        "(pg_catalog.now() OPERATOR(pg_catalog.-) $2) RETURNING 1) "
        "SELECT 1 FROM i UNION ALL SELECT 1 FROM o",
        2, types, values, nullptr);
    PG_RETURN_INT64(static_cast<int64>(purged));
}
