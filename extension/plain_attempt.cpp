#include "plain_attempt.hpp"

#include "subtransaction.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

// Plain attempts per top-level transaction (each takes a subtransaction id).
constexpr int kPlainAttempts = 32;
// Batches of a table inserted with ON CONFLICT after its attempt failed: 2, 4, ... up to this.
constexpr int kMaxSkips = 64;

LocalTransactionId attempts_lxid = InvalidLocalTransactionId;
int attempts = 0;

// Per table in this backend: how many batches to skip, and the next skip after a failure.
struct TableMisses {
    Oid relid;
    int skip;
    int next_skip;
};
constexpr int kTables = 16;
TableMisses misses[kTables]; // a small cache; a table pushed out just starts over

TableMisses *misses_of(Oid relid, bool create)
{
    for (TableMisses &m : misses)
        if (m.relid == relid)
            return &m;
    if (!create)
        return nullptr;
    static int victim = 0;
    TableMisses &m = misses[victim++ % kTables];
    m = {relid, 0, 2};
    return &m;
}

bool unique_violation(int sqlerrcode)
{
    return sqlerrcode == ERRCODE_UNIQUE_VIOLATION;
}

struct PlainCall {
    MissingInsert *insert;
    const TargetTable *target;
    const ColumnValues *values;
    const RowKeys *keys;
    const int32 *groups;
    int64 count;
    GroupIds *ids;
};

void run_plain(void *arg)
{
    auto *call = static_cast<PlainCall *>(arg);
    insert_groups(*call->insert, *call->target, *call->values, *call->keys, call->groups,
                  call->count, *call->ids, true);
}

} // namespace

bool plain_attempt_allowed(Relation rel)
{
    if (rel->rd_rules != nullptr)
        return false;
    Oid relid = RelationGetRelid(rel);
    if (attempts_lxid != MyProc->lxid) {
        attempts_lxid = MyProc->lxid;
        attempts = 0;
    }
    if (attempts >= kPlainAttempts)
        return false;
    TableMisses *m = misses_of(relid, false);
    if (m != nullptr && m->skip > 0) {
        m->skip--;
        return false;
    }
    return true;
}

bool try_plain_insert(MissingInsert &insert, const TargetTable &target, const ColumnValues &values,
                      const RowKeys &keys, const int32 *groups, int64 count, GroupIds &ids)
{
    attempts++;
    // The states the attempt may set (a chunk that went in before the one that failed).
    IdState *states = work_array<IdState>(count);
    for (int64 i = 0; i < count; i++)
        states[i] = ids.state[groups[i]];
    PlainCall call = {&insert, &target, &values, &keys, groups, count, &ids};
    ErrorData *error = try_subtransaction(run_plain, &call, unique_violation);
    Oid relid = RelationGetRelid(target.rel);
    if (error == nullptr) {
        if (TableMisses *m = misses_of(relid, false))
            m->next_skip = 2;
        return true;
    }
    FreeErrorData(error);
    for (int64 i = 0; i < count; i++) {
        ids.state[groups[i]] = states[i];
        ids.id[groups[i]] = 0;
    }
    TableMisses *m = misses_of(relid, true);
    m->skip = m->next_skip;
    m->next_skip = Min(m->next_skip * 2, kMaxSkips);
    return false;
}

} // namespace idsync
