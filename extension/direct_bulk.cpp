// The direct path of a bulk copy: a table that is empty on the receiver, and that nobody is
// writing at that moment, takes the sender's rows straight from COPY ... FROM STDIN, in the
// sender's key order, instead of through a staging table and a merge. It is the first load of
// a new node, and it costs about what a plain COPY into an identically indexed table costs.
//
// idsync.begin_bulk(target, source) checks the caller as a merge does, then takes the table's
// SHARE ROW EXCLUSIVE lock only if nobody holds a conflicting one (it never waits, so writers
// never queue behind it), and keeps it to the end of the transaction when the table is empty:
// no other session writes the table until the copy commits, so nothing can conflict with the
// copied rows and no two loads can deadlock. It then raises the apply flag (applying.hpp), so
// that the copied rows keep the versions and origins they come with. Otherwise it returns false,
// holds nothing, and the sender uses the staging path (merge_staged).
//
// idsync.end_bulk(target, source, point) ends it: the source's incoming sync point moves to
// `point`, the flag is lowered, and rows waiting for the copied ones are merged.
#include "applying.hpp"
#include "boundary.hpp"
#include "insert_missing.hpp"
#include "merge_calls.hpp"
#include "registration.hpp"
#include "spi_calls.hpp"
#include "state_access.hpp"
#include "tombstones.hpp"

using namespace idsync;

namespace {

// Whether `relid` holds no row this snapshot or any later one can see (the caller holds a lock
// that keeps writers out).
bool empty_now(Oid relid)
{
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    run_pinned(psprintf("SELECT 1 FROM %s LIMIT 1", relid_name(relid)), 0, nullptr, nullptr,
               nullptr, false, 1);
    bool empty = SPI_processed == 0;
    SPI_finish();
    return empty;
}

} // namespace

// idsync.begin_bulk(target regclass, source uuid) RETURNS boolean
IDSYNC_FUNCTION(idsync_begin_bulk)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    auto *source = DatumGetUUIDP(required_arg(fcinfo, 1, "source"));
    // Every check before the lock.
    require_replicable(relid);
    bool lww = require_registered(relid) == kLww;
    require_merge_rights(relid, source, lww);
    // References travel as natural keys, which only a merge resolves. And the emptiness is
    // read after the lock with a fresh snapshot, which only READ COMMITTED takes.
    if (load_registration(relid, CurrentMemoryContext)->nreferences > 0 ||
        XactIsoLevel != XACT_READ_COMMITTED)
        PG_RETURN_BOOL(false);
    if (!ConditionalLockRelationOid(relid, ShareRowExclusiveLock))
        PG_RETURN_BOOL(false);
    // Tombstones kept here must weigh against the copied rows, which only a merge does.
    if (!empty_now(relid) || (lww && has_tombstones(relid))) {
        UnlockRelationOid(relid, ShareRowExclusiveLock);
        PG_RETURN_BOOL(false);
    }
    begin_apply(relid, source, ApplyPurpose::merge);
    PG_RETURN_BOOL(true);
}

// idsync.end_bulk(target regclass, source uuid, point bigint) RETURNS bigint: the source's
// incoming sync point afterwards.
IDSYNC_FUNCTION(idsync_end_bulk)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    Datum source = required_arg(fcinfo, 1, "source");
    int64 point = DatumGetInt64(required_arg(fcinfo, 2, "point"));
    require_replicable(relid);
    if (!applying(relid, ApplyPurpose::merge) ||
        !CheckRelationOidLockedByMe(relid, ShareRowExclusiveLock, false))
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("no bulk copy into table %s is under way in this transaction",
                               relid_name(relid)),
                        errhint("Call idsync.begin_bulk() first, in the same transaction.")));
    raise_sync(relid, source, point, true);
    end_apply(relid);
    retry_waiting(relid);
    PG_RETURN_INT64(read_sync_point(relid, source, true));
}
