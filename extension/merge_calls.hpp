// The merges peers call, around the engine's work (merge_rows.hpp): the checks every
// replication function makes, the apply flag (applying.hpp), the source's sync point raised in
// the same transaction, and the rows parked as waiting that the merge lets go (retries.cpp).
#pragma once

#include "merge_rows.hpp"

namespace idsync {

// What merge_items and merge_staged return: (received, inserted, updated, unchanged, rejected,
// sync_point).
struct MergeOutcome {
    MergeResult result;
    bool has_sync_point;
    int64 sync_point;
};

// merge_items: with raise_point, the source's incoming sync point moves to the batch's last
// point (a merge in the source's name); without it, source only labels the rows parked again
// (a retry).
MergeOutcome merge_items_call(Oid relid, Jsonb *items, Datum source, bool source_null,
                              bool raise_point);

// After rows were merged into `relid`: merges the rows parked as waiting in it and in the
// registered tables that reference it whose references now resolve; a table that gained rows
// that way wakes its own dependents in turn. Returns how many rows were merged. Inside a round
// already going on, 0 (the round goes on).
int64 retry_waiting(Oid relid);

} // namespace idsync
