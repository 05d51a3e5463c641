#include "kept_plans.hpp"

#include "state_access.hpp"

namespace idsync {

namespace {

constexpr long kMaxKept = 4096;

struct KeptPlan {
    uint64 hash; // hash key: of the statement's text and parameter types
    char *sql;   // in TopMemoryContext, to tell two statements of one hash apart
    int nargs;
    Oid *argtypes;
    SPIPlanPtr plan;
};

HTAB *kept = nullptr;

SPIPlanPtr prepare(const char *sql, int nargs, Oid *argtypes)
{
    int pinned = pin_search_path();
    SPIPlanPtr plan = SPI_prepare(sql, nargs, argtypes);
    unpin_search_path(pinned);
    if (plan == nullptr)
        elog(ERROR, "idsync could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
    return plan;
}

} // namespace

SPIPlanPtr kept_plan(const char *sql, int nargs, Oid *argtypes)
{
    if (kept == nullptr) {
        HASHCTL info = {};
        info.keysize = sizeof(uint64);
        info.entrysize = sizeof(KeptPlan);
        kept = hash_create("idsync kept plans", 64, &info, HASH_ELEM | HASH_BLOBS);
    }
    // The same text with other parameter types (a table made again) is another statement.
    uint64 hash = hash_bytes_extended(reinterpret_cast<const unsigned char *>(sql),
                                      static_cast<int>(strlen(sql)), nargs);
    hash ^= hash_bytes_extended(reinterpret_cast<const unsigned char *>(argtypes),
                                static_cast<int>(sizeof(Oid) * nargs), 0);
    auto *entry = static_cast<KeptPlan *>(hash_search(kept, &hash, HASH_FIND, nullptr));
    if (entry != nullptr) {
        bool same = entry->nargs == nargs && strcmp(entry->sql, sql) == 0 &&
                    memcmp(entry->argtypes, argtypes, sizeof(Oid) * nargs) == 0;
        return same ? entry->plan : prepare(sql, nargs, argtypes);
    }
    SPIPlanPtr plan = prepare(sql, nargs, argtypes);
    if (hash_get_num_entries(kept) >= kMaxKept)
        return plan;
    // Entered only once kept, so that an error on the way leaves no entry without a plan.
    char *text = MemoryContextStrdup(TopMemoryContext, sql);
    Oid *types =
        static_cast<Oid *>(MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * Max(nargs, 1)));
    memcpy(types, argtypes, sizeof(Oid) * nargs);
    if (SPI_keepplan(plan) != 0)
        elog(ERROR, "idsync could not keep the plan of \"%s\"", sql);
    entry = static_cast<KeptPlan *>(hash_search(kept, &hash, HASH_ENTER, nullptr));
    *entry = {hash, text, nargs, types, plan};
    return plan;
}

} // namespace idsync
