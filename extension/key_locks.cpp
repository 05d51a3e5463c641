#include "key_locks.hpp"

namespace idsync {

namespace {

uint32 hash_key(const TargetTable &t, const RowKeys &k, int64 row, TypeCacheEntry **hashers)
{
    uint32 hash = 0;
    for (int key = 0; key < t.nkeys; key++) {
        if (k.key_nulls[key][row] || hashers[key] == nullptr)
            continue;
        Datum h = FunctionCall1Coll(&hashers[key]->hash_proc_finfo, t.index->rd_indcollation[key],
                                    k.key_values[key][row]);
        hash = hash_combine(hash, DatumGetUInt32(h));
    }
    return hash;
}

} // namespace

void lock_unprotected_rows(const TargetTable &t, const RowKeys &k, int64 nrows)
{
    bool wanted[kLockSlots] = {};
    bool any = false;
    TypeCacheEntry *hashers[INDEX_MAX_KEYS];
    for (int key = 0; key < t.nkeys; key++) {
        TypeCacheEntry *tc =
            lookup_type_cache(t.index->rd_opcintype[key], TYPECACHE_HASH_PROC_FINFO);
        // A type without a hash function adds nothing to the hash: coarser, still correct.
        hashers[key] = OidIsValid(tc->hash_proc) ? tc : nullptr;
    }
    for (int64 row = 0; row < nrows; row++) {
        if (k.protected_row[row])
            continue;
        wanted[hash_key(t, k, row, hashers) % kLockSlots] = true;
        any = true;
    }
    if (!any)
        return;
    for (uint32 slot = 0; slot < kLockSlots; slot++) {
        if (!wanted[slot])
            continue;
        LOCKTAG tag;
        SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, RelationGetRelid(t.rel), slot, kLockClass);
        (void)LockAcquire(&tag, ExclusiveLock, false, false);
    }
}

} // namespace idsync
