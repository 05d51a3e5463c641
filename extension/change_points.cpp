#include "change_points.hpp"

#include "boundary.hpp"

namespace idsync {

namespace {

// Distinguishes idsync's point locks from other advisory locks (the key locks use 7516).
constexpr uint16 kPointLockClass = 7517;

// The lower bound registered by the current transaction, identified by its local id.
LocalTransactionId bound_lxid = InvalidLocalTransactionId;
int64 bound = 0;
Oid points_sequence = InvalidOid;

Oid lookup_points_sequence()
{
    Oid nsp = get_namespace_oid("idsync", false);
    Oid seq = get_relname_relid("points", nsp);
    if (!OidIsValid(seq))
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("sequence idsync.points does not exist"),
                 errhint("Update the extension: ALTER EXTENSION idsync UPDATE.")));
    return seq;
}

// The sequence's last value, 0 before the first nextval. Needs SELECT on the sequence, which
// the install script grants to PUBLIC.
int64 last_point(Oid seq)
{
    LOCAL_FCINFO(call, 1);
    InitFunctionCallInfoData(*call, nullptr, 1, InvalidOid, nullptr, nullptr);
    call->args[0].value = ObjectIdGetDatum(seq);
    call->args[0].isnull = false;
    Datum last = pg_sequence_last_value(call);
    return call->isnull ? 0 : DatumGetInt64(last);
}

void point_lock_tag(LOCKTAG *tag, int64 key)
{
    SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32)((uint64)key >> 32), (uint32)key,
                         kPointLockClass);
}

} // namespace

int64 next_point()
{
    if (bound_lxid != MyProc->lxid) {
        points_sequence = lookup_points_sequence();
        bound = last_point(points_sequence) + 1;
        bound_lxid = MyProc->lxid;
    }
    // Acquired on every call, not once: a rolled-back subtransaction releases the locks it
    // took, and the transaction's later points still need the bound registered. When the lock
    // is already held this is a local hash lookup.
    LOCKTAG tag;
    point_lock_tag(&tag, bound);
    (void)LockAcquire(&tag, ShareLock, false, false);
    return nextval_internal(points_sequence, false);
}

int64 stable_point()
{
    int64 stable = last_point(lookup_points_sequence());
    LockData *locks = GetLockStatusData();
    for (int i = 0; i < locks->nelements; i++) {
        const LOCKTAG &tag = locks->locks[i].locktag;
        if (tag.locktag_type != LOCKTAG_ADVISORY || tag.locktag_field1 != MyDatabaseId ||
            tag.locktag_field4 != kPointLockClass)
            continue;
        int64 key = (int64)(((uint64)tag.locktag_field2 << 32) | tag.locktag_field3);
        stable = Min(stable, key - 1);
    }
    return stable;
}

} // namespace idsync

IDSYNC_FUNCTION(idsync_next_point)
{
    PG_RETURN_INT64(idsync::next_point());
}

IDSYNC_FUNCTION(idsync_stable_point)
{
    PG_RETURN_INT64(idsync::stable_point());
}
