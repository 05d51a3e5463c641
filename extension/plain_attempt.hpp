// insert_missing's plain INSERT first: when a batch's rows are likely all missing, they go in by
// a plain INSERT in a subtransaction, which skips ON CONFLICT's speculative insertion (a second
// index probe, a confirmation record and a lock per row: about a third of an insert of new
// keys). A unique violation (a concurrent insert, or an existing row the sample missed) rolls
// the attempt back, and the caller inserts with ON CONFLICT as before.
//
// What it costs when it fails: the work of the attempt, and the ids its rows had drawn from the
// table's sequence (gaps, as after any rolled-back insert). So that failures stay rare, a table
// whose attempt failed is inserted with ON CONFLICT for its next 2, 4, ... 64 batches in this
// backend; and a transaction makes at most kPlainAttempts of them, since each takes a
// subtransaction id and past 64 in one transaction every snapshot in the cluster slows down.
#pragma once

#include "group_ids.hpp"
#include "missing_insert.hpp"
#include "row_keys.hpp"

namespace idsync {

// Whether a plain attempt is allowed now for `rel` (see above). Never for a table with rules:
// ON CONFLICT refuses those (0A000), and a plain attempt would run them or not by chance.
bool plain_attempt_allowed(Relation rel);

// Inserts the distinct rows groups[0 .. count-1] by a plain INSERT in a subtransaction. Returns
// true when they all went in (marked inserted); false after a unique violation, with nothing
// inserted and their states as they were. Other errors propagate.
bool try_plain_insert(MissingInsert &insert, const TargetTable &target, const ColumnValues &values,
                      const RowKeys &keys, const int32 *groups, int64 count, GroupIds &ids);

} // namespace idsync
