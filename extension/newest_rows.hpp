// The lww rule in a merge on the engine: per key the newest row wins, by (version, row hash),
// within the batch and against the row this node holds. The batch's newest rows go in by one
// INSERT ... ON CONFLICT DO UPDATE in the key index's order, whose WHERE keeps a stored row that
// is as new or newer; concurrent merges and writers are settled by ON CONFLICT.
#pragma once

#include "insert_missing.hpp"
#include "registration.hpp"

namespace idsync {

struct MergeCounts {
    int64 inserted;
    int64 updated;
};

struct NaturalHash;

// The SQL of the row hash of the row `alias` of the merge's table, the hash ties are broken by:
// with references, by natural keys (idsync._natural_row_hash); else of the stored columns,
// leaving out the local columns (parameter $<ncolumns + 1>, a text[] of their names).
char *hash_expr(const TargetTable &t, const Registration *reg, const char *alias);

// The same hash of input row `row` of the batch (*hash made on first use).
RowHash incoming_hash(const Batch &b, const Registration *reg, NaturalHash **hash, int64 row);

// Makes each group's group_row its newest row (b.keys from group_rows); a row without a
// version is the oldest.
void keep_newest(Batch &b, const Registration *reg);

// Writes the newest rows of b (after keep_newest) and counts what was inserted and updated.
MergeCounts upsert_newest(Batch &b, const Registration *reg);

} // namespace idsync
