// Inserting the distinct rows a probe did not find, through SQL, so that the insert respects
// everything INSERT respects: privileges, row-level security, defaults, constraints, triggers.
#pragma once

#include "group_ids.hpp"
#include "row_keys.hpp"

namespace idsync {

// INSERT INTO target (columns) SELECT * FROM unnest($1, ...) ON CONFLICT (<the unique index>)
// DO NOTHING RETURNING id, columns. Rows go in in index order; a row that a concurrent
// transaction inserted first is waited for by ON CONFLICT and then skipped, and REPEATABLE
// READ raises 40001 when that row is invisible to the transaction's snapshot.
struct MissingInsert {
    SPIPlanPtr plan;
};

// Needs an SPI connection.
MissingInsert prepare_missing_insert(const TargetTable &target);

// Inserts the distinct rows groups[0 .. count-1] (ascending), marking those it inserted.
// Rows it did not insert were inserted concurrently; the caller looks them up again.
void insert_groups(const MissingInsert &insert, const TargetTable &target,
                   const ColumnValues &values, const RowKeys &keys, const int32 *groups,
                   int64 count, GroupIds &ids);

} // namespace idsync
