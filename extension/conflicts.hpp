// Conflict records of lww tables (idsync.record_conflicts): in a merge, each version of a row
// that loses to another version of its key is kept in idsync.conflicts, with the version that
// won. What counts as a loss is what a merge can tell: an incoming row or delete older than what
// this node holds (or as old, and beaten by the row hash). A stored row that an incoming newer
// version replaces is an update, not recorded: without version vectors a node cannot tell a
// concurrent write from a later one. So a conflict between two nodes is recorded on the nodes
// where the losing version arrives after the winning one: at least one of any two writers.
#pragma once

#include "merge_rows.hpp"

namespace idsync {

enum class ConflictKind { row_lost_to_row, row_lost_to_delete, delete_lost_to_row };

// Records that row `row` of the merge lost to the version `won_version` of node `won_origin`
// (nullptr: this node), written as idsync's owner, rolled back with the merge's attempt.
void record_conflict(Merge &m, const MergeRows &rows, int64 row, ConflictKind kind,
                     int64 won_version, const pg_uuid_t *won_origin);

// Before the newest rows of a batch are written: records the rows that the table's stored rows
// beat. `live` maps the batch's rows to the merge's.
void record_lost_rows(Merge &m, const MergeRows &rows, const int32 *live, Batch &b);

// After a merge that recorded conflicts: keeps the newest conflicts_kept records of the table.
void trim_conflicts(Merge &m);

} // namespace idsync
