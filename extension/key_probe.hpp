// Index lookups of distinct input rows.
#pragma once

#include "group_ids.hpp"
#include "row_keys.hpp"

namespace idsync {

// Looks up the distinct rows `groups[0 .. count-1]` (in index order) in the unique index with
// a fresh snapshot and records the id of each one found. Raises 23505 when a row with the same
// unique key exists but differs in another given column.
void probe_groups(const TargetTable &target, const ColumnValues &values, const RowKeys &keys,
                  const int32 *groups, int64 count, GroupIds &ids);

// In REPEATABLE READ and SERIALIZABLE, for the distinct rows still missing that the index does
// not protect: raises 40001 when such a row exists but is invisible to the transaction's
// snapshot. (For protected rows, INSERT ... ON CONFLICT makes the same check.) Call it after
// the rows' locks are held.
void check_unprotected_visible(const TargetTable &target, const ColumnValues &values,
                               const RowKeys &keys, const GroupIds &ids);

} // namespace idsync
