// Resyncs and retired nodes, an operator's repairs of the set of nodes.
//
// Resyncs an operator asks for (idsyncctl resync): a row in idsync.resync_requests per table and
// peer, which idsyncd reads at the start of its next pass to that peer, sends every row of the
// table as if the peer had none of it (a merge takes only what the peer lacks), and clears once
// that pass succeeded. For repairs: rows lost on a peer behind idsync's back (a restore, a
// trigger disabled) are not found by the points, which say the peer has them.
#include "boundary.hpp"
#include "insert_missing.hpp"
#include "state_access.hpp"

using namespace idsync;

namespace {

// Administrators and the daemon's role: a resync only sends rows again.
void require_resync_rights(Oid relid)
{
    require_replicable(relid);
    CallerRoles roles = caller_roles();
    require(roles.admin || roles.daemon,
            "only idsync administrators and the daemon's role ask for and clear resyncs");
}

} // namespace

// idsync.request_resync(target regclass, remote uuid) RETURNS timestamptz: the time of the
// request (a request already there is renewed).
IDSYNC_FUNCTION(idsync_request_resync)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    Datum remote = required_arg(fcinfo, 1, "remote");
    require_resync_rights(relid);
    Oid types[2] = {OIDOID, UUIDOID};
    Datum values[2] = {ObjectIdGetDatum(relid), remote};
    exec_as_owner("INSERT INTO idsync.resync_requests AS r (relid, remote_id) "
                  "VALUES ($1::pg_catalog.regclass, $2) ON CONFLICT (relid, remote_id) "
                  "DO UPDATE SET requested_at = pg_catalog.now()",
                  2, types, values, nullptr);
    PG_RETURN_TIMESTAMPTZ(GetCurrentTransactionStartTimestamp());
}

// idsync._resync_done(target regclass, remote uuid, requested_at timestamptz): clears the request
// a pass read (requested at `requested_at`, or before); a request renewed since stays.
IDSYNC_FUNCTION(idsync_resync_done)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    Datum remote = required_arg(fcinfo, 1, "remote");
    Datum requested_at = required_arg(fcinfo, 2, "requested_at");
    require_resync_rights(relid);
    Oid types[3] = {OIDOID, UUIDOID, TIMESTAMPTZOID};
    Datum values[3] = {ObjectIdGetDatum(relid), remote, requested_at};
    exec_as_owner("DELETE FROM idsync.resync_requests r "
                  "WHERE r.relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass "
                  "AND r.remote_id OPERATOR(pg_catalog.=) $2 "
                  "AND r.requested_at OPERATOR(pg_catalog.<=) $3",
                  3, types, values, nullptr);
    PG_RETURN_VOID();
}

// idsync.retire_node(node uuid) RETURNS bigint: forgets the sync points and resync requests of
// `node` here and records it as retired, so that no pass sends it anything again and no point
// passed on for it is kept (raise_sync); returns how many rows were forgotten. Administrators.
IDSYNC_FUNCTION(idsync_retire_node)
{
    Datum node = required_arg(fcinfo, 0, "node");
    require(caller_roles().admin, "only idsync administrators retire nodes");
    pg_uuid_t me = this_node();
    if (memcmp(me.data, DatumGetUUIDP(node)->data, UUID_LEN) == 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("cannot retire this node itself"),
                 errhint("Run idsync.retire_node() on the nodes that stay.")));
    Oid type = UUIDOID;
    uint64 forgotten = exec_as_owner(
        "WITH r AS (INSERT INTO idsync.retired_nodes (node_id) VALUES ($1) "
        "ON CONFLICT (node_id) DO NOTHING), "
        "i AS (DELETE FROM idsync.incoming_sync s WHERE s.remote_id OPERATOR(pg_catalog.=) $1 "
        "RETURNING 1), "
        "o AS (DELETE FROM idsync.outgoing_sync s WHERE s.remote_id OPERATOR(pg_catalog.=) $1 "
        "RETURNING 1), "
        "q AS (DELETE FROM idsync.resync_requests s WHERE s.remote_id OPERATOR(pg_catalog.=) $1 "
        "RETURNING 1) "
        "SELECT 1 FROM i UNION ALL SELECT 1 FROM o UNION ALL SELECT 1 FROM q",
        1, &type, &node, nullptr);
    PG_RETURN_INT64(static_cast<int64>(forgotten));
}
