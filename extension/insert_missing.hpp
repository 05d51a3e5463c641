// The insert-missing algorithm, shared by the SQL functions in insert_missing.cpp.
//
//   1. group_rows: sort the input rows in the unique index's order and merge equal rows.
//   2. lock_unprotected_rows: lock the rows the index cannot keep unique (NULL keys).
//   3. probe_groups: look the distinct rows up in the index; most loads end here. A sample
//      decides first: when most rows are new, only the rows the index cannot protect are
//      looked up, and ON CONFLICT finds the existing ones.
//   4. insert_groups: INSERT ... ON CONFLICT DO NOTHING the rows still missing, in index order
//      (a plain INSERT first when they are likely all missing: plain_attempt.hpp).
//   5. probe_groups again, with a fresh snapshot, for the rows ON CONFLICT skipped because a
//      concurrent transaction had just inserted them. Repeat 4-5 if such a row was deleted in
//      between (a few rounds, then 40001).
#pragma once

#include "group_ids.hpp"
#include "row_keys.hpp"

namespace idsync {

// One call's working state. Everything it points to lives in `work`, a memory context that is
// deleted when the call ends (or with its parent when the call fails).
struct Batch {
    MemoryContext caller;
    MemoryContext work;
    EState *estate;
    TargetTable target;
    ColumnValues values;
    RowKeys keys;
    GroupIds ids;
    // A merge's batch: its plain INSERT (plain_first, below) fails into the merge's own
    // subtransaction, never into one of resolve_batch's (plain_attempt.hpp, for insert_missing).
    bool merge;
    // Merges: rows known to be missing go in by a plain INSERT (missing_insert.hpp), whose
    // unique violation the merge catches, undoes and redoes without it (plain_first false).
    bool plain_first;
};

// Opens an SPI connection and the target table with the given column names (text[]); for a
// merge, nkey > 0 says that the first nkey columns are the registered key (open_merge_target).
void begin_batch(Batch &batch, Oid target, ArrayType *columns, int nkey = 0);

// Argument `arg` of fcinfo, which must not be NULL (22004 naming `name`).
Datum required_arg(FunctionCallInfo fcinfo, int arg, const char *name);

// Finds or inserts every distinct row of batch.values and fills batch.keys and batch.ids.
void resolve_batch(Batch &batch);

// Releases what begin_batch took, except the locks, which last until the transaction ends.
void end_batch(Batch &batch);

} // namespace idsync
